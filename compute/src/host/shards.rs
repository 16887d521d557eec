//! The host engine's split of a pass over threads: the calling thread computes the first block
//! of rows and persistent workers the others, each with its own [`Workspace`]s (one kept for the
//! backward pass, one for passes that keep nothing); the backward pass runs on the blocks of the
//! last kept forward pass and its gradients are summed in block order (bit-reproducible for a
//! fixed thread count and batch). A block below ~1M multiply-adds costs more to hand over than
//! it saves, so small batches stay on the calling thread. Dropping a worker closes its queue,
//! which stops its thread.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::net::{HostNet, Workspace};
use crate::engine::{Heads, Rows, Want};
use crate::kernels::linear::add_assign;

/// The least work (multiply-adds of the forward pass) worth a thread of its own (measured:
/// CartPole's 64-row minibatch took 0.08 ms on one thread, 0.12 on two).
const MIN_BLOCK_MACS: usize = 1 << 20;

/// Owned copies of a block's observations.
#[derive(Debug, Clone)]
enum OwnedRows {
    F32(Vec<f32>),
    U8(Vec<u8>),
}

impl OwnedRows {
    fn fill(&mut self, rows: Rows<'_>) {
        match (self, rows) {
            (OwnedRows::F32(to), Rows::F32(from)) => {
                to.clear();
                to.extend_from_slice(from);
            }
            (OwnedRows::U8(to), Rows::U8(from)) => {
                to.clear();
                to.extend_from_slice(from);
            }
            (slot, Rows::F32(from)) => *slot = OwnedRows::F32(from.to_vec()),
            (slot, Rows::U8(from)) => *slot = OwnedRows::U8(from.to_vec()),
        }
    }

    fn rows(&self) -> Rows<'_> {
        match self {
            OwnedRows::F32(v) => Rows::F32(v),
            OwnedRows::U8(v) => Rows::U8(v),
        }
    }
}

/// What a worker is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Forward { rows: usize, want: Want, keep: bool },
    Backward { policy: bool, values: bool },
}

/// A block's work for a worker, with its buffers (reused from job to job).
#[derive(Debug)]
struct Job {
    task: Task,
    params: Option<Arc<Vec<f32>>>,
    obs: OwnedRows,
    d_policy: Vec<f32>,
    d_values: Vec<f32>,
    policy: Vec<f32>,
    values: Vec<f32>,
    grad: Vec<f32>,
}

impl Job {
    fn new() -> Self {
        Self {
            task: Task::Backward {
                policy: false,
                values: false,
            },
            params: None,
            obs: OwnedRows::F32(Vec::new()),
            d_policy: Vec::new(),
            d_values: Vec::new(),
            policy: Vec::new(),
            values: Vec::new(),
            grad: Vec::new(),
        }
    }

    /// Runs the job on `net` with the worker's workspaces.
    fn run(&mut self, net: &HostNet, kept: &mut Workspace, scratch: &mut Workspace) {
        let params = self.params.as_ref().expect("a job carries its parameters");
        match self.task {
            Task::Forward { rows, want, keep } => {
                let ws = if keep { kept } else { scratch };
                net.forward(params, self.obs.rows(), rows, want, ws);
                self.policy.clear();
                self.policy.extend_from_slice(ws.policy_if(want.policy));
                self.values.clear();
                self.values.extend_from_slice(ws.values_if(want.value));
            }
            Task::Backward { policy, values } => {
                self.grad.resize(net.len, 0.0);
                net.backward(
                    params,
                    kept,
                    policy.then_some(&self.d_policy[..]),
                    values.then_some(&self.d_values[..]),
                    &mut self.grad,
                );
            }
        }
    }
}

impl Workspace {
    fn policy_if(&self, wanted: bool) -> &[f32] {
        if wanted { self.policy() } else { &[] }
    }

    fn values_if(&self, wanted: bool) -> &[f32] {
        if wanted { self.values() } else { &[] }
    }
}

/// A thread that runs the jobs it is sent, one at a time.
#[derive(Debug)]
struct Worker {
    jobs: Option<Sender<Job>>,
    done: Receiver<Job>,
    thread: Option<JoinHandle<()>>,
    /// The job's buffers while it is not out.
    idle: Option<Job>,
}

