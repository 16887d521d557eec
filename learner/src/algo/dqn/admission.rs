//! DQN's admission: pushed transition batches are validated and queued whatever their version
//! (replay does not need fresh experience); each ack carries newer parameters when there are
//! any, the actor's ε now, and says when the run is over.

use std::sync::Arc;

use crossbeam_channel::Sender;
use shoal_common::config::AlgorithmKind;
use shoal_common::proto;
use shoal_common::settings::{AlgorithmSettings, DqnActor};
use shoal_common::transition::TransitionBatch;

use super::exploration::Exploration;
use crate::edge::Admission;
use crate::edge::{Door, ServiceError};

/// See the module docs.
pub(crate) struct DqnAdmission {
    pub(crate) queue: Sender<TransitionBatch>,
    pub(crate) exploration: Arc<Exploration>,
    pub(crate) n_step: usize,
    pub(crate) gamma: f64,
}

impl Admission for DqnAdmission {
    fn kind(&self) -> AlgorithmKind {
        AlgorithmKind::Dqn
    }

    fn actor_settings(&self, actor_id: u32) -> AlgorithmSettings {
        AlgorithmSettings::Dqn(DqnActor {
            epsilon: self.exploration.epsilon(actor_id),
            n_step: self.n_step,
            gamma: self.gamma,
        })
    }

    fn push_transitions(
        &self,
        door: &Door,
        msg: proto::TransitionBatch,
    ) -> Result<proto::TransitionAck, ServiceError> {
        door.check_actor(msg.actor_id, &msg.model_fingerprint)?;
        let start = door.begin_push(msg.actor_id, msg.version)?;
        let mut ack = proto::TransitionAck {
            accepted: false,
            current_version: start.current_version,
            parameters: start.parameters,
            finished: start.finished,
            // In a deterministic run this is the value after the rounds before this push's (the
            // actor pushes only once the version that closed them is published): it repeats.
            epsilon: Some(self.exploration.epsilon(msg.actor_id)),
        };
        if ack.finished.is_some() {
            return Ok(ack);
        }
        let rejected = &door.counters.transitions_rejected;
        let mut batch = door.validated(
            TransitionBatch::from_proto(
                &msg,
                door.steps_per_push(),
                (door.spec.obs_dim, door.spec.obs_format()),
                door.spec.action.outputs(),
            ),
            rejected,
            msg.actor_id,
            "transitions",
        )?;
        door.record_report(msg.actor_id, msg.actor_stats.as_ref(), rejected)?;
        let claim = door.check_episodes(
            msg.actor_id,
            batch.len() as u64,
            &mut batch.episode_returns,
            &mut batch.episode_lengths,
            rejected,
        )?;
        door.enqueue(&self.queue, batch)?;
        claim.taken();
        ack.accepted = true;
        Ok(ack)
    }
}
