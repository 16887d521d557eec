//! IMPALA on the actor: never wait for a version. Collect a rollout with the newest parameters
//! the subscription has delivered, and push it while the next one is collected (on a blocking
//! thread, so the runtime's one thread drives the push meanwhile). At most one push is in
//! flight, so a learner that falls behind slows the actor through its full queue rather than a
//! growing backlog.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tracing::debug;

use shoal_common::env::EnvError;
use shoal_common::proto;
use shoal_common::rollout::Rollout;
use shoal_common::settings::ActorSettings;

use super::seam::{ActorAlgorithm, Link, Session, SessionResult};
use super::subscription::Subscription;
use crate::connection::retry_while_full;
use crate::error::{ActorError, SessionEnd, SessionError};
use crate::policy::Policy;
use crate::worker::Worker;

/// The longest wait between pushes refused for a full queue: short, so that a rollout waits
/// about as long as its place in the learner's queue takes to free (its lag grows meanwhile),
/// and actors share the queue fairly. Refusals come before decoding and cost the learner
/// little.
const FULL_QUEUE_RETRY: Duration = Duration::from_millis(5);

/// An IMPALA actor: its environments (home between collections and sessions).
pub struct ImpalaActor {
    worker: Option<Worker>,
}

impl ImpalaActor {
    /// Environments for `settings`.
    pub fn new(settings: &ActorSettings) -> Result<Self, EnvError> {
        Ok(Self {
            worker: Some(Worker::new(settings)?),
        })
    }
}

impl ActorAlgorithm for ImpalaActor {
    fn set_actor_id(&mut self, actor_id: u32) {
        if let Some(w) = &mut self.worker {
            w.set_actor_id(actor_id);
        }
    }

    fn session<'a>(&'a mut self, link: Link<'a>) -> Session<'a> {
        Box::pin(session(&mut self.worker, link))
    }
}

/// Collects one rollout on a blocking thread, so that the runtime's one thread keeps the push
/// in flight moving meanwhile. The worker and policy go there and come back, with the seconds
/// the collection took.
async fn collect(
    slot: &mut Option<Worker>,
    policy: Policy,
) -> Result<(Policy, Rollout, f64), EnvError> {
    let mut worker = slot.take().expect("the worker is home between collections");
    let done = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let rollout = worker.collect(&policy);
        (worker, policy, rollout, started.elapsed().as_secs_f64())
    })
    .await;
    match done {
        Ok((worker, policy, rollout, secs)) => {
            *slot = Some(worker);
            Ok((policy, rollout?, secs))
        }
        // Collection panicked: panic here too, as an inline collection would have.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// A push's outcome: the ack, `None` when the actor was cancelled while the queue was full.
type Pushed = Result<Option<proto::PushAck>, SessionError>;

async fn session(slot: &mut Option<Worker>, link: Link<'_>) -> SessionResult {
    let Link {
        client,
        settings,
        summary,
        shutdown,
    } = link;
    let mut subscription = Subscription::open(client, settings).await?;
    let mut policy: Option<Policy> = None;
    // The push of the previous rollout: it runs while the next one is collected.
    let mut in_flight: Option<Pin<Box<dyn Future<Output = Pushed> + '_>>> = None;
    loop {
        if let Some(end) = subscription.adopt(settings, &mut policy)? {
            return Ok(end);
        }
        let Some(current) = policy.take() else {
            if let Some(end) = subscription.changed(shutdown).await? {
                return Ok(end);
            }
            continue;
        };
        let started = Instant::now();
        let (collected, pushed) = match in_flight.take() {
            Some(push) => {
                let (collected, pushed) = tokio::join!(collect(slot, current), push);
                (collected, Some(pushed))
            }
            None => (collect(slot, current).await, None),
        };
        let (current, rollout, secs) = collected.map_err(ActorError::from)?;
        // Busy while collecting; waiting for the previous push's ack (a full learner queue)
        // beyond that is idle time.
        summary.collected(started, secs);
        let version = current.version();
        policy = Some(current);
        match pushed {
            None | Some(Ok(Some(_))) => {}
            Some(Ok(None)) => return Ok(SessionEnd::Cancelled),
            Some(Err(SessionError::Lost(status))) => return subscription.push_failed(status).await,
            Some(Err(e)) => return Err(e),
        }
        if pushed.is_some() {
            summary.rollouts += 1;
        }
        let mut msg = rollout.to_proto(&settings.model_fingerprint);
        let inference = slot.as_mut().map_or(0.0, |w| w.inference.take_mean());
        msg.actor_stats = Some(summary.report(
            rollout.env_steps() as u64,
            rollout.episode_returns.len() as u64,
            inference,
        ));
        debug!(version, "rollout pushed");
        let mut client = client.clone();
        in_flight = Some(Box::pin(async move {
            retry_while_full(shutdown, FULL_QUEUE_RETRY, async || {
                client.push_rollout(msg.clone()).await
            })
            .await
        }));
    }
}
