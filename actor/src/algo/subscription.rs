//! The parameter subscription of rollout actors (PPO, IMPALA): the stream forwarded into a watch
//! channel (only the newest version matters), the policy it makes, and how a failed push learns
//! whether the run ended.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::debug;

use shoal_common::proto;
use shoal_common::settings::ActorSettings;

use super::seam::SessionResult;
use crate::connection::Client;
use crate::error::{SessionEnd, SessionError};
use crate::policy::Policy;

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

/// Aborts the stream's forwarding task when the session ends, however it ends, so that the
/// learner sees the subscription close.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An open subscription: the newest update, kept by a forwarding task.
pub(crate) struct Subscription {
    rx: watch::Receiver<Latest>,
    _forward: AbortOnDrop,
}

impl Subscription {
    /// Subscribes and starts forwarding.
    pub(crate) async fn open(
        client: &mut Client,
        settings: &ActorSettings,
    ) -> Result<Self, SessionError> {
        let mut stream = client
            .subscribe_parameters(proto::SubscribeRequest {
                actor_id: settings.actor_id,
                model_fingerprint: settings.model_fingerprint.clone(),
            })
            .await?
            .into_inner();
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
        Ok(Self {
            rx,
            _forward: AbortOnDrop(task),
        })
    }

    /// Replaces `policy` with the newest version if it is newer. `Some(end)` when the run
    /// ended; an error when the stream was lost.
    pub(crate) fn adopt(
        &mut self,
        settings: &ActorSettings,
        policy: &mut Option<Policy>,
    ) -> Result<Option<SessionEnd>, SessionError> {
        let latest = self.rx.borrow_and_update().clone();
        match latest {
            Latest::Params(p) if policy.as_ref().is_none_or(|old| old.version() < p.version) => {
                *policy = Some(Policy::from_parameters(settings, &p)?.1);
                debug!(version = p.version, "parameters loaded");
            }
            Latest::Finished(reason) => return Ok(Some(SessionEnd::Finished(reason))),
            Latest::Lost(status) => return Err(SessionError::Lost(status)),
            _ => {}
        }
        Ok(None)
    }

    /// Waits for the stream to say anything new; `Some(end)` when the actor is cancelled.
    pub(crate) async fn changed(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Result<Option<SessionEnd>, SessionError> {
        tokio::select! {
            changed = self.rx.changed() => match changed {
                Ok(()) => Ok(None),
                Err(_) => Err(SessionError::Lost(Status::unavailable("parameter stream ended"))),
            },
            _ = shutdown.cancelled() => Ok(Some(SessionEnd::Cancelled)),
        }
    }

    /// Waits at most `wait` for a version newer than `version`, or the end.
    pub(crate) async fn newer_than(&mut self, version: u64, wait: Duration) {
        let newer = self.rx.wait_for(|latest| match latest {
            Latest::Params(p) => p.version > version,
            Latest::Nothing => false,
            Latest::Finished(_) | Latest::Lost(_) => true,
        });
        let _ = tokio::time::timeout(wait, newer).await;
    }

    /// How a session whose push failed with `status` ends: a learner that ends the run tells
    /// its subscribers and then closes every connection, so a push in flight can fail first;
    /// the stream says which it was.
    pub(crate) async fn push_failed(&mut self, status: Status) -> SessionResult {
        let ended = self
            .rx
            .wait_for(|l| matches!(l, Latest::Finished(_) | Latest::Lost(_)));
        if let Ok(Ok(latest)) = tokio::time::timeout(FINISH_GRACE, ended).await
            && let Latest::Finished(reason) = &*latest
        {
            return Ok(SessionEnd::Finished(reason.clone()));
        }
        Err(SessionError::Lost(status))
    }
}
