//! IMPALA's admission: rollouts of any published version are validated (with the final
//! observations the learner re-evaluates) and queued; the ack always says the learner wants
//! more, since actors never wait for a version. A full queue refuses the push
//! (`RESOURCE_EXHAUSTED`): the actor backs off, which is the backpressure.

use crossbeam_channel::Sender;
use shoal_common::config::AlgorithmKind;
use shoal_common::proto;
use shoal_common::rollout::{Rollout, RolloutShape};
use shoal_common::settings::AlgorithmSettings;

use crate::edge::{Admission, Door, ServiceError};

/// See the module docs.
pub(crate) struct ImpalaAdmission {
    pub queue: Sender<Rollout>,
    pub shape: RolloutShape,
}

impl Admission for ImpalaAdmission {
    fn kind(&self) -> AlgorithmKind {
        AlgorithmKind::Impala
    }

    fn actor_settings(&self, _actor_id: u32) -> AlgorithmSettings {
        AlgorithmSettings::Impala
    }

    fn push_rollout(
        &self,
        door: &Door,
        msg: proto::Rollout,
    ) -> Result<proto::PushAck, ServiceError> {
        door.check_actor(msg.actor_id, &msg.model_fingerprint)?;
        door.check_room(&self.queue)?;
        let latest = door.check_version(msg.version)?;
        let rejected = &door.counters.rollouts_rejected;
        let checked = Rollout::from_proto(&msg, self.shape)
            .and_then(|r| r.require_final_obs().map(|_| ()).map(|()| r));
        let mut rollout = door.validated(checked, rejected, msg.actor_id, "rollout")?;
        door.record_report(msg.actor_id, msg.actor_stats.as_ref(), rejected)?;
        let claim = door.check_episodes(
            msg.actor_id,
            rollout.env_steps() as u64,
            &mut rollout.episode_returns,
            &mut rollout.episode_lengths,
            rejected,
        )?;
        door.enqueue(&self.queue, rollout)?;
        claim.taken();
        Ok(proto::PushAck {
            accepted: true,
            current_version: latest,
            wants_more: true,
            reason: String::new(),
        })
    }
}
