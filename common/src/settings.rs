//! What an actor learns at registration, as domain types, and their wire conversions.

use thiserror::Error;

use crate::codec::{ParamEntry, ParamLayout};
use crate::model::{Activation, ModelSpec};
use crate::proto;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: proto::ProtocolVersion = proto::ProtocolVersion::ProtocolVersion1;

/// Everything an actor needs to run, from [`proto::RegisterResponse`].
#[derive(Debug, Clone, PartialEq)]
pub struct ActorSettings {
    /// The id the learner gave this actor.
    pub actor_id: u32,
    /// Gymnasium id.
    pub env_id: String,
    /// Environments per actor.
    pub num_envs: usize,
    /// Steps per rollout.
    pub n_steps: usize,
    /// This actor's seed.
    pub seed: u64,
    /// How long to wait for a newer version after a push (ms).
    pub param_wait_ms: u32,
    /// The network to build.
    pub model: ModelSpec,
    /// The learner's layout fingerprint.
    pub model_fingerprint: String,
}

/// A registration response that cannot be used.
#[derive(Debug, Error, PartialEq)]
pub enum SettingsError {
    /// A required field is missing or out of range.
    #[error("learner sent unusable settings: {0}")]
    Invalid(String),
    /// The model this actor builds differs from the learner's.
    #[error(transparent)]
    Fingerprint(#[from] crate::codec::CodecError),
}

/// The wire form of a model spec (with its layout for documentation).
pub fn model_spec_to_proto(spec: &ModelSpec) -> proto::ModelSpec {
    proto::ModelSpec {
        obs_dim: spec.obs_dim as u32,
        num_actions: spec.num_actions as u32,
        hidden: spec.hidden.iter().map(|&h| h as u32).collect(),
        activation: spec.activation.name().to_string(),
        params: spec
            .layout()
            .entries()
            .iter()
            .map(|e| proto::ParamInfo {
                path: e.path.clone(),
                shape: e.shape.iter().map(|&d| d as u32).collect(),
            })
            .collect(),
    }
}

impl ActorSettings {
    /// Reads a registration response and checks that the model this build makes from the spec
    /// has the learner's layout, both entry by entry and by fingerprint.
    pub fn from_proto(msg: &proto::RegisterResponse) -> Result<Self, SettingsError> {
        let invalid = |m: &str| SettingsError::Invalid(m.to_string());
        let s = msg
            .settings
            .as_ref()
            .ok_or_else(|| invalid("no run settings"))?;
        let m = msg.model.as_ref().ok_or_else(|| invalid("no model spec"))?;
        let activation = Activation::from_name(&m.activation)
            .ok_or_else(|| invalid(&format!("unknown activation `{}`", m.activation)))?;
        if s.num_envs == 0 || s.n_steps == 0 {
            return Err(invalid("num_envs and n_steps must be positive"));
        }
        let model = ModelSpec {
            obs_dim: m.obs_dim as usize,
            num_actions: m.num_actions as usize,
            hidden: m.hidden.iter().map(|&h| h as usize).collect(),
            activation,
        };
        let theirs = ParamLayout::new(
            m.params
                .iter()
                .map(|p| {
                    ParamEntry::new(
                        p.path.clone(),
                        p.shape.iter().map(|&d| d as usize).collect(),
                    )
                })
                .collect(),
        );
        let ours = model.layout();
        ours.check_fingerprint(&msg.model_fingerprint)?;
        ours.check_fingerprint(&theirs.fingerprint())?;
        Ok(Self {
            actor_id: msg.actor_id,
            env_id: s.env_id.clone(),
            num_envs: s.num_envs as usize,
            n_steps: s.n_steps as usize,
            seed: s.seed,
            param_wait_ms: s.param_wait_ms,
            model,
            model_fingerprint: msg.model_fingerprint.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response() -> proto::RegisterResponse {
        let spec = ModelSpec {
            obs_dim: 4,
            num_actions: 2,
            hidden: vec![8],
            activation: Activation::Relu,
        };
        proto::RegisterResponse {
            actor_id: 3,
            settings: Some(proto::RunSettings {
                env_id: "CartPole-v1".into(),
                num_envs: 2,
                n_steps: 8,
                seed: 11,
                algorithm: proto::Algorithm::Ppo as i32,
                param_wait_ms: 100,
            }),
            model_fingerprint: spec.layout().fingerprint(),
            model: Some(model_spec_to_proto(&spec)),
        }
    }

    #[test]
    fn matching_response_is_accepted() {
        let s = ActorSettings::from_proto(&response()).unwrap();
        assert_eq!(s.model.hidden, vec![8]);
        assert_eq!(s.actor_id, 3);
    }

    #[test]
    fn fingerprint_mismatch_is_refused() {
        let mut msg = response();
        msg.model_fingerprint = "0123456789abcdef".into();
        let err = ActorSettings::from_proto(&msg).unwrap_err();
        assert!(
            err.to_string().contains("model fingerprint mismatch"),
            "{err}"
        );
        // A learner whose layout differs (another architecture) is refused too.
        let mut msg = response();
        msg.model.as_mut().unwrap().params[0].shape = vec![4, 9];
        assert!(matches!(
            ActorSettings::from_proto(&msg),
            Err(SettingsError::Fingerprint(_))
        ));
    }
}
