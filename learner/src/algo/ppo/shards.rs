//! The host PPO step's split over threads: what one shard's gradient needs ([`Net`]), a shard's
//! buffers ([`Shard`]), and the persistent worker threads that compute shards beside the trainer
//! thread ([`Worker`]). A [`Job`] carries owned copies of the parameters and of the shard's rows
//! to a worker and comes back with the shard's gradient (its buffers are reused from step to
//! step); dropping a worker closes its queue, which stops its thread.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use shoal_common::model::ActionHead;

use super::head_grads::{LossSums, Minibatch, head_grads};
use super::loss::LossCoefs;
use crate::dense::{DenseMlp, Trace};

/// The two heads and the action distribution: what a shard's gradient needs besides the
/// parameters and its rows.
#[derive(Debug, Clone)]
pub(crate) struct Net {
    pub(crate) actor: DenseMlp,
    pub(crate) critic: DenseMlp,
    /// Offset of a Gaussian policy's `log_std`.
    pub(crate) log_std: Option<usize>,
    pub(crate) head: ActionHead,
    pub(crate) obs_dim: usize,
}

/// One thread's share of a minibatch step: its traces, scratch and gradient.
#[derive(Debug, Default, Clone)]
pub(crate) struct Shard {
    actor: Trace,
    critic: Trace,
    d_out: Vec<f32>,
    d_values: Vec<f32>,
    scratch: Vec<f32>,
    pub(crate) grad: Vec<f32>,
    pub(crate) sums: LossSums,
}

impl Net {
    /// Multiply-adds of one row's forward pass through both heads.
    pub(crate) fn macs_per_row(&self) -> usize {
        self.actor.macs_per_row() + self.critic.macs_per_row()
    }

    /// The gradient (in `shard.grad`, the whole flat layout) and loss sums of the rows `mb` of a
    /// minibatch of `n` rows.
    pub(crate) fn shard_gradient(
        &self,
        params: &[f32],
        mb: &Minibatch<'_>,
        n: usize,
        coefs: LossCoefs,
        shard: &mut Shard,
    ) {
        let rows = mb.len();
        shard.grad.resize(params.len(), 0.0);
        self.actor.forward(params, mb.obs, rows, &mut shard.actor);
        self.critic.forward(params, mb.obs, rows, &mut shard.critic);
        let a = self.head.outputs();
        shard.d_out.resize(rows * a, 0.0);
        shard.d_values.resize(rows, 0.0);
        let log_std = self.log_std.map(|o| &params[o..o + a]);
        let mut d_log_std = vec![0.0f32; if log_std.is_some() { a } else { 0 }];
        shard.sums = head_grads(
            self.head,
            shard.actor.output(),
            shard.critic.output(),
            log_std,
            mb,
            n,
            coefs,
            &mut shard.d_out,
            &mut shard.d_values,
            &mut d_log_std,
        );
        self.actor.backward(
            params,
            mb.obs,
            &shard.actor,
            &mut shard.d_out,
            &mut shard.grad,
            &mut shard.scratch,
        );
        self.critic.backward(
            params,
            mb.obs,
            &shard.critic,
            &mut shard.d_values,
            &mut shard.grad,
            &mut shard.scratch,
        );
        if let Some(o) = self.log_std {
            shard.grad[o..o + a].copy_from_slice(&d_log_std);
        }
    }
}

/// A shard's work for a worker: owned copies of what it reads, and its buffers.
#[derive(Debug, Default)]
pub(crate) struct Job {
    params: Vec<f32>,
    obs: Vec<f32>,
    actions: Vec<f32>,
    old_log_probs: Vec<f32>,
    advantages: Vec<f32>,
    returns: Vec<f32>,
    n: usize,
    coefs: Option<LossCoefs>,
    /// The result, once done.
    pub(crate) shard: Shard,
}

impl Job {
    /// Copies `params` and the rows `mb` of a minibatch of `n` rows in (reusing the buffers).
    pub(crate) fn fill(&mut self, params: &[f32], mb: &Minibatch<'_>, n: usize, coefs: LossCoefs) {
        let copy = |to: &mut Vec<f32>, from: &[f32]| {
            to.clear();
            to.extend_from_slice(from);
        };
        copy(&mut self.params, params);
        copy(&mut self.obs, mb.obs);
        copy(&mut self.actions, mb.actions);
        copy(&mut self.old_log_probs, mb.old_log_probs);
        copy(&mut self.advantages, mb.advantages);
        copy(&mut self.returns, mb.returns);
        self.n = n;
        self.coefs = Some(coefs);
    }

    fn run(&mut self, net: &Net) {
        let mb = Minibatch {
            obs: &self.obs,
            actions: &self.actions,
            old_log_probs: &self.old_log_probs,
            advantages: &self.advantages,
            returns: &self.returns,
        };
        let coefs = self.coefs.expect("a filled job");
        net.shard_gradient(&self.params, &mb, self.n, coefs, &mut self.shard);
    }
}

/// A thread that computes the shards it is sent, one at a time.
#[derive(Debug)]
pub(crate) struct Worker {
    jobs: Option<Sender<Job>>,
    done: Receiver<Job>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts worker `index` for `net`.
    pub(crate) fn spawn(net: Net, index: usize) -> Self {
        // One job in flight per worker: both queues hold at most one.
        let (jobs, inbox) = crossbeam_channel::bounded::<Job>(1);
        let (outbox, done) = crossbeam_channel::bounded::<Job>(1);
        let thread = std::thread::Builder::new()
            .name(format!("ppo-shard-{index}"))
            .spawn(move || {
                while let Some(mut job) = recv_soon(&inbox) {
                    job.run(&net);
                    if outbox.send(job).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn a PPO shard worker");
        Self {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        }
    }

    /// Hands `job` to the worker.
    pub(crate) fn start(&self, job: Job) {
        self.jobs
            .as_ref()
            .expect("open until dropped")
            .send(job)
            .expect("the shard worker runs until dropped");
    }

    /// Waits for the job [`Worker::start`] handed over.
    pub(crate) fn finish(&self) -> Job {
        recv_soon(&self.done).expect("the shard worker returns every job (it panicked otherwise)")
    }
}

/// How long a thread polls for the next message before it sleeps on the queue: the minibatch
/// steps of one update follow each other within microseconds, and waking a sleeping thread took
/// tens of them here (a 256-row CartPole step split over two threads: 0.21 ms blocking, 0.15 ms
/// polling); between updates the worker sleeps after this long.
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

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the queue stops the thread after its current job.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
