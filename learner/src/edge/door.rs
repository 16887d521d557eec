//! The door every push goes through, whatever the algorithm: is the caller a known actor
//! building this run's model, is its version one the learner published, is its report
//! plausible; then the bounded queue into the trainer. Each algorithm's admission
//! ([`super::Admission`]) calls these and decides the rest.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use shoal_common::codec::ParamLayout;
use shoal_common::config::RunConfig;
use shoal_common::episodes::{EpisodeBounds, EpisodeLedger, check_claims};
use shoal_common::model::ModelSpec;
use shoal_common::proto;
use shoal_common::stats::ActorStats;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::warn;

use super::error::ServiceError;
use super::registry::ActorRegistry;
use crate::params::{ParamStore, Snapshot};
use crate::telemetry::edge_counters::bump;
use crate::telemetry::{EdgeCounters, StatusBoard};

/// Keeps refusal logs readable under a flood of bad requests: at most one line per
/// [`RefusalLog::EVERY`]; each line says how many refusals went unlogged before it (all are
/// counted in the status line either way).
#[derive(Debug, Default)]
pub struct RefusalLog {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl RefusalLog {
    /// Shortest time between two refusal lines.
    pub const EVERY: Duration = Duration::from_millis(100);

    /// `Some(refusals not logged since the last line)` when this one may be logged.
    pub fn allow(&self) -> Option<u64> {
        let mut last = self.last.lock().expect("refusal log lock");
        if last.is_some_and(|t| t.elapsed() < Self::EVERY) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(Instant::now());
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

/// A push's episodes as booked on its actor's account ([`Door::check_episodes`]); the
/// booking is undone when this is dropped before [`Claim::taken`].
#[must_use = "say when the push is taken"]
pub struct Claim {
    registry: Arc<ActorRegistry>,
    actor_id: u32,
    steps: u64,
    spent: u64,
    taken: bool,
}

impl Claim {
    /// The push was taken (queued, or refused as stale for good): the booking stands.
    pub fn taken(mut self) {
        self.taken = true;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.taken {
            self.registry
                .refund_episodes(self.actor_id, self.steps, self.spent);
        }
    }
}

/// What every push-and-pull ack carries besides its verdict.
#[derive(Debug)]
pub struct PushStart {
    /// The newest version.
    pub current_version: u64,
    /// The newest parameters, when newer than the pusher's.
    pub parameters: Option<proto::Parameters>,
    /// Set when the run is over.
    pub finished: Option<proto::RunFinished>,
}

/// See the module docs.
pub struct Door {
    /// The run.
    pub config: Arc<RunConfig>,
    /// The network actors build.
    pub spec: ModelSpec,
    /// Its layout.
    pub layout: ParamLayout,
    /// Its fingerprint.
    pub fingerprint: String,
    /// Published parameters.
    pub params: ParamStore,
    /// The known actors.
    pub registry: Arc<ActorRegistry>,
    /// Refusal counters.
    pub counters: Arc<EdgeCounters>,
    /// Where actors' reports go.
    pub board: Arc<StatusBoard>,
    /// Rate limit of refusal log lines.
    pub refusal_log: RefusalLog,
    /// What the run's environment allows an episode to be.
    pub episode_bounds: EpisodeBounds,
    /// The run's cancellation.
    pub shutdown: CancellationToken,
}

impl Door {
    /// Counts a refusal and turns it into its status (the conversion itself is
    /// `From<ServiceError> for Status`, the one place errors become statuses).
    pub fn refuse(&self, e: ServiceError) -> Status {
        if let Some(counter) = e.counter(&self.counters) {
            bump(counter);
        }
        e.into()
    }

    /// A known actor building this run's model; records that it was seen.
    pub fn check_actor(&self, actor_id: u32, fingerprint: &str) -> Result<(), ServiceError> {
        if !self.registry.seen(actor_id) {
            return Err(ServiceError::UnknownActor(actor_id));
        }
        self.layout.check_fingerprint(fingerprint)?;
        Ok(())
    }

    /// Refuses a registration that states another environment, environment count or model
    /// than the run's (what it leaves empty is not checked).
    pub fn check_states(&self, req: &proto::RegisterRequest) -> Result<(), ServiceError> {
        let c = &self.config;
        let num_envs = if req.num_envs == 0 {
            String::new()
        } else {
            req.num_envs.to_string()
        };
        let stated = [
            ("environment", &req.env_id, &c.env_id),
            (
                "environment count (num_envs)",
                &num_envs,
                &c.num_envs.to_string(),
            ),
            (
                "model fingerprint",
                &req.model_fingerprint,
                &self.fingerprint,
            ),
        ];
        for (what, actor, run) in stated {
            if !actor.is_empty() && actor != run {
                return Err(ServiceError::Mismatch {
                    what,
                    run: run.clone(),
                    actor: shoal_common::text::bounded(actor),
                });
            }
        }
        Ok(())
    }

    /// The newest published version.
    pub fn latest_version(&self) -> u64 {
        self.params.latest().version
    }

    /// Refuses a version the learner never published.
    pub fn check_version(&self, version: u64) -> Result<u64, ServiceError> {
        let latest = self.latest_version();
        if version > latest {
            return Err(ServiceError::FutureVersion {
                got: version,
                latest,
            });
        }
        Ok(latest)
    }

    /// The start of a push from an actor that does not subscribe (its ack carries parameters):
    /// what the ack carries besides the verdict (when the run is over, the actor is recorded
    /// as told so); versions from the future are refused; the push is recorded.
    pub fn begin_push(&self, actor_id: u32, version: u64) -> Result<PushStart, ServiceError> {
        let snap = self.params.latest();
        let start = PushStart {
            current_version: snap.version,
            parameters: (snap.version > version).then(|| self.parameters_message(&snap)),
            finished: snap
                .finished
                .clone()
                .map(|reason| proto::RunFinished { reason }),
        };
        if start.finished.is_some() {
            self.registry.told_finished(actor_id);
            return Ok(start);
        }
        self.check_version(version)?;
        self.registry.pushed(actor_id);
        Ok(start)
    }

    /// Passes validated experience through; a malformed one is counted in `rejected` and
    /// logged (rate-limited) as `what` from `actor_id`.
    pub fn validated<T, E: std::fmt::Display>(
        &self,
        checked: Result<T, E>,
        rejected: &AtomicU64,
        actor_id: u32,
        what: &str,
    ) -> Result<T, E> {
        checked.inspect_err(|e| {
            bump(rejected);
            if let Some(suppressed) = self.refusal_log.allow() {
                warn!(actor_id, error = %e, suppressed, "{what} refused");
            }
        })
    }

    /// Validates the report a push carries (counted in `rejected` when implausible) and keeps
    /// it as the actor's newest.
    pub fn record_report(
        &self,
        actor_id: u32,
        msg: Option<&proto::ActorStats>,
        rejected: &AtomicU64,
    ) -> Result<(), ServiceError> {
        let report = ActorStats::from_proto(msg).inspect_err(|_| bump(rejected))?;
        if let Some(stats) = report {
            self.board
                .record_report(actor_id, self.registry.name(actor_id), stats);
        }
        Ok(())
    }

    /// Checks the episodes a push of `steps` environment steps claims to have finished against
    /// the environment (a push whose claims do not fit is refused, counted in `rejected` and
    /// logged) and books them on the actor's account. Episodes the account does not cover are
    /// taken out of the push (`returns` and `lengths` emptied; counted in
    /// `episode_claims_dropped`): it is taken without them. The booking is undone unless
    /// [`Claim::taken`] is called (a push a full queue sends back comes again).
    pub fn check_episodes(
        &self,
        actor_id: u32,
        steps: u64,
        returns: &mut Vec<f32>,
        lengths: &mut Vec<u32>,
        rejected: &AtomicU64,
    ) -> Result<Claim, ServiceError> {
        let b = &self.episode_bounds;
        let n = self.config.num_envs;
        let claimed = self.validated(
            check_claims(b, steps, n, returns, lengths),
            rejected,
            actor_id,
            "episode statistics",
        )?;
        let counts = self
            .registry
            .book_episodes(actor_id, steps, claimed, || EpisodeLedger::new(b, n));
        if !counts {
            bump(&self.counters.episode_claims_dropped);
            if let Some(suppressed) = self.refusal_log.allow() {
                warn!(
                    actor_id,
                    episodes = returns.len(),
                    episode_steps = claimed,
                    steps,
                    suppressed,
                    "episode statistics not counted: more episode steps than the actor pushed"
                );
            }
            returns.clear();
            lengths.clear();
        }
        Ok(Claim {
            registry: self.registry.clone(),
            actor_id,
            steps,
            spent: if counts { claimed } else { 0 },
            taken: false,
        })
    }

    /// Hands validated experience to the trainer; a full queue is backpressure.
    pub fn enqueue<T>(&self, queue: &Sender<T>, item: T) -> Result<(), ServiceError> {
        match queue.try_send(item) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(self.queue_full(queue)),
            Err(TrySendError::Disconnected(_)) => Err(ServiceError::ShuttingDown),
        }
    }

    /// Refuses a push before it is decoded when `queue` is full already (actors that never
    /// wait retry often; their refusals should cost next to nothing).
    pub fn check_room<T>(&self, queue: &Sender<T>) -> Result<(), ServiceError> {
        if queue.is_full() {
            return Err(self.queue_full(queue));
        }
        Ok(())
    }

    /// Counts a push refused for a full queue.
    fn queue_full<T>(&self, queue: &Sender<T>) -> ServiceError {
        bump(&self.counters.queue_full);
        ServiceError::QueueFull(queue.capacity().unwrap_or_default())
    }

    /// A parameter version as the wire carries it.
    pub fn parameters_message(&self, snapshot: &Snapshot) -> proto::Parameters {
        proto::Parameters {
            version: snapshot.version,
            model_fingerprint: self.fingerprint.clone(),
            data: snapshot.data.clone(),
            normalization: Some(snapshot.normalization.to_proto()),
        }
    }

    /// Environment steps in one push (`n_steps × num_envs`).
    pub fn steps_per_push(&self) -> usize {
        self.config.n_steps * self.config.num_envs
    }
}
