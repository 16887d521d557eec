//! What an actor learns at registration, as domain types, and their wire conversions.

use thiserror::Error;

use crate::codec::{ParamEntry, ParamLayout};
use crate::config::{self, AlgorithmKind, EngineChoice, Range};
use crate::env::{EnvError, EnvSpec, VecEnv};
use crate::model::{ActionHead, Activation, EncoderKind, Input, ModelSpec, SequenceShape};
use crate::normalize::NormalizeSettings;
use crate::proto;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: proto::ProtocolVersion = proto::ProtocolVersion::ProtocolVersion2;

/// The A3C loss an actor differentiates (see `A3cLoss` in the proto).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct A3cLoss {
    /// Discount of the n-step returns.
    pub gamma: f64,
    /// Value loss weight.
    pub vf_coef: f32,
    /// Entropy bonus weight.
    pub ent_coef: f32,
}

impl A3cLoss {
    /// From the run config.
    pub fn from_config(c: &crate::config::A3cConfig) -> Self {
        Self {
            gamma: c.gamma,
            vf_coef: c.vf_coef as f32,
            ent_coef: c.ent_coef as f32,
        }
    }

    /// The wire form.
    pub fn to_proto(&self) -> proto::A3cLoss {
        proto::A3cLoss {
            gamma: self.gamma,
            vf_coef: self.vf_coef,
            ent_coef: self.ent_coef,
        }
    }
}

/// A DQN actor's exploration and n-step settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DqnActor {
    /// This actor's ε.
    pub epsilon: f64,
    /// Steps per transition.
    pub n_step: usize,
    /// Discount.
    pub gamma: f64,
}

/// The algorithm an actor runs and what it needs to know of it, as the learner says at
/// registration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AlgorithmSettings {
    /// Synchronous PPO: rollouts of the current version.
    Ppo,
    /// A3C: the loss whose gradient the actor computes.
    A3c(A3cLoss),
    /// DQN: exploration and n-step transitions.
    Dqn(DqnActor),
    /// IMPALA: rollouts of whatever version the actor holds, pushed without waiting.
    Impala,
}

impl AlgorithmSettings {
    /// Which algorithm.
    pub fn kind(&self) -> AlgorithmKind {
        match self {
            AlgorithmSettings::Ppo => AlgorithmKind::Ppo,
            AlgorithmSettings::A3c(_) => AlgorithmKind::A3c,
            AlgorithmSettings::Dqn(_) => AlgorithmKind::Dqn,
            AlgorithmSettings::Impala => AlgorithmKind::Impala,
        }
    }

    /// The wire form: the algorithm and its sub-message, into `settings`.
    pub fn write_proto(&self, settings: &mut proto::RunSettings) {
        let (algorithm, a3c, dqn) = match self {
            AlgorithmSettings::Ppo => (proto::Algorithm::Ppo, None, None),
            AlgorithmSettings::Impala => (proto::Algorithm::Impala, None, None),
            AlgorithmSettings::A3c(loss) => (proto::Algorithm::A3c, Some(loss.to_proto()), None),
            AlgorithmSettings::Dqn(d) => (
                proto::Algorithm::Dqn,
                None,
                Some(proto::DqnActor {
                    epsilon: d.epsilon,
                    n_step: d.n_step as u32,
                    gamma: d.gamma,
                }),
            ),
        };
        settings.algorithm = algorithm as i32;
        settings.a3c = a3c;
        settings.dqn = dqn;
    }

    /// Reads the algorithm and its sub-message from `s`, checked against the config's ranges.
    fn from_proto(s: &proto::RunSettings) -> Result<Self, String> {
        let ranges = |checks: &[(&str, f64, Range)]| {
            checks
                .iter()
                .try_for_each(|(field, value, range)| range.check(field, *value))
                .map_err(|e| e.to_string())
        };
        match proto::Algorithm::try_from(s.algorithm) {
            Ok(proto::Algorithm::Ppo) => Ok(AlgorithmSettings::Ppo),
            Ok(proto::Algorithm::Impala) => Ok(AlgorithmSettings::Impala),
            Ok(proto::Algorithm::A3c) => {
                let l = s.a3c.as_ref().ok_or("A3C run without its loss settings")?;
                ranges(&[
                    ("a3c.gamma", l.gamma, config::a3c::GAMMA),
                    ("a3c.vf_coef", l.vf_coef as f64, config::a3c::LOSS_COEF),
                    ("a3c.ent_coef", l.ent_coef as f64, config::a3c::LOSS_COEF),
                ])?;
                Ok(AlgorithmSettings::A3c(A3cLoss {
                    gamma: l.gamma,
                    vf_coef: l.vf_coef,
                    ent_coef: l.ent_coef,
                }))
            }
            Ok(proto::Algorithm::Dqn) => {
                let d = s.dqn.as_ref().ok_or("DQN run without its actor settings")?;
                ranges(&[
                    ("dqn.epsilon", d.epsilon, config::dqn::EPSILON),
                    ("dqn.gamma", d.gamma, config::dqn::GAMMA),
                    ("dqn.n_step", d.n_step as f64, config::dqn::N_STEP),
                ])?;
                Ok(AlgorithmSettings::Dqn(DqnActor {
                    epsilon: d.epsilon,
                    n_step: d.n_step as usize,
                    gamma: d.gamma,
                }))
            }
            _ => Err(format!("unsupported algorithm {}", s.algorithm)),
        }
    }
}

