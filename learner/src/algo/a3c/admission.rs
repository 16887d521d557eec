//! A3C's admission: a pushed gradient is validated, then refused if it is too stale (the ack
//! says so and carries fresh parameters) or queued; every ack carries newer parameters when
//! there are any, and says when the run is over.

use std::sync::Arc;

use crossbeam_channel::Sender;
use shoal_common::config::AlgorithmKind;
use shoal_common::gradient::GradientPush;
use shoal_common::proto;
use shoal_common::settings::{A3cLoss, AlgorithmSettings};

use super::staleness::StalenessBound;
use crate::edge::Admission;
use crate::edge::{Door, ServiceError};

/// See the module docs.
pub(crate) struct A3cAdmission {
    pub(crate) queue: Sender<GradientPush>,
    pub(crate) staleness: Arc<StalenessBound>,
    pub(crate) loss: A3cLoss,
    pub(crate) num_floats: usize,
}

impl Admission for A3cAdmission {
    fn kind(&self) -> AlgorithmKind {
        AlgorithmKind::A3c
    }

    fn actor_settings(&self, _actor_id: u32) -> AlgorithmSettings {
        AlgorithmSettings::A3c(self.loss)
    }

    fn push_gradient(
        &self,
        door: &Door,
        msg: proto::Gradient,
    ) -> Result<proto::GradientAck, ServiceError> {
        door.check_actor(msg.actor_id, &msg.model_fingerprint)?;
        let start = door.begin_push(msg.actor_id, msg.version)?;
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
        let rejected = &door.counters.gradients_rejected;
        let steps = door.steps_per_push() as u32;
        let mut grad = door.validated(
            GradientPush::from_proto(&msg, self.num_floats, steps),
            rejected,
            msg.actor_id,
            "gradient",
        )?;
        door.record_report(msg.actor_id, msg.actor_stats.as_ref(), rejected)?;
        let claim = door.check_episodes(
            msg.actor_id,
            grad.env_steps.into(),
            &mut grad.episode_returns,
            &mut grad.episode_lengths,
            rejected,
        )?;
        if let Err(staleness) = self.staleness.check(msg.version, start.current_version) {
            ack.reason = format!(
                "stale: computed on version {}, {staleness} behind (max_staleness {})",
                msg.version,
                self.staleness.max()
            );
            // Refused for good (the actor does not send it again): its steps were taken.
            claim.taken();
            return Ok(ack);
        }
        door.enqueue(&self.queue, grad)?;
        claim.taken();
        ack.accepted = true;
        Ok(ack)
    }
}
