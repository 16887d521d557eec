//! PPO's admission: rollouts of any published version are validated and queued; the ack says
//! whether the rollout was fresh (made with the current version) and whether the learner
//! still wants more of this version ([`SyncGate`]).

use std::sync::Arc;

use crossbeam_channel::Sender;
use shoal_common::config::AlgorithmKind;
use shoal_common::proto;
use shoal_common::rollout::{Rollout, RolloutShape};
use shoal_common::settings::AlgorithmSettings;

use super::gate::SyncGate;
use crate::edge::Admission;
use crate::edge::{Door, ServiceError};

/// See the module docs.
pub(crate) struct PpoAdmission {
    pub queue: Sender<Rollout>,
    pub gate: Arc<SyncGate>,
    pub shape: RolloutShape,
}

impl Admission for PpoAdmission {
    fn kind(&self) -> AlgorithmKind {
        AlgorithmKind::Ppo
    }

    fn actor_settings(&self, _actor_id: u32) -> AlgorithmSettings {
        AlgorithmSettings::Ppo
    }

    fn push_rollout(
        &self,
        door: &Door,
        msg: proto::Rollout,
    ) -> Result<proto::PushAck, ServiceError> {
        door.check_actor(msg.actor_id, &msg.model_fingerprint)?;
        let latest = door.check_version(msg.version)?;
        let rejected = &door.counters.rollouts_rejected;
        let mut rollout = door.validated(
            Rollout::from_proto(&msg, self.shape),
            rejected,
            msg.actor_id,
            "rollout",
        )?;
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
        let subscribed = door.registry.subscribed();
        let (fresh, wants_more) = self.gate.note_push(msg.actor_id, msg.version, &subscribed);
        Ok(proto::PushAck {
            accepted: fresh,
            current_version: latest,
            wants_more,
            reason: if fresh {
                String::new()
            } else if door.config.deterministic && msg.version == latest {
                "a deterministic run takes one rollout per actor per version".into()
            } else {
                format!(
                    "stale: made with version {}, learner is at {latest}",
                    msg.version
                )
            },
        })
    }
}
