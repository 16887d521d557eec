//! What the gRPC edge counts (refusals by reason, a full queue, forgotten actors) as atomics
//! the handlers, the auth layer and the actor registry increment and the trainer's status row
//! reads.

use std::sync::atomic::{AtomicU64, Ordering};

use super::metrics::StatusRow;

/// Counters kept at the edge.
#[derive(Debug, Default)]
pub struct EdgeCounters {
    /// Rollouts refused as malformed.
    pub rollouts_rejected: AtomicU64,
    /// Gradients refused as malformed.
    pub gradients_rejected: AtomicU64,
    /// Transition batches refused as malformed.
    pub transitions_rejected: AtomicU64,
    /// Pushes taken without their episode statistics: more episode steps than the actor had
    /// pushed.
    pub episode_claims_dropped: AtomicU64,
    /// Pushes refused because the queue was full.
    pub queue_full: AtomicU64,
    /// Registrations, including re-registrations.
    pub registrations: AtomicU64,
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
    /// Registrations stating another environment, environment count or model than the run's.
    pub refused_environment: AtomicU64,
    /// Connections closed at `learner.limits.max_connections`: the new one, or the oldest
    /// one that had not authenticated.
    pub refused_connections: AtomicU64,
    /// Parameter subscriptions refused by the per-actor or total stream limit.
    pub refused_streams: AtomicU64,
    /// Messages over the run's size limit (refused by the transport, OUT_OF_RANGE).
    pub refused_oversized: AtomicU64,
    /// Messages that are not valid protobuf (refused by the transport, INTERNAL).
    pub refused_undecodable: AtomicU64,
    /// Actors forgotten after `learner.actor_timeout_secs` of silence.
    pub actors_timed_out: AtomicU64,
}

/// Adds one to `counter`.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl EdgeCounters {
    /// Writes every counter into `row`, and `refused` as the sum of the refusals.
    pub fn fill(&self, row: &mut StatusRow) {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let refusals = [
            (&mut row.rollouts_rejected, r(&self.rollouts_rejected)),
            (&mut row.gradients_rejected, r(&self.gradients_rejected)),
            (&mut row.transitions_rejected, r(&self.transitions_rejected)),
            (
                &mut row.refused_unauthenticated,
                r(&self.refused_unauthenticated),
            ),
            (
                &mut row.refused_unknown_actor,
                r(&self.refused_unknown_actor),
            ),
            (&mut row.refused_fingerprint, r(&self.refused_fingerprint)),
            (
                &mut row.refused_future_version,
                r(&self.refused_future_version),
            ),
            (&mut row.refused_protocol, r(&self.refused_protocol)),
            (
                &mut row.refused_wrong_algorithm,
                r(&self.refused_wrong_algorithm),
            ),
            (&mut row.refused_environment, r(&self.refused_environment)),
            (&mut row.refused_connections, r(&self.refused_connections)),
            (&mut row.refused_streams, r(&self.refused_streams)),
            (&mut row.refused_oversized, r(&self.refused_oversized)),
            (&mut row.refused_undecodable, r(&self.refused_undecodable)),
        ];
        let mut total = 0;
        for (field, n) in refusals {
            *field = Some(n);
            total += n;
        }
        row.refused = Some(total);
        row.queue_full = Some(r(&self.queue_full));
        row.episode_claims_dropped = Some(r(&self.episode_claims_dropped));
        row.actors_timed_out = Some(r(&self.actors_timed_out));
    }
}