impl Worker {
    fn spawn(net: Arc<HostNet>, index: usize) -> Self {
        // One job in flight per worker: both queues hold at most one.
        let (jobs, inbox) = crossbeam_channel::bounded::<Job>(1);
        let (outbox, done) = crossbeam_channel::bounded::<Job>(1);
        let thread = std::thread::Builder::new()
            .name(format!("compute-{index}"))
            .spawn(move || {
                let (mut kept, mut scratch) = (Workspace::default(), Workspace::default());
                while let Some(mut job) = recv_soon(&inbox) {
                    job.run(&net, &mut kept, &mut scratch);
                    if outbox.send(job).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn a compute worker");
        Self {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            idle: Some(Job::new()),
        }
    }

    fn start(&mut self, job: Job) {
        self.jobs
            .as_ref()
            .expect("open until dropped")
            .send(job)
            .expect("the compute worker runs until dropped");
    }

    fn finish(&mut self) -> Job {
        recv_soon(&self.done).expect("the compute worker returns every job (it panicked otherwise)")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the queue stops the thread after its current job.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How long a thread polls for the next message before it sleeps on the queue: the passes of
/// one update follow each other within microseconds, and waking a sleeping thread took tens of
/// them here (a 256-row CartPole step split over two threads: 0.21 ms blocking, 0.15 ms
/// polling); between updates a worker sleeps after this long.
const POLL: Duration = Duration::from_micros(200);

/// The next message, polling for [`POLL`] before sleeping on the queue; `None` once closed.
fn recv_soon<T>(rx: &Receiver<T>) -> Option<T> {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        match rx.try_recv() {
            Ok(item) => return Some(item),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {}
        }
        std::hint::spin_loop();
        spins += 1;
        if spins.is_multiple_of(64) && start.elapsed() > POLL {
            return rx.recv().ok();
        }
    }
}

/// The calling thread's workspaces and the workers.
#[derive(Debug)]
pub(crate) struct Shards {
    net: Arc<HostNet>,
    kept: Workspace,
    scratch: Workspace,
    workers: Vec<Worker>,
    /// The blocks' first rows of the last kept forward pass, and its total.
    blocks: Vec<usize>,
    min_block_macs: usize,
}

impl Shards {
    /// `threads` threads (the calling one included) for `net`.
    pub(crate) fn new(net: Arc<HostNet>, threads: usize) -> Self {
        let workers = (1..threads.max(1))
            .map(|k| Worker::spawn(Arc::clone(&net), k))
            .collect();
        Self {
            net,
            kept: Workspace::default(),
            scratch: Workspace::default(),
            workers,
            blocks: Vec::new(),
            min_block_macs: MIN_BLOCK_MACS,
        }
    }

    /// Splits every batch over all threads, however small (for tests of the reduction).
    #[cfg(test)]
    pub(crate) fn split_every_batch(&mut self) {
        self.min_block_macs = 1;
    }

    /// The first row of each block of `n` rows, and `n`.
    fn split(&self, n: usize) -> Vec<usize> {
        let worth = (n * self.net.macs_per_row() / self.min_block_macs).max(1);
        let parts = (self.workers.len() + 1).min(worth).min(n.max(1));
        let chunk = n.div_ceil(parts).max(1);
        let mut starts: Vec<usize> = (0..parts).map(|k| (k * chunk).min(n)).collect();
        starts.push(n);
        starts
    }

    /// The wanted heads of the rows `obs` with `params`; `keep` keeps what the backward pass
    /// needs.
    pub(crate) fn forward(
        &mut self,
        params: &Arc<Vec<f32>>,
        obs: Rows<'_>,
        want: Want,
        keep: bool,
    ) -> Heads {
        let o = self.net.obs_dim;
        let n = obs.len() / o;
        let starts = self.split(n);
        let parts = starts.len() - 1;
        for (k, worker) in self.workers.iter_mut().enumerate().take(parts - 1) {
            let mut job = worker.idle.take().expect("no job out between passes");
            let (from, to) = (starts[k + 1], starts[k + 2]);
            job.task = Task::Forward {
                rows: to - from,
                want,
                keep,
            };
            job.params = Some(Arc::clone(params));
            job.obs.fill(obs.slice(from * o..to * o));
            worker.start(job);
        }
        let ws = if keep {
            &mut self.kept
        } else {
            &mut self.scratch
        };
        self.net
            .forward(params, obs.slice(0..starts[1] * o), starts[1], want, ws);
        let mut heads = Heads {
            policy: ws.policy_if(want.policy).to_vec(),
            values: ws.values_if(want.value).to_vec(),
        };
        for worker in self.workers.iter_mut().take(parts - 1) {
            let mut job = worker.finish();
            job.params = None;
            heads.policy.extend_from_slice(&job.policy);
            heads.values.extend_from_slice(&job.values);
            worker.idle = Some(job);
        }
        if keep {
            self.blocks = starts;
        }
        heads
    }

    /// d loss / d parameters of the last kept forward pass into `grad` (every value written),
    /// from the gradients at its heads, summed over the blocks in order.
    pub(crate) fn backward(
        &mut self,
        params: &Arc<Vec<f32>>,
        d_policy: Option<&[f32]>,
        d_values: Option<&[f32]>,
        grad: &mut [f32],
    ) {
        let starts = std::mem::take(&mut self.blocks);
        assert!(
            starts.len() >= 2,
            "a kept forward pass before the backward pass"
        );
        let parts = starts.len() - 1;
        let a = self.net.action.outputs();
        for (k, worker) in self.workers.iter_mut().enumerate().take(parts - 1) {
            let mut job = worker.idle.take().expect("no job out between passes");
            let (from, to) = (starts[k + 1], starts[k + 2]);
            job.task = Task::Backward {
                policy: d_policy.is_some(),
                values: d_values.is_some(),
            };
            job.params = Some(Arc::clone(params));
            job.d_policy.clear();
            if let Some(d) = d_policy {
                job.d_policy.extend_from_slice(&d[from * a..to * a]);
            }
            job.d_values.clear();
            if let Some(d) = d_values {
                job.d_values.extend_from_slice(&d[from..to]);
            }
            worker.start(job);
        }
        let end = starts[1];
        self.net.backward(
            params,
            &mut self.kept,
            d_policy.map(|d| &d[..end * a]),
            d_values.map(|d| &d[..end]),
            grad,
        );
        for worker in self.workers.iter_mut().take(parts - 1) {
            let mut job = worker.finish();
            job.params = None;
            add_assign(grad, &job.grad);
            worker.idle = Some(job);
        }
        self.blocks = starts;
    }
}