/// Settings are of the algorithm they are for (`settings.algorithm == AlgorithmKind::Ppo`).
impl PartialEq<AlgorithmKind> for AlgorithmSettings {
    fn eq(&self, kind: &AlgorithmKind) -> bool {
        self.kind() == *kind
    }
}

/// Everything an actor needs to run, from [`proto::RegisterResponse`].
#[derive(Debug, Clone, PartialEq)]
pub struct ActorSettings {
    /// The id the learner gave this actor.
    pub actor_id: u32,
    /// The environment, with its frame stacking.
    pub env: EnvSpec,
    /// Environments per actor.
    pub num_envs: usize,
    /// Steps per rollout.
    pub n_steps: usize,
    /// This actor's seed.
    pub seed: u64,
    /// The algorithm the actor runs, with what it needs of it.
    pub algorithm: AlgorithmSettings,
    /// How long to wait for a newer version after a push (ms).
    pub param_wait_ms: u32,
    /// The run repeats bit for bit: after each push, wait for the next version however long
    /// it takes.
    pub deterministic: bool,
    /// How observations and rewards are normalised.
    pub normalize: NormalizeSettings,
    /// The network to build.
    pub model: ModelSpec,
    /// The learner's layout fingerprint.
    pub model_fingerprint: String,
    /// The compute engine the learner's run names (`learner.engine`); actors compute on the
    /// CPU with it.
    pub engine: EngineChoice,
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

/// The wire form of normalisation settings.
pub fn normalize_to_proto(n: &NormalizeSettings) -> proto::Normalization {
    proto::Normalization {
        observations: n.observations,
        rewards: n.rewards,
        clip_observations: n.clip_observations,
        clip_rewards: n.clip_rewards,
        gamma: n.gamma,
        epsilon: n.epsilon,
    }
}

fn normalize_from_proto(n: Option<&proto::Normalization>) -> Result<NormalizeSettings, String> {
    let n = n.ok_or("no normalisation settings")?;
    let positive = config::normalize::POSITIVE;
    [
        (
            "normalize.clip_observations",
            n.clip_observations as f64,
            positive,
        ),
        ("normalize.clip_rewards", n.clip_rewards as f64, positive),
        ("normalize.epsilon", n.epsilon, positive),
        ("ppo.gamma", n.gamma, config::ppo::GAMMA),
    ]
    .iter()
    .try_for_each(|(field, value, range)| range.check(field, *value))
    .map_err(|e| format!("normalisation settings: {e}"))?;
    Ok(NormalizeSettings {
        observations: n.observations,
        rewards: n.rewards,
        clip_observations: n.clip_observations,
        clip_rewards: n.clip_rewards,
        gamma: n.gamma,
        epsilon: n.epsilon,
    })
}

/// The wire form of a model spec (with its layout for documentation).
pub fn model_spec_to_proto(spec: &ModelSpec) -> proto::ModelSpec {
    let distribution = match spec.action {
        ActionHead::Categorical(_) => proto::ActionDistribution::Categorical,
        ActionHead::Gaussian(_) => proto::ActionDistribution::Gaussian,
    };
    proto::ModelSpec {
        obs_dim: spec.obs_dim as u32,
        num_actions: spec.action.outputs() as u32,
        action_distribution: distribution as i32,
        hidden: spec.hidden.iter().map(|&h| h as u32).collect(),
        activation: spec.activation.name().to_string(),
        image_shape: spec
            .image()
            .map_or_else(Vec::new, |s| s.iter().map(|&d| d as u32).collect()),
        encoder: spec.encoder.name().to_string(),
        token_shape: match spec.input {
            Input::Tokens { length, vocab } => vec![length as u32, vocab as u32],
            _ => Vec::new(),
        },
        transformer: (spec.encoder == EncoderKind::Transformer).then(|| {
            let t = spec.sequence;
            proto::TransformerShape {
                width: t.width as u32,
                depth: t.depth as u32,
                heads: t.heads as u32,
                feed_forward: t.feed_forward as u32,
            }
        }),
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
    /// This actor's `num_envs` copies of the run's environment, seeded from its seed, checked
    /// against the network the learner sent: an environment the network cannot read stops the
    /// actor here, with both shapes named, instead of every push failing the learner's check.
    pub fn open_envs(&self) -> Result<VecEnv, EnvError> {
        let venv = crate::sources::open(&self.env, self.num_envs, self.seed)?;
        let space = venv.observation_space();
        if space.flat_dim() != self.model.obs_dim || Input::of(space) != self.model.input {
            return Err(EnvError::ModelMismatch {
                env: self.env.to_string(),
                space: space.to_string(),
                model: self.model.input(),
            });
        }
        Ok(venv)
    }

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
        let n = m.num_actions as usize;
        let action = match proto::ActionDistribution::try_from(m.action_distribution) {
            Ok(proto::ActionDistribution::Categorical) => ActionHead::Categorical(n),
            Ok(proto::ActionDistribution::Gaussian) => ActionHead::Gaussian(n),
            _ => {
                return Err(invalid(&format!(
                    "unknown action distribution {}",
                    m.action_distribution
                )));
            }
        };
        let normalize = normalize_from_proto(s.normalization.as_ref()).map_err(|m| invalid(&m))?;
        let algorithm = AlgorithmSettings::from_proto(s).map_err(|m| invalid(&m))?;
        let encoder = match m.encoder.as_str() {
            "" => EncoderKind::Mlp,
            name => EncoderKind::from_name(name).ok_or_else(|| {
                invalid(&format!("unknown encoder `{}`", crate::text::bounded(name)))
            })?,
        };
        let input = match (&m.image_shape[..], &m.token_shape[..]) {
            ([], []) => Input::Vector,
            (&[c, h, w], []) => Input::Image([c as usize, h as usize, w as usize]),
            ([], &[length, vocab]) => Input::Tokens {
                length: length as usize,
                vocab: vocab as usize,
            },
            _ => {
                return Err(invalid(
                    "image_shape must be [C, H, W] or token_shape [L, V], not both",
                ));
            }
        };
        let sequence = m
            .transformer
            .map_or_else(SequenceShape::default, |t| SequenceShape {
                width: t.width as usize,
                depth: t.depth as usize,
                heads: t.heads as usize,
                feed_forward: t.feed_forward as usize,
            });
        let model = ModelSpec {
            obs_dim: m.obs_dim as usize,
            input,
            encoder,
            action,
            hidden: m.hidden.iter().map(|&h| h as usize).collect(),
            activation,
            sequence,
        };
        model.validate().map_err(|m| invalid(&m))?;
        let engine = match s.engine.as_str() {
            "" => EngineChoice::Auto,
            name => EngineChoice::from_name(name).ok_or_else(|| {
                let shown: String = name.chars().take(32).collect();
                invalid(&format!("unknown engine {shown:?}"))
            })?,
        };
        let ours = model.layout();
        ours.check_fingerprint(&msg.model_fingerprint)?;
        // The learner's parameter list, entry by entry, read for the input ours reads (both
        // come from the same spec's image shape).
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
        )
        .with_input(ours.input().to_string());
        ours.check_fingerprint(&theirs.fingerprint())?;
        Ok(Self {
            actor_id: msg.actor_id,
            env: EnvSpec::stacked(s.env_id.clone(), s.frame_stack as usize),
            num_envs: s.num_envs as usize,
            n_steps: s.n_steps as usize,
            seed: s.seed,
            algorithm,
            param_wait_ms: s.param_wait_ms,
            deterministic: s.deterministic,
            normalize,
            model,
            model_fingerprint: msg.model_fingerprint.clone(),
            engine,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response() -> proto::RegisterResponse {
        let spec = ModelSpec::mlp(4, ActionHead::Categorical(2), vec![8], Activation::Relu);
        proto::RegisterResponse {
            actor_id: 3,
            actor_secret: vec![1; 32].into(),
            settings: Some(proto::RunSettings {
                env_id: "CartPole-v1".into(),
                num_envs: 2,
                n_steps: 8,
                seed: 11,
                algorithm: proto::Algorithm::Ppo as i32,
                param_wait_ms: 100,
                normalization: Some(normalize_to_proto(&NormalizeSettings::off())),
                a3c: None,
                dqn: None,
                deterministic: false,
                frame_stack: 0,
                engine: "host".into(),
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
        assert_eq!(s.normalize, NormalizeSettings::off());
    }

    #[test]
    fn gaussian_spec_round_trips_and_distribution_is_checked() {
        let spec = ModelSpec::mlp(3, ActionHead::Gaussian(1), vec![8], Activation::Tanh);
        let mut msg = response();
        msg.model = Some(model_spec_to_proto(&spec));
        msg.model_fingerprint = spec.layout().fingerprint();
        assert_eq!(ActorSettings::from_proto(&msg).unwrap().model, spec);
        // The same widths read as categorical build another layout (no log_std): refused.
        msg.model.as_mut().unwrap().action_distribution =
            proto::ActionDistribution::Categorical as i32;
        assert!(matches!(
            ActorSettings::from_proto(&msg),
            Err(SettingsError::Fingerprint(_))
        ));
        msg.model.as_mut().unwrap().action_distribution = 0;
        assert!(matches!(
            ActorSettings::from_proto(&msg),
            Err(SettingsError::Invalid(_))
        ));
    }

    #[test]
    fn an_image_model_on_stacked_frames_is_accepted_as_the_learner_sent_it() {
        let spec = ModelSpec {
            obs_dim: 100,
            input: Input::Image([2, 10, 5]),
            encoder: EncoderKind::SmallCnn,
            ..ModelSpec::mlp(
                100,
                ActionHead::Categorical(3),
                vec![64, 64],
                Activation::Relu,
            )
        };
        let mut msg = response();
        let settings = msg.settings.as_mut().unwrap();
        settings.env_id = "Catch-v0".into();
        settings.frame_stack = 2;
        msg.model = Some(model_spec_to_proto(&spec));
        msg.model_fingerprint = spec.layout().fingerprint();
        let s = ActorSettings::from_proto(&msg).unwrap();
        assert_eq!(s.model, spec);
        assert_eq!(s.env, EnvSpec::stacked("Catch-v0", 2));
        assert_eq!(s.open_envs().unwrap().obs_dim(), 100);
        // The learner's fingerprint is of the image model: the same parameter list read from
        // another image shape is another model.
        msg.model.as_mut().unwrap().image_shape = vec![2, 5, 10];
        assert!(matches!(
            ActorSettings::from_proto(&msg),
            Err(SettingsError::Fingerprint(_))
        ));
    }

    #[test]
    fn a_transformer_on_token_sequences_round_trips_and_its_heads_count() {
        let spec = ModelSpec {
            obs_dim: 11,
            input: Input::Tokens {
                length: 10,
                vocab: 40,
            },
            encoder: EncoderKind::Transformer,
            sequence: SequenceShape {
                width: 16,
                depth: 1,
                heads: 2,
                feed_forward: 32,
            },
            ..ModelSpec::mlp(
                11,
                ActionHead::Categorical(40),
                vec![64, 64],
                Activation::Tanh,
            )
        };
        let mut msg = response();
        msg.settings.as_mut().unwrap().env_id = "Text-Reverse-v0?length=3-4".into();
        msg.model = Some(model_spec_to_proto(&spec));
        msg.model_fingerprint = spec.layout().fingerprint();
        let s = ActorSettings::from_proto(&msg).unwrap();
        assert_eq!(s.model, spec);
        assert_eq!(s.open_envs().unwrap().obs_dim(), 11);
        // Heads do not change a parameter shape; the fingerprint tells them apart.
        msg.model
            .as_mut()
            .unwrap()
            .transformer
            .as_mut()
            .unwrap()
            .heads = 4;
        assert!(matches!(
            ActorSettings::from_proto(&msg),
            Err(SettingsError::Fingerprint(_))
        ));
    }

    #[test]
    fn envs_open_only_for_the_network_that_reads_them() {
        let mut s = ActorSettings::from_proto(&response()).unwrap();
        assert_eq!(s.env, EnvSpec::new("CartPole-v1"));
        assert_eq!(s.open_envs().unwrap().num_envs(), 2);
        s.model = ModelSpec::mlp(3, ActionHead::Categorical(2), vec![8], Activation::Relu);
        let err = s.open_envs().err().unwrap().to_string();
        assert!(
            err.contains("CartPole-v1 observes Box") && err.contains("3 f32 values"),
            "{err}"
        );
        // A stack the learner's image model does not count is refused too.
        s.env = EnvSpec::stacked("Catch-v0", 2);
        s.model.obs_dim = 50;
        s.model.input = Input::Image([1, 10, 5]);
        let err = s.open_envs().err().unwrap().to_string();
        assert!(err.contains("(2 frames stacked) observes Image"), "{err}");
        s.model.obs_dim = 100;
        s.model.input = Input::Image([2, 10, 5]);
        assert!(s.open_envs().is_ok());
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
