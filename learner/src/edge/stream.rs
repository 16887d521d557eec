//! The parameter stream of one subscriber: every new version, then `RunFinished`, through a
//! bounded channel that becomes the response stream; the task ends when the client leaves, the
//! run ends or the learner is cancelled. The subscription counts as an open one while it lasts.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use shoal_common::proto;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::door::Door;
use super::error::ServiceError;

/// The response stream of `SubscribeParameters`.
pub type UpdateStream = Pin<Box<dyn Stream<Item = Result<proto::ParameterUpdate, Status>> + Send>>;

/// How long a subscription stream, cancelled by a shutdown, waits for the trainer to mark the
/// run finished so that it can tell its actor.
const FINISH_GRACE: Duration = Duration::from_secs(1);

fn finished_message(reason: String) -> proto::ParameterUpdate {
    proto::ParameterUpdate {
        update: Some(proto::parameter_update::Update::Finished(
            proto::RunFinished { reason },
        )),
    }
}

/// Removes a subscription from the count when its stream ends, however it ends.
struct SubscriptionGuard {
    door: Arc<Door>,
    actor_id: u32,
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        self.door.registry.subscription_closed(self.actor_id);
    }
}

/// Opens `actor_id`'s subscription (already checked) and returns its stream; refused when a
/// stream limit is reached.
pub fn subscribe(door: Arc<Door>, actor_id: u32) -> Result<UpdateStream, ServiceError> {
    let limits = &door.config.learner.limits;
    door.registry.subscription_opened(
        actor_id,
        limits.max_subscriptions_per_actor,
        limits.max_subscriptions,
    )?;
    let guard = SubscriptionGuard {
        door: door.clone(),
        actor_id,
    };
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        let _guard = guard;
        let mut watch = door.params.subscribe();
        loop {
            let snap = watch.borrow_and_update().clone();
            let msg = match &snap.finished {
                Some(reason) => finished_message(reason.clone()),
                None => proto::ParameterUpdate {
                    update: Some(proto::parameter_update::Update::Parameters(
                        door.parameters_message(&snap),
                    )),
                },
            };
            // A client that does not read (its flow-control window full) holds this send: the
            // shutdown does not wait for it.
            let sent = tokio::select! {
                biased;
                sent = tx.send(Ok(msg)) => sent.is_ok(),
                _ = door.shutdown.cancelled(), if snap.finished.is_none() => false,
            };
            if !sent || snap.finished.is_some() {
                break; // the client left, the run is over, or the learner is stopping
            }
            tokio::select! {
                // A new version (or the end of the run) before anything else: the trainer
                // marks the run finished just before it cancels the service.
                biased;
                changed = watch.changed() => if changed.is_err() { break },
                _ = tx.closed() => break,
                _ = door.shutdown.cancelled() => {
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
    Ok(Box::pin(ReceiverStream::new(rx)))
}
