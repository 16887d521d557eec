//! Synchronous PPO on the actor: subscribe to parameter versions, collect a rollout with the
//! newest, push it; then, unless the learner still wants rollouts of this version, wait for the
//! next one (at most `param_wait_ms`; in a deterministic run, however long it takes).

use std::time::Duration;

use tokio::sync::watch;
use tonic::Status;
use tracing::debug;

use shoal_common::env::EnvError;
use shoal_common::proto;
use shoal_common::settings::ActorSettings;

use super::seam::{ActorAlgorithm, Link, Session, SessionResult};
use crate::connection::retry_while_full;
use crate::error::{SessionEnd, SessionError};
use crate::policy::Policy;
use crate::worker::Worker;

/// How long an actor whose push failed waits for the parameter stream to say whether the run
/// ended.
const FINISH_GRACE: Duration = Duration::from_secs(2);

/// The newest thing the parameter subscription said.
#[derive(Debug, Clone)]
enum Latest {
    Nothing,
    Params(proto::Parameters),
    Finished(String),
    Lost(Status),
}

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

/// Aborts the stream's forwarding task when the session ends, however it ends, so that the
/// learner sees the subscription close.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Forwards the parameter stream into a watch channel: the newest version (or the end) is all
/// the collector needs.
fn forward(
    mut stream: tonic::Streaming<proto::ParameterUpdate>,
) -> (watch::Receiver<Latest>, AbortOnDrop) {
    let (tx, rx) = watch::channel(Latest::Nothing);
    let task = tokio::spawn(async move {
        loop {
            let latest = match stream.message().await {
                Ok(Some(proto::ParameterUpdate {
                    update: Some(proto::parameter_update::Update::Parameters(p)),
                })) => Latest::Params(p),
                Ok(Some(proto::ParameterUpdate {
                    update: Some(proto::parameter_update::Update::Finished(f)),
                })) => Latest::Finished(f.reason),
                Ok(Some(_)) => continue,
                Ok(None) => Latest::Lost(Status::unavailable(
                    "parameter stream closed by the learner",
                )),
                Err(status) => Latest::Lost(status),
            };
            let last = !matches!(latest, Latest::Params(..));
            if tx.send(latest).is_err() || last {
                break;
            }
        }
    });
    (rx, AbortOnDrop(task))
}

async fn session(worker: &mut Worker, link: Link<'_>) -> SessionResult {
    let Link {
        client,
        settings,
        summary,
        shutdown,
    } = link;
    let stream = client
        .subscribe_parameters(proto::SubscribeRequest {
            actor_id: settings.actor_id,
            model_fingerprint: settings.model_fingerprint.clone(),
        })
        .await?
        .into_inner();
    let (mut rx, _forward) = forward(stream);
    let param_wait = Duration::from_millis(settings.param_wait_ms as u64);
    let mut policy: Option<Policy> = None;
    loop {
        // Adopt the newest version, if any.
        let latest = rx.borrow_and_update().clone();
        match latest {
            Latest::Params(p) if policy.as_ref().is_none_or(|old| old.version() < p.version) => {
                policy = Some(Policy::from_parameters(settings, &p)?.1);
                debug!(version = p.version, "parameters loaded");
            }
            Latest::Finished(reason) => return Ok(SessionEnd::Finished(reason)),
            Latest::Lost(status) => return Err(SessionError::Lost(status)),
            _ => {}
        }
        let Some(current) = &policy else {
            tokio::select! {
                changed = rx.changed() => if changed.is_err() {
                    return Err(SessionError::Lost(Status::unavailable("parameter stream ended")));
                },
                _ = shutdown.cancelled() => return Ok(SessionEnd::Cancelled),
            }
            continue;
        };
        // Collected inline: a CartPole rollout takes under a millisecond (the ppo_update
        // benchmark); parameter updates that arrive meanwhile wait in the stream until the push.
        let rollout = worker.collect(current);
        let version = current.version();
        let mut msg = rollout.to_proto(&settings.model_fingerprint);
        msg.actor_stats = Some(summary.report(
            rollout.env_steps() as u64,
            rollout.episode_returns.len() as u64,
            worker.inference.take_mean(),
        ));
        let ack = match retry_while_full(shutdown, async || client.push_rollout(msg.clone()).await)
            .await
        {
            Ok(ack) => ack,
            // A learner that ends the run tells its subscribers and then closes every
            // connection; a push in flight can fail first. The stream says which it was.
            Err(SessionError::Lost(status)) => {
                return match run_finished(&mut rx, FINISH_GRACE).await {
                    Some(reason) => Ok(SessionEnd::Finished(reason)),
                    None => Err(SessionError::Lost(status)),
                };
            }
            Err(e) => return Err(e),
        };
        let Some(ack) = ack else {
            return Ok(SessionEnd::Cancelled);
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
        // Wait (bounded) for a version newer than the one just used, or the end.
        let newer = rx.wait_for(|latest| match latest {
            Latest::Params(p) => p.version > version,
            Latest::Nothing => false,
            Latest::Finished(_) | Latest::Lost(_) => true,
        });
        // A deterministic run acts only with the version that follows, however long it takes.
        let wait = if settings.deterministic {
            Duration::MAX
        } else {
            param_wait
        };
        tokio::select! {
            _ = tokio::time::timeout(wait, newer) => {}
            _ = shutdown.cancelled() => return Ok(SessionEnd::Cancelled),
        }
    }
}

/// The run's end reason if the parameter stream reports it within `within`.
async fn run_finished(rx: &mut watch::Receiver<Latest>, within: Duration) -> Option<String> {
    let ended = rx.wait_for(|l| matches!(l, Latest::Finished(_) | Latest::Lost(_)));
    match tokio::time::timeout(within, ended).await {
        Ok(Ok(latest)) => match &*latest {
            Latest::Finished(reason) => Some(reason.clone()),
            _ => None,
        },
        _ => None,
    }
}
