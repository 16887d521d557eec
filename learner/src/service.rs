//! The gRPC parameter server: validates everything from the network, then hands rollouts (PPO)
//! or gradients (A3C) to the trainer through the bounded queue. Handlers never touch tensors.
//!
//! [`ServiceError`] is the one place where errors become `tonic::Status`.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Sender, TrySendError};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use shoal_common::codec::{CodecError, ParamLayout};
use shoal_common::config::{AlgorithmKind, RunConfig};
use shoal_common::dqn::{TransitionBatch, TransitionError, actor_epsilon};
use shoal_common::gradient::{GradientError, GradientPush};
use shoal_common::model::ModelSpec;
use shoal_common::proto::{self, parameter_server_server::ParameterServer};
use shoal_common::rng::{derive_seed, streams};
use shoal_common::rollout::{Rollout, RolloutError, RolloutShape};
use shoal_common::settings::{A3cLoss, PROTOCOL_VERSION, model_spec_to_proto, normalize_to_proto};
use shoal_common::stats::{ActorStats, StatsError};

use crate::param_store::ParamStore;

/// Why a request was refused.
#[derive(Debug, Error)]
pub enum ServiceError {
    /// The actor speaks another protocol version.
    #[error(
        "protocol version {got} is not supported (this learner speaks {want}); upgrade the actor"
    )]
    Protocol {
        /// Sent.
        got: i32,
        /// Ours.
        want: i32,
    },
    /// The actor id was never handed out (or the learner restarted).
    #[error("unknown actor id {0}; register first")]
    UnknownActor(u32),
    /// The caller builds a different model.
    #[error(transparent)]
    Fingerprint(#[from] CodecError),
    /// A malformed rollout.
    #[error(transparent)]
    Rollout(#[from] RolloutError),
    /// A malformed gradient.
    #[error(transparent)]
    Gradient(#[from] GradientError),
    /// A malformed transition batch.
    #[error(transparent)]
    Transitions(#[from] TransitionError),
    /// An implausible actor report.
    #[error(transparent)]
    ActorStats(#[from] StatsError),
    /// The rpc belongs to another algorithm than the run's.
    #[error("this run trains with {run:?}; {rpc} is not part of it")]
    WrongAlgorithm {
        /// The run's algorithm.
        run: AlgorithmKind,
        /// The rpc called.
        rpc: &'static str,
    },
    /// A version the learner never published.
    #[error("rollout claims parameter version {got}, newest published is {latest}")]
    FutureVersion {
        /// Claimed.
        got: u64,
        /// Newest.
        latest: u64,
    },
    /// The trainer's queue is full: back off and retry.
    #[error("learner queue is full ({0} items); retry later")]
    QueueFull(usize),
    /// The learner is stopping.
    #[error("learner is shutting down")]
    ShuttingDown,
    /// The request did not carry the run's token.
    #[error("missing or wrong token: send `authorization: Bearer <token>` (SHOAL_TOKEN)")]
    Unauthenticated,
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        let msg = e.to_string();
        match e {
            ServiceError::Protocol { .. }
            | ServiceError::Fingerprint(_)
            | ServiceError::WrongAlgorithm { .. } => Status::failed_precondition(msg),
            ServiceError::UnknownActor(_) => Status::not_found(msg),
            ServiceError::Rollout(_)
            | ServiceError::Gradient(_)
            | ServiceError::Transitions(_)
            | ServiceError::ActorStats(_)
            | ServiceError::FutureVersion { .. } => Status::invalid_argument(msg),
            ServiceError::QueueFull(_) => Status::resource_exhausted(msg),
            ServiceError::ShuttingDown => Status::unavailable(msg),
            ServiceError::Unauthenticated => Status::unauthenticated(msg),
        }
    }
}

/// Counters the handlers keep (the trainer reads them for the status line).
#[derive(Debug, Default)]
pub struct Counters {
    /// Rollouts refused as malformed.
    pub rollouts_rejected: AtomicU64,
    /// Pushes refused because the queue was full.
    pub queue_full: AtomicU64,
    /// Registrations, including re-registrations.
    pub registrations: AtomicU64,
    /// Gradients refused as malformed.
    pub gradients_rejected: AtomicU64,
    /// Gradients refused at the door as more than `max_staleness` versions old.
    pub gradients_stale: AtomicU64,
    /// Transition batches refused as malformed.
    pub transitions_rejected: AtomicU64,
    /// Requests without the run's token.
    pub refused_unauthenticated: AtomicU64,
    /// Calls naming an actor id the learner does not know (never registered, or timed out).
    pub refused_unknown_actor: AtomicU64,
    /// Calls from a client that builds another model.
    pub refused_fingerprint: AtomicU64,
    /// Pushes claiming a parameter version the learner never published.
    pub refused_future_version: AtomicU64,
    /// Registrations speaking another protocol version.
    pub refused_protocol: AtomicU64,
    /// Pushes of another algorithm's experience.
    pub refused_wrong_algorithm: AtomicU64,
    /// Messages over the run's size limit (refused by the transport, OUT_OF_RANGE).
    pub refused_oversized: AtomicU64,
    /// Messages that are not valid protobuf (refused by the transport, INTERNAL).
    pub refused_undecodable: AtomicU64,
    /// Actors forgotten after `learner.actor_timeout_secs` of silence.
    pub actors_timed_out: AtomicU64,
}

impl Counters {
    /// Every refusal counter with its metrics name.
    pub fn refusals(&self) -> [(&'static str, u64); 11] {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("rollouts_rejected", r(&self.rollouts_rejected)),
            ("gradients_rejected", r(&self.gradients_rejected)),
            ("transitions_rejected", r(&self.transitions_rejected)),
            ("refused_unauthenticated", r(&self.refused_unauthenticated)),
            ("refused_unknown_actor", r(&self.refused_unknown_actor)),
            ("refused_fingerprint", r(&self.refused_fingerprint)),
            ("refused_future_version", r(&self.refused_future_version)),
            ("refused_protocol", r(&self.refused_protocol)),
            ("refused_wrong_algorithm", r(&self.refused_wrong_algorithm)),
            ("refused_oversized", r(&self.refused_oversized)),
            ("refused_undecodable", r(&self.refused_undecodable)),
        ]
    }

    /// The counter a refusal goes to (malformed experience is counted where it is validated).
    fn count(&self, e: &ServiceError) {
        let counter = match e {
            ServiceError::Protocol { .. } => &self.refused_protocol,
            ServiceError::UnknownActor(_) => &self.refused_unknown_actor,
            ServiceError::Fingerprint(_) => &self.refused_fingerprint,
            ServiceError::WrongAlgorithm { .. } => &self.refused_wrong_algorithm,
            ServiceError::FutureVersion { .. } => &self.refused_future_version,
            ServiceError::Unauthenticated => &self.refused_unauthenticated,
            ServiceError::QueueFull(_)
            | ServiceError::ShuttingDown
            | ServiceError::Rollout(_)
            | ServiceError::Gradient(_)
            | ServiceError::Transitions(_)
            | ServiceError::ActorStats(_) => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Keeps refusal logs readable under a flood of bad requests: at most one line per
/// [`RefusalLog::EVERY`]; each line says how many refusals went unlogged before it (all are
/// counted in the status line either way).
#[derive(Debug)]
pub struct RefusalLog {
    last: Mutex<Option<std::time::Instant>>,
    suppressed: AtomicU64,
}

impl RefusalLog {
    /// Shortest time between two refusal lines.
    pub const EVERY: std::time::Duration = std::time::Duration::from_millis(100);

    fn new() -> Self {
        Self {
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(refusals not logged since the last line)` when this one may be logged.
    pub fn allow(&self) -> Option<u64> {
        let mut last = self.last.lock().expect("refusal log lock");
        if last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(std::time::Instant::now());
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

/// What every push-and-pull ack carries besides its verdict.
struct PushStart {
    current_version: u64,
    parameters: Option<proto::Parameters>,
    finished: Option<proto::RunFinished>,
}

/// What the handlers queue for the trainer.
#[derive(Debug)]
pub enum Experience {
    /// PPO (boxed: a rollout's header is four times a gradient's).
    Rollout(Box<Rollout>),
    /// A3C.
    Gradient(GradientPush),
    /// DQN.
    Transitions(TransitionBatch),
}

#[derive(Debug, Default)]
struct Actors {
    next_id: u32,
    names: HashMap<u32, String>,
    /// Open parameter subscriptions per actor.
    subscribed: HashMap<u32, usize>,
    /// When each A3C/DQN actor last pushed.
    last_push: HashMap<u32, std::time::Instant>,
    /// When each actor last called.
    last_seen: HashMap<u32, std::time::Instant>,
    /// A3C/DQN actors whose ack said the run is over.
    told_finished: HashSet<u32>,
}

#[derive(Debug, Default)]
struct Pending {
    version: u64,
    pushed_by: HashSet<u32>,
    count: usize,
}

/// State shared by the handlers and the trainer thread.
pub struct Shared {
    /// The run.
    pub config: RunConfig,
    /// The network.
    pub spec: ModelSpec,
    /// Its layout.
    pub layout: ParamLayout,
    /// Its fingerprint.
    pub fingerprint: String,
    /// The rollout shape actors must send.
    pub shape: RolloutShape,
    /// Published parameters.
    pub store: ParamStore,
    /// Handler-side counters.
    pub counters: Counters,
    /// `learner.actor_timeout_secs`.
    pub actor_timeout: std::time::Duration,
    /// Rate limit of refusal log lines.
    pub refusal_log: RefusalLog,
    /// The newest report of each actor, with its name.
    actor_reports: Mutex<std::collections::BTreeMap<u32, (String, ActorStats)>>,
    /// The newest status row (for the Prometheus endpoint).
    status: std::sync::RwLock<Option<serde_json::Value>>,
    /// Environment steps the trainer has counted (exploration schedules read it).
    pub env_steps: AtomicU64,
    queue: Sender<Experience>,
    actors: Mutex<Actors>,
    told: tokio::sync::Notify,
    pending: Mutex<Pending>,
    shutdown: CancellationToken,
}

impl Shared {
    /// Shared state for a run whose trainer reads from the other end of `queue`; actor ids are
    /// handed out from `first_actor_id` (above those of the run before a resume).
    pub fn new(
        config: RunConfig,
        spec: ModelSpec,
        store: ParamStore,
        queue: Sender<Experience>,
        shutdown: CancellationToken,
        first_actor_id: u32,
    ) -> Self {
        let layout = spec.layout();
        let shape = RolloutShape {
            n_steps: config.n_steps,
            num_envs: config.num_envs,
            obs_dim: spec.obs_dim,
            action: spec.action,
        };
        let version = store.latest().version;
        Self {
            actor_timeout: std::time::Duration::from_secs_f64(config.learner.actor_timeout_secs),
            refusal_log: RefusalLog::new(),
            actor_reports: Mutex::new(Default::default()),
            status: std::sync::RwLock::new(None),
            fingerprint: layout.fingerprint(),
            layout,
            shape,
            config,
            spec,
            store,
            counters: Counters::default(),
            env_steps: AtomicU64::new(0),
            queue,
            actors: Mutex::new(Actors {
                next_id: first_actor_id.max(1),
                ..Actors::default()
            }),
            told: tokio::sync::Notify::new(),
            pending: Mutex::new(Pending {
                version,
                ..Pending::default()
            }),
            shutdown,
        }
    }

    /// Actors with an open parameter subscription (PPO), or that pushed within the actor
    /// timeout (A3C and DQN actors do not subscribe).
    pub fn connected_actors(&self) -> usize {
        let actors = self.actors.lock().expect("actors lock");
        let recent = actors
            .last_push
            .iter()
            .filter(|(id, t)| {
                t.elapsed() < self.actor_timeout && !actors.subscribed.contains_key(id)
            })
            .count();
        actors.subscribed.len() + recent
    }

    /// The next actor id to hand out (saved with checkpoints so that a resumed learner does
    /// not reuse ids).
    pub fn next_actor_id(&self) -> u32 {
        self.actors.lock().expect("actors lock").next_id
    }

    /// Forgets actors that have no open stream and made no call for `actor_timeout`: they stop
    /// counting as connected and as owing rollouts; a later call from one gets NOT_FOUND and it
    /// registers again. Returns how many were forgotten.
    pub fn expire_silent_actors(&self) -> usize {
        let mut actors = self.actors.lock().expect("actors lock");
        let silent: Vec<u32> = actors
            .last_seen
            .iter()
            .filter(|(id, t)| {
                t.elapsed() >= self.actor_timeout && !actors.subscribed.contains_key(id)
            })
            .map(|(&id, _)| id)
            .collect();
        let mut reports = self.actor_reports.lock().expect("reports lock");
        for id in &silent {
            reports.remove(id);
            let name = actors.names.remove(id).unwrap_or_default();
            actors.last_seen.remove(id);
            actors.last_push.remove(id);
            warn!(
                actor_id = id,
                name,
                silent_secs = self.actor_timeout.as_secs_f64(),
                "actor timed out; forgotten"
            );
        }
        self.counters
            .actors_timed_out
            .fetch_add(silent.len() as u64, Ordering::Relaxed);
        silent.len()
    }

    /// Keeps `row` as the newest status.
    pub fn set_status(&self, row: serde_json::Value) {
        *self.status.write().expect("status lock") = Some(row);
    }

    /// The newest status row, if one was written.
    pub fn status(&self) -> Option<serde_json::Value> {
        self.status.read().expect("status lock").clone()
    }

    /// The newest report of every known actor: id, name, report.
    pub fn actor_reports(&self) -> Vec<(u32, String, ActorStats)> {
        self.actor_reports
            .lock()
            .expect("reports lock")
            .iter()
            .map(|(&id, (name, s))| (id, name.clone(), *s))
            .collect()
    }

    /// Validates the report a push carries (counted in `rejected` when implausible) and keeps
    /// it as the actor's newest.
    fn record_report(
        &self,
        actor_id: u32,
        msg: Option<&proto::ActorStats>,
        rejected: &AtomicU64,
    ) -> Result<(), ServiceError> {
        let Some(stats) = ActorStats::from_proto(msg).inspect_err(|_| {
            rejected.fetch_add(1, Ordering::Relaxed);
        })?
        else {
            return Ok(());
        };
        let name = self
            .actors
            .lock()
            .expect("actors lock")
            .names
            .get(&actor_id)
            .cloned()
            .unwrap_or_default();
        self.actor_reports
            .lock()
            .expect("reports lock")
            .insert(actor_id, (name, stats));
        Ok(())
    }

    /// The largest request this run accepts ([`max_request_bytes`]).
    pub fn max_request_bytes(&self) -> usize {
        max_request_bytes(&self.config, &self.spec)
    }

    /// Rollouts waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.queue.len()
    }

    /// Called by the trainer after it publishes `version`: pushes are counted afresh.
    pub fn begin_version(&self, version: u64) {
        let mut p = self.pending.lock().expect("pending lock");
        *p = Pending {
            version,
            ..Pending::default()
        };
    }

    /// The start of a push from an actor that does not subscribe (A3C, DQN): what its ack
    /// carries besides the verdict (when the run is over, the actor is recorded as told so);
    /// versions from the future are refused; the push time is recorded.
    fn begin_push(&self, actor_id: u32, version: u64) -> Result<PushStart, ServiceError> {
        let snap = self.store.latest();
        let start = PushStart {
            current_version: snap.version,
            parameters: (snap.version > version)
                .then(|| parameters_message(&snap, &self.fingerprint)),
            finished: snap
                .finished
                .clone()
                .map(|reason| proto::RunFinished { reason }),
        };
        if start.finished.is_some() {
            self.told_finished(actor_id);
            return Ok(start);
        }
        if version > snap.version {
            return Err(ServiceError::FutureVersion {
                got: version,
                latest: snap.version,
            });
        }
        self.actors
            .lock()
            .expect("actors lock")
            .last_push
            .insert(actor_id, std::time::Instant::now());
        Ok(start)
    }

    /// Hands validated experience to the trainer; a full queue is backpressure.
    fn enqueue(&self, experience: Experience) -> Result<(), ServiceError> {
        match self.queue.try_send(experience) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.counters.queue_full.fetch_add(1, Ordering::Relaxed);
                Err(ServiceError::QueueFull(self.config.learner.queue_capacity))
            }
            Err(TrySendError::Disconnected(_)) => Err(ServiceError::ShuttingDown),
        }
    }

    /// Records that `actor_id`'s ack said the run is over.
    fn told_finished(&self, actor_id: u32) {
        let mut actors = self.actors.lock().expect("actors lock");
        actors.told_finished.insert(actor_id);
        drop(actors);
        self.told.notify_one();
    }

    /// Once the run is over: waits (at most `within`) until every actor that pushed within
    /// the actor timeout has been told so by an ack. A3C and DQN actors do not subscribe
    /// to the parameter stream; the ack to their next push is how they learn that the run
    /// ended, so the server must still be up to give it.
    pub async fn wait_until_pushers_told(&self, within: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let all_told = {
                let actors = self.actors.lock().expect("actors lock");
                actors.last_push.iter().all(|(id, t)| {
                    actors.told_finished.contains(id) || t.elapsed() >= self.actor_timeout
                })
            };
            if all_told {
                return;
            }
            tokio::select! {
                _ = self.told.notified() => {}
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    /// A DQN actor's exploration rate now. Actor ids count from 1; the Ape-X schedule's index
    /// cycles over `dqn.num_actors`.
    fn epsilon(&self, actor_id: u32) -> f64 {
        actor_epsilon(
            &self.config.dqn,
            self.config.total_steps,
            actor_id.saturating_sub(1) as usize,
            self.env_steps.load(Ordering::Relaxed),
        )
    }

    fn check_algorithm(&self, want: AlgorithmKind, rpc: &'static str) -> Result<(), ServiceError> {
        if self.config.algorithm == want {
            Ok(())
        } else {
            Err(ServiceError::WrongAlgorithm {
                run: self.config.algorithm,
                rpc,
            })
        }
    }

    /// A known actor building this run's model; records that it was seen.
    fn check_actor(&self, actor_id: u32, fingerprint: &str) -> Result<(), ServiceError> {
        {
            let mut actors = self.actors.lock().expect("actors lock");
            if !actors.names.contains_key(&actor_id) {
                return Err(ServiceError::UnknownActor(actor_id));
            }
            actors.last_seen.insert(actor_id, std::time::Instant::now());
        }
        self.layout.check_fingerprint(fingerprint)?;
        Ok(())
    }

    /// Records a push made with `version`; returns (fresh, wants_more).
    fn note_push(&self, actor_id: u32, version: u64) -> (bool, bool) {
        let needed = self.config.ppo.rollouts_per_update;
        let subscribed: Vec<u32> = {
            let actors = self.actors.lock().expect("actors lock");
            actors.subscribed.keys().copied().collect()
        };
        let mut p = self.pending.lock().expect("pending lock");
        if version != p.version {
            return (false, false);
        }
        p.count += 1;
        p.pushed_by.insert(actor_id);
        // Other connected actors that have not delivered for this version yet will.
        let others = subscribed
            .iter()
            .filter(|id| !p.pushed_by.contains(id))
            .count();
        (true, p.count + others < needed)
    }

    fn subscription_opened(&self, actor_id: u32) {
        let mut actors = self.actors.lock().expect("actors lock");
        *actors.subscribed.entry(actor_id).or_default() += 1;
        let name = actors.names.get(&actor_id).cloned().unwrap_or_default();
        info!(
            actor_id,
            name,
            connected = actors.subscribed.len(),
            "actor connected"
        );
    }

    fn subscription_closed(&self, actor_id: u32) {
        let mut actors = self.actors.lock().expect("actors lock");
        if let Some(n) = actors.subscribed.get_mut(&actor_id) {
            *n -= 1;
            if *n == 0 {
                actors.subscribed.remove(&actor_id);
            }
        }
        // The actor timeout counts from the stream's end.
        if actors.names.contains_key(&actor_id) {
            actors.last_seen.insert(actor_id, std::time::Instant::now());
        }
        info!(
            actor_id,
            connected = actors.subscribed.len(),
            "actor disconnected"
        );
    }
}

/// The largest request a well-behaved actor of a run of `config` with model `spec` sends, with
/// room to spare; larger ones are refused by the transport (OUT_OF_RANGE) before they are
/// decoded.
pub fn max_request_bytes(config: &RunConfig, spec: &ModelSpec) -> usize {
    let (t, n) = (config.n_steps, config.num_envs);
    let (o, a) = (spec.obs_dim, spec.action.outputs());
    let rollout = 4 * t * n * (o + a + 8) + 4 * n + 8 * t * n + 32 * (o + 1);
    let gradient = 4 * spec.layout().num_floats();
    let transitions = 4 * t * n * (2 * o + 3) + 8 * t * n;
    2 * rollout.max(gradient).max(transitions) + 64 * 1024
}

/// Removes a subscription from the count when its stream ends, however it ends.
struct SubscriptionGuard {
    shared: Arc<Shared>,
    actor_id: u32,
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        self.shared.subscription_closed(self.actor_id);
    }
}

/// The tonic service.
#[derive(Clone)]
pub struct ParameterService {
    shared: Arc<Shared>,
}

impl ParameterService {
    /// A service over `shared`.
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Counts a refusal and turns it into its status (the conversion itself is
    /// `From<ServiceError> for Status`, the one place errors become statuses).
    fn refuse(&self, e: ServiceError) -> Status {
        self.shared.counters.count(&e);
        e.into()
    }

    fn register(
        &self,
        req: proto::RegisterRequest,
        peer: String,
    ) -> Result<proto::RegisterResponse, ServiceError> {
        let s = &self.shared;
        if req.protocol_version != PROTOCOL_VERSION as i32 {
            return Err(ServiceError::Protocol {
                got: req.protocol_version,
                want: PROTOCOL_VERSION as i32,
            });
        }
        if s.shutdown.is_cancelled() {
            return Err(ServiceError::ShuttingDown);
        }
        let actor_id = {
            let mut actors = s.actors.lock().expect("actors lock");
            // A reconnecting actor keeps its id (so its seed, environments and exploration
            // schedule carry on), also across a learner restart, unless another actor holds it.
            let id = match req.previous_actor_id {
                Some(id)
                    if id > 0 && actors.names.get(&id).is_none_or(|name| *name == req.name) =>
                {
                    actors.next_id = actors.next_id.max(id.saturating_add(1));
                    id
                }
                _ => {
                    let id = actors.next_id;
                    actors.next_id += 1;
                    id
                }
            };
            actors.names.insert(id, req.name.clone());
            actors.last_seen.insert(id, std::time::Instant::now());
            id
        };
        s.counters.registrations.fetch_add(1, Ordering::Relaxed);
        info!(actor_id, name = req.name, peer, "actor registered");
        let c = &s.config;
        Ok(proto::RegisterResponse {
            actor_id,
            settings: Some(proto::RunSettings {
                env_id: c.env_id.clone(),
                num_envs: c.num_envs as u32,
                n_steps: c.n_steps as u32,
                seed: derive_seed(c.seed, streams::ACTOR_BASE + actor_id as u64),
                algorithm: match c.algorithm {
                    AlgorithmKind::Ppo => proto::Algorithm::Ppo,
                    AlgorithmKind::A3c => proto::Algorithm::A3c,
                    AlgorithmKind::Dqn => proto::Algorithm::Dqn,
                } as i32,
                param_wait_ms: c.learner.param_wait_ms,
                normalization: Some(normalize_to_proto(&c.normalize_settings())),
                a3c: (c.algorithm == AlgorithmKind::A3c)
                    .then(|| A3cLoss::from_config(&c.a3c).to_proto()),
                dqn: (c.algorithm == AlgorithmKind::Dqn).then(|| proto::DqnActor {
                    epsilon: s.epsilon(actor_id),
                    n_step: c.dqn.n_step as u32,
                    gamma: c.dqn.gamma,
                }),
            }),
            model: Some(model_spec_to_proto(&s.spec)),
            model_fingerprint: s.fingerprint.clone(),
        })
    }

    fn push_rollout(&self, msg: proto::Rollout) -> Result<proto::PushAck, ServiceError> {
        let s = &self.shared;
        s.check_algorithm(AlgorithmKind::Ppo, "PushRollout")?;
        s.check_actor(msg.actor_id, &msg.model_fingerprint)?;
        let latest = s.store.latest().version;
        if msg.version > latest {
            return Err(ServiceError::FutureVersion {
                got: msg.version,
                latest,
            });
        }
        let rollout = Rollout::from_proto(&msg, s.shape).inspect_err(|e| {
            s.counters.rollouts_rejected.fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = s.refusal_log.allow() {
                warn!(actor_id = msg.actor_id, error = %e, suppressed, "rollout refused");
            }
        })?;
        s.record_report(
            msg.actor_id,
            msg.actor_stats.as_ref(),
            &s.counters.rollouts_rejected,
        )?;
        s.enqueue(Experience::Rollout(Box::new(rollout)))?;
        let (fresh, wants_more) = s.note_push(msg.actor_id, msg.version);
        Ok(proto::PushAck {
            accepted: fresh,
            current_version: latest,
            wants_more,
            reason: if fresh {
                String::new()
            } else {
                format!(
                    "stale: made with version {}, learner is at {latest}",
                    msg.version
                )
            },
        })
    }
}

impl ParameterService {
    fn push_gradient(&self, msg: proto::Gradient) -> Result<proto::GradientAck, ServiceError> {
        let s = &self.shared;
        s.check_algorithm(AlgorithmKind::A3c, "PushGradient")?;
        s.check_actor(msg.actor_id, &msg.model_fingerprint)?;
        let start = s.begin_push(msg.actor_id, msg.version)?;
        let staleness = start.current_version - msg.version;
        let mut ack = proto::GradientAck {
            accepted: false,
            reason: String::new(),
            current_version: start.current_version,
            parameters: start.parameters,
            finished: start.finished,
        };
        if ack.finished.is_some() {
            ack.reason = "the run is over".into();
            return Ok(ack);
        }
        // Validated before anything else is decided about it: a malformed gradient is refused
        // as such, stale or not.
        let steps = (s.config.n_steps * s.config.num_envs) as u32;
        let grad =
            GradientPush::from_proto(&msg, s.layout.num_floats(), steps).inspect_err(|e| {
                s.counters
                    .gradients_rejected
                    .fetch_add(1, Ordering::Relaxed);
                if let Some(suppressed) = s.refusal_log.allow() {
                    warn!(actor_id = msg.actor_id, error = %e, suppressed, "gradient refused");
                }
            })?;
        s.record_report(
            msg.actor_id,
            msg.actor_stats.as_ref(),
            &s.counters.gradients_rejected,
        )?;
        if staleness > s.config.a3c.max_staleness {
            s.counters.gradients_stale.fetch_add(1, Ordering::Relaxed);
            ack.reason = format!(
                "stale: computed on version {}, {staleness} behind (max_staleness {})",
                msg.version, s.config.a3c.max_staleness
            );
            return Ok(ack);
        }
        s.enqueue(Experience::Gradient(grad))?;
        ack.accepted = true;
        Ok(ack)
    }
}

impl ParameterService {
    fn push_transitions(
        &self,
        msg: proto::TransitionBatch,
    ) -> Result<proto::TransitionAck, ServiceError> {
        let s = &self.shared;
        s.check_algorithm(AlgorithmKind::Dqn, "PushTransitions")?;
        s.check_actor(msg.actor_id, &msg.model_fingerprint)?;
        let start = s.begin_push(msg.actor_id, msg.version)?;
        let mut ack = proto::TransitionAck {
            accepted: false,
            current_version: start.current_version,
            parameters: start.parameters,
            finished: start.finished,
            epsilon: Some(s.epsilon(msg.actor_id)),
        };
        if ack.finished.is_some() {
            return Ok(ack);
        }
        let batch = TransitionBatch::from_proto(
            &msg,
            s.config.n_steps * s.config.num_envs,
            s.spec.obs_dim,
            s.spec.action.outputs(),
        )
        .inspect_err(|e| {
            s.counters
                .transitions_rejected
                .fetch_add(1, Ordering::Relaxed);
            if let Some(suppressed) = s.refusal_log.allow() {
                warn!(actor_id = msg.actor_id, error = %e, suppressed, "transitions refused");
            }
        })?;
        s.record_report(
            msg.actor_id,
            msg.actor_stats.as_ref(),
            &s.counters.transitions_rejected,
        )?;
        s.enqueue(Experience::Transitions(batch))?;
        ack.accepted = true;
        Ok(ack)
    }
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<proto::ParameterUpdate, Status>> + Send>>;

fn parameters_message(
    snapshot: &crate::param_store::Snapshot,
    fingerprint: &str,
) -> proto::Parameters {
    proto::Parameters {
        version: snapshot.version,
        model_fingerprint: fingerprint.to_string(),
        data: snapshot.data.clone(),
        normalization: Some(snapshot.normalization.to_proto()),
    }
}

/// How long a subscription stream, cancelled by a shutdown, waits for the trainer to mark the
/// run finished so that it can tell its actor.
const FINISH_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

fn finished_message(reason: String) -> proto::ParameterUpdate {
    proto::ParameterUpdate {
        update: Some(proto::parameter_update::Update::Finished(
            proto::RunFinished { reason },
        )),
    }
}

#[tonic::async_trait]
impl ParameterServer for ParameterService {
    async fn register(
        &self,
        request: Request<proto::RegisterRequest>,
    ) -> Result<Response<proto::RegisterResponse>, Status> {
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        self.register(request.into_inner(), peer)
            .map(Response::new)
            .map_err(|e| self.refuse(e))
    }

    async fn get_parameters(
        &self,
        request: Request<proto::GetParametersRequest>,
    ) -> Result<Response<proto::GetParametersResponse>, Status> {
        let req = request.into_inner();
        self.shared
            .check_actor(req.actor_id, &req.model_fingerprint)
            .map_err(|e| self.refuse(e))?;
        let snap = self.shared.store.latest();
        let parameters = (req.have_version != snap.version)
            .then(|| parameters_message(&snap, &self.shared.fingerprint));
        Ok(Response::new(proto::GetParametersResponse {
            latest_version: snap.version,
            parameters,
        }))
    }

    type SubscribeParametersStream = UpdateStream;

    async fn subscribe_parameters(
        &self,
        request: Request<proto::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeParametersStream>, Status> {
        let req = request.into_inner();
        let shared = self.shared.clone();
        shared
            .check_actor(req.actor_id, &req.model_fingerprint)
            .map_err(|e| self.refuse(e))?;
        shared.subscription_opened(req.actor_id);
        let guard = SubscriptionGuard {
            shared: shared.clone(),
            actor_id: req.actor_id,
        };
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            let _guard = guard;
            let mut watch = shared.store.subscribe();
            loop {
                let snap = watch.borrow_and_update().clone();
                let msg = match &snap.finished {
                    Some(reason) => finished_message(reason.clone()),
                    None => proto::ParameterUpdate {
                        update: Some(proto::parameter_update::Update::Parameters(
                            parameters_message(&snap, &shared.fingerprint),
                        )),
                    },
                };
                if tx.send(Ok(msg)).await.is_err() || snap.finished.is_some() {
                    break; // the client left, or the run is over
                }
                tokio::select! {
                    // A new version (or the end of the run) before anything else: the trainer
                    // marks the run finished just before it cancels the service.
                    biased;
                    changed = watch.changed() => if changed.is_err() { break },
                    _ = tx.closed() => break,
                    _ = shared.shutdown.cancelled() => {
                        // Cancelled from outside (a signal): the trainer marks the run finished
                        // right after. Give subscribers that last word, so they exit instead
                        // of reconnecting to a learner that is gone.
                        let finished = tokio::time::timeout(
                            FINISH_GRACE,
                            watch.wait_for(|s| s.finished.is_some()),
                        )
                        .await
                        .ok()
                        .and_then(|r| r.ok().and_then(|s| s.finished.clone()));
                        if let Some(reason) = finished {
                            let _ = tx.send(Ok(finished_message(reason))).await;
                        }
                        break;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn push_rollout(
        &self,
        request: Request<proto::Rollout>,
    ) -> Result<Response<proto::PushAck>, Status> {
        self.push_rollout(request.into_inner())
            .map(Response::new)
            .map_err(|e| self.refuse(e))
    }

    async fn push_gradient(
        &self,
        request: Request<proto::Gradient>,
    ) -> Result<Response<proto::GradientAck>, Status> {
        self.push_gradient(request.into_inner())
            .map(Response::new)
            .map_err(|e| self.refuse(e))
    }

    async fn push_transitions(
        &self,
        request: Request<proto::TransitionBatch>,
    ) -> Result<Response<proto::TransitionAck>, Status> {
        self.push_transitions(request.into_inner())
            .map(Response::new)
            .map_err(|e| self.refuse(e))
    }
}
