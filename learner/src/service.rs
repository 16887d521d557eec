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
use shoal_common::dqn::{TransitionBatch, TransitionError, apex_epsilon};
use shoal_common::gradient::{GradientError, GradientPush};
use shoal_common::model::ModelSpec;
use shoal_common::proto::{self, parameter_server_server::ParameterServer};
use shoal_common::rng::{derive_seed, streams};
use shoal_common::rollout::{Rollout, RolloutError, RolloutShape};
use shoal_common::settings::{A3cLoss, PROTOCOL_VERSION, model_spec_to_proto, normalize_to_proto};

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
            | ServiceError::FutureVersion { .. } => Status::invalid_argument(msg),
            ServiceError::QueueFull(_) => Status::resource_exhausted(msg),
            ServiceError::ShuttingDown => Status::unavailable(msg),
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
    /// A3C/DQN actors whose ack said the run is over.
    told_finished: HashSet<u32>,
}

/// An A3C actor counts as connected this long after its last push.
pub const A3C_CONNECTED_WINDOW: std::time::Duration = std::time::Duration::from_secs(5);

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
    queue: Sender<Experience>,
    actors: Mutex<Actors>,
    told: tokio::sync::Notify,
    pending: Mutex<Pending>,
    shutdown: CancellationToken,
}

impl Shared {
    /// Shared state for a run whose trainer reads from the other end of `queue`.
    pub fn new(
        config: RunConfig,
        spec: ModelSpec,
        store: ParamStore,
        queue: Sender<Experience>,
        shutdown: CancellationToken,
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
            fingerprint: layout.fingerprint(),
            layout,
            shape,
            config,
            spec,
            store,
            counters: Counters::default(),
            queue,
            actors: Mutex::new(Actors {
                next_id: 1,
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

    /// Actors with an open parameter subscription (PPO), or that pushed a gradient within the
    /// last [`A3C_CONNECTED_WINDOW`] (A3C actors do not subscribe).
    pub fn connected_actors(&self) -> usize {
        let actors = self.actors.lock().expect("actors lock");
        let recent = actors
            .last_push
            .values()
            .filter(|t| t.elapsed() < A3C_CONNECTED_WINDOW)
            .count();
        actors.subscribed.len().max(recent)
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
    /// [`A3C_CONNECTED_WINDOW`] has been told so by an ack. A3C and DQN actors do not subscribe
    /// to the parameter stream; the ack to their next push is how they learn that the run
    /// ended, so the server must still be up to give it.
    pub async fn wait_until_pushers_told(&self, within: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let all_told = {
                let actors = self.actors.lock().expect("actors lock");
                actors.last_push.iter().all(|(id, t)| {
                    actors.told_finished.contains(id) || t.elapsed() >= A3C_CONNECTED_WINDOW
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

    fn check_actor(&self, actor_id: u32, fingerprint: &str) -> Result<(), ServiceError> {
        if !self
            .actors
            .lock()
            .expect("actors lock")
            .names
            .contains_key(&actor_id)
        {
            return Err(ServiceError::UnknownActor(actor_id));
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
        info!(
            actor_id,
            connected = actors.subscribed.len(),
            "actor disconnected"
        );
    }
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
            let id = match req.previous_actor_id {
                Some(id) if actors.names.contains_key(&id) => id,
                _ => {
                    let id = actors.next_id;
                    actors.next_id += 1;
                    id
                }
            };
            actors.names.insert(id, req.name.clone());
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
                // Actor ids count from 1; the schedule's index cycles over `dqn.num_actors`.
                dqn: (c.algorithm == AlgorithmKind::Dqn).then(|| proto::DqnActor {
                    epsilon: apex_epsilon(
                        (actor_id as usize - 1) % c.dqn.num_actors,
                        c.dqn.num_actors,
                        c.dqn.epsilon,
                        c.dqn.epsilon_alpha,
                    ),
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
            warn!(actor_id = msg.actor_id, error = %e, "rollout refused");
        })?;
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
        if staleness > s.config.a3c.max_staleness {
            s.counters.gradients_stale.fetch_add(1, Ordering::Relaxed);
            ack.reason = format!(
                "stale: computed on version {}, {staleness} behind (max_staleness {})",
                msg.version, s.config.a3c.max_staleness
            );
            return Ok(ack);
        }
        let steps = (s.config.n_steps * s.config.num_envs) as u32;
        let grad =
            GradientPush::from_proto(&msg, s.layout.num_floats(), steps).inspect_err(|e| {
                s.counters
                    .gradients_rejected
                    .fetch_add(1, Ordering::Relaxed);
                warn!(actor_id = msg.actor_id, error = %e, "gradient refused");
            })?;
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
            s.counters.rollouts_rejected.fetch_add(1, Ordering::Relaxed);
            warn!(actor_id = msg.actor_id, error = %e, "transitions refused");
        })?;
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
        Ok(Response::new(self.register(request.into_inner(), peer)?))
    }

    async fn get_parameters(
        &self,
        request: Request<proto::GetParametersRequest>,
    ) -> Result<Response<proto::GetParametersResponse>, Status> {
        let req = request.into_inner();
        self.shared
            .check_actor(req.actor_id, &req.model_fingerprint)?;
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
        shared.check_actor(req.actor_id, &req.model_fingerprint)?;
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
        Ok(Response::new(self.push_rollout(request.into_inner())?))
    }

    async fn push_gradient(
        &self,
        request: Request<proto::Gradient>,
    ) -> Result<Response<proto::GradientAck>, Status> {
        Ok(Response::new(self.push_gradient(request.into_inner())?))
    }

    async fn push_transitions(
        &self,
        request: Request<proto::TransitionBatch>,
    ) -> Result<Response<proto::TransitionAck>, Status> {
        Ok(Response::new(self.push_transitions(request.into_inner())?))
    }
}
