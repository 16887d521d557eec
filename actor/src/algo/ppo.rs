//! Synchronous PPO on the actor: subscribe to parameter versions, collect a rollout with the
//! newest, push it; then, unless the learner still wants rollouts of this version, wait for the
//! next one (at most `param_wait_ms`; in a deterministic run, however long it takes).

use std::time::Duration;

use tracing::debug;

use shoal_common::env::EnvError;
use shoal_common::settings::ActorSettings;

use super::seam::{ActorAlgorithm, Link, Session, SessionResult};
use super::subscription::Subscription;
use crate::connection::{FULL_QUEUE_BACKOFF, retry_while_full};
use crate::error::{ActorError, SessionEnd, SessionError};
use crate::policy::Policy;
use crate::worker::Worker;

/// A PPO actor: its environments.
pub struct PpoActor {
    worker: Worker,
}

impl PpoActor {
    /// Environments for `settings`.
    pub fn new(settings: &ActorSettings) -> Result<Self, EnvError> {
        Ok(Self {
            worker: Worker::new(settings)?,
        })
    }
}

impl ActorAlgorithm for PpoActor {
    fn set_actor_id(&mut self, actor_id: u32) {
        self.worker.set_actor_id(actor_id);
    }

    fn session<'a>(&'a mut self, link: Link<'a>) -> Session<'a> {
        Box::pin(session(&mut self.worker, link))
    }
}

async fn session(worker: &mut Worker, link: Link<'_>) -> SessionResult {
    let Link {
        client,
        settings,
        summary,
        shutdown,
    } = link;
    let mut subscription = Subscription::open(client, settings).await?;
    let param_wait = Duration::from_millis(settings.param_wait_ms as u64);
    let mut policy: Option<Policy> = None;
    loop {
        if let Some(end) = subscription.adopt(settings, &mut policy)? {
            return Ok(end);
        }
        let Some(current) = &policy else {
            if let Some(end) = subscription.changed(shutdown).await? {
                return Ok(end);
            }
            continue;
        };
        // Collected inline: a CartPole rollout takes under a millisecond (the ppo_update
        // benchmark); parameter updates that arrive meanwhile wait in the stream until the push.
        let started = std::time::Instant::now();
        let rollout = worker.collect(current).map_err(ActorError::from)?;
        summary.collected(started, started.elapsed().as_secs_f64());
        let version = current.version();
        let mut msg = rollout.to_proto(&settings.model_fingerprint);
        msg.actor_stats = Some(summary.report(
            rollout.env_steps() as u64,
            rollout.episode_returns.len() as u64,
            worker.inference.take_mean(),
        ));
        let ack = match retry_while_full(shutdown, FULL_QUEUE_BACKOFF, async || {
            client.push_rollout(msg.clone()).await
        })
        .await
        {
            Ok(Some(ack)) => ack,
            Ok(None) => return Ok(SessionEnd::Cancelled),
            Err(SessionError::Lost(status)) => return subscription.push_failed(status).await,
            Err(e) => return Err(e),
        };
        summary.rollouts += 1;
        debug!(
            version,
            accepted = ack.accepted,
            wants_more = ack.wants_more,
            "rollout pushed"
        );
        if ack.wants_more {
            continue;
        }
        // Wait (bounded) for a version newer than the one just used, or the end. A
        // deterministic run acts only with the version that follows, however long it takes.
        let wait = if settings.deterministic {
            Duration::MAX
        } else {
            param_wait
        };
        tokio::select! {
            _ = subscription.newer_than(version, wait) => {}
            _ = shutdown.cancelled() => return Ok(SessionEnd::Cancelled),
        }
    }
}
