//! A rollout: T steps from N environments, the unit of experience PPO actors send.
//!
//! [`Rollout::from_proto`] is the boundary check: every length, flag and number from the network
//! is validated here, before anything is queued for the trainer.

use thiserror::Error;

use crate::codec::{decode_f32, encode_f32};
use crate::model::ActionHead;
use crate::normalize::{NormStats, NormStatsError};
use crate::obs::{ObsError, ObsFormat, Observations};
use crate::proto;

/// What the learner expects a rollout to look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolloutShape {
    /// T.
    pub n_steps: usize,
    /// N.
    pub num_envs: usize,
    /// O.
    pub obs_dim: usize,
    /// How observations travel (`u8` for images).
    pub obs_format: ObsFormat,
    /// The action distribution (the width of an action and which values are valid).
    pub action: ActionHead,
}

/// A rollout in host memory (all arrays row-major `[T, N, ...]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// Sender.
    pub actor_id: u32,
    /// Parameter version the actions were chosen with.
    pub version: u64,
    /// Dimensions.
    pub shape: RolloutShape,
    /// `[T, N, O]`.
    pub obs: Observations,
    /// `[T, N]` action indices (categorical) or `[T, N, A]` unclipped actions (Gaussian).
    pub actions: Vec<f32>,
    /// `[T, N]`.
    pub rewards: Vec<f32>,
    /// `[T, N]`.
    pub terminated: Vec<bool>,
    /// `[T, N]`.
    pub truncated: Vec<bool>,
    /// `[T, N]` behaviour log-probabilities.
    pub log_probs: Vec<f32>,
    /// `[T, N]` behaviour values.
    pub values: Vec<f32>,
    /// `[N]` value of the observation after the last step.
    pub bootstrap_values: Vec<f32>,
    /// `[T, N]` value of the final observation where truncated, else 0.
    pub truncation_values: Vec<f32>,
    /// Returns of episodes finished in this rollout.
    pub episode_returns: Vec<f32>,
    /// Lengths of episodes finished in this rollout.
    pub episode_lengths: Vec<u32>,
    /// Statistics of the raw observations and running discounted returns seen.
    pub moments: NormStats,
    /// The observations after the rollout's steps, for a learner that re-evaluates them
    /// (IMPALA); `None` when the sender left them out.
    pub final_obs: Option<FinalObservations>,
}

/// The observations a rollout's values bootstrap from, normalised as the rollout's.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FinalObservations {
    /// `[N, O]`: the observation after the last step.
    pub bootstrap: Observations,
    /// `[K, O]`: the final observation of each truncated step, in `[T, N]` order.
    pub truncation: Observations,
}

/// Why a rollout from the network was refused.
#[derive(Debug, Error, PartialEq)]
pub enum RolloutError {
    /// The rollout's declared dimensions differ from the run's.
    #[error("rollout is {got_t}x{got_n} (n_steps x num_envs), the run uses {want_t}x{want_n}")]
    Dimensions {
        /// Declared T.
        got_t: usize,
        /// Declared N.
        got_n: usize,
        /// Expected T.
        want_t: usize,
        /// Expected N.
        want_n: usize,
    },
    /// A field has the wrong byte length.
    #[error("rollout field `{field}` has {got} bytes, expected {want}")]
    Length {
        /// The field.
        field: &'static str,
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// A field holds NaN, infinity or a value beyond ±`MAX_ABS_VALUE`.
    #[error(
        "rollout field `{field}` holds a non-finite or implausibly large value (beyond ±1e6) at \
         index {index}"
    )]
    NotFinite {
        /// The field.
        field: &'static str,
        /// Flat index.
        index: usize,
    },
    /// An action is not in the action space.
    #[error("rollout action {value} at index {index} is outside Discrete({num_actions})")]
    Action {
        /// The value sent.
        value: f32,
        /// Flat index.
        index: usize,
        /// The space size.
        num_actions: usize,
    },
    /// A flag byte is not 0 or 1, or a step is both terminated and truncated.
    #[error("rollout field `{field}` holds an invalid flag at index {index}")]
    Flag {
        /// The field.
        field: &'static str,
        /// Flat index.
        index: usize,
    },
    /// Episode statistics are inconsistent.
    #[error("rollout episode statistics are inconsistent: {0}")]
    Episodes(String),
    /// The observation/return statistics are unusable.
    #[error("rollout {0}")]
    Moments(#[from] NormStatsError),
    /// The run needs the final observations and the rollout has none.
    #[error(
        "rollout has no bootstrap_observations: this run's learner re-evaluates them (an actor \
         built before the field existed?)"
    )]
    NoFinalObservations,
}

fn floats(field: &'static str, data: &[u8], len: usize) -> Result<Vec<f32>, RolloutError> {
    let values = decode_f32(data, len).ok_or(RolloutError::Length {
        field,
        got: data.len(),
        want: len * 4,
    })?;
    if let Some(index) = crate::codec::first_implausible(&values) {
        return Err(RolloutError::NotFinite { field, index });
    }
    Ok(values)
}

fn observations(
    field: &'static str,
    format: ObsFormat,
    data: &[u8],
    len: usize,
) -> Result<Observations, RolloutError> {
    Observations::decode(format, data, len).map_err(|e| match e {
        ObsError::Length { got, want } => RolloutError::Length { field, got, want },
        ObsError::NotFinite { index } => RolloutError::NotFinite { field, index },
    })
}

fn flags(field: &'static str, data: &[u8], len: usize) -> Result<Vec<bool>, RolloutError> {
    if data.len() != len {
        return Err(RolloutError::Length {
            field,
            got: data.len(),
            want: len,
        });
    }
    data.iter()
        .enumerate()
        .map(|(index, &b)| match b {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(RolloutError::Flag { field, index }),
        })
        .collect()
}

impl RolloutShape {
    /// `n_steps` × `num_envs` steps of the observations and actions `spec` reads and writes.
    pub fn of(spec: &crate::model::ModelSpec, n_steps: usize, num_envs: usize) -> Self {
        Self {
            n_steps,
            num_envs,
            obs_dim: spec.obs_dim,
            obs_format: spec.obs_format(),
            action: spec.action,
        }
    }

    /// Size of the observation statistics a rollout carries (0 for images, which are not
    /// normalised).
    pub fn moments_dim(&self) -> usize {
        match self.obs_format {
            ObsFormat::F32 => self.obs_dim,
            ObsFormat::U8 => 0,
        }
    }
}

impl Rollout {
    /// Environment steps in this rollout (T × N).
    pub fn env_steps(&self) -> usize {
        self.shape.n_steps * self.shape.num_envs
    }

    /// Validates a rollout from the network against the run's `shape`.
    pub fn from_proto(msg: &proto::Rollout, shape: RolloutShape) -> Result<Self, RolloutError> {
        let (t, n) = (msg.n_steps as usize, msg.num_envs as usize);
        if t != shape.n_steps || n != shape.num_envs {
            return Err(RolloutError::Dimensions {
                got_t: t,
                got_n: n,
                want_t: shape.n_steps,
                want_n: shape.num_envs,
            });
        }
        let tn = t * n;
        let actions = floats("actions", &msg.actions, tn * shape.action.action_width())?;
        if let ActionHead::Categorical(num_actions) = shape.action
            && let Some(index) = actions
                .iter()
                .position(|&a| a < 0.0 || a.fract() != 0.0 || a as usize >= num_actions)
        {
            return Err(RolloutError::Action {
                value: actions[index],
                index,
                num_actions,
            });
        }
        let terminated = flags("terminated", &msg.terminated, tn)?;
        let truncated = flags("truncated", &msg.truncated, tn)?;
        if let Some(index) = (0..tn).find(|&i| terminated[i] && truncated[i]) {
            return Err(RolloutError::Flag {
                field: "truncated",
                index,
            });
        }
        let episode_returns = msg.episode_returns.clone();
        let episode_lengths = msg.episode_lengths.clone();
        if episode_returns.len() != episode_lengths.len() {
            return Err(RolloutError::Episodes(
                "episode_returns and episode_lengths differ in length".into(),
            ));
        }
        let ends = (0..tn).filter(|&i| terminated[i] || truncated[i]).count();
        if episode_returns.len() != ends {
            return Err(RolloutError::Episodes(format!(
                "{} episodes reported, {ends} episode ends flagged",
                episode_returns.len()
            )));
        }
        if episode_returns
            .iter()
            .any(|r| !(r.is_finite() && r.abs() < 1e12))
        {
            return Err(RolloutError::Episodes(
                "non-finite or implausibly large episode return".into(),
            ));
        }
        let moments = NormStats::from_proto(msg.moments.as_ref(), shape.moments_dim())?;
        // Each actor reports the statistics of this rollout's own T × N steps.
        if !moments.plausible_for(tn as f64, crate::codec::MAX_ABS_VALUE as f64) {
            return Err(RolloutError::Moments(NormStatsError::Invalid(
                "moments (more samples or larger values than the rollout holds)",
            )));
        }
        let (o, format) = (shape.obs_dim, shape.obs_format);
        let final_obs =
            if msg.bootstrap_observations.is_empty() && msg.truncation_observations.is_empty() {
                None
            } else {
                let k = truncated.iter().filter(|&&c| c).count();
                Some(FinalObservations {
                    bootstrap: observations(
                        "bootstrap_observations",
                        format,
                        &msg.bootstrap_observations,
                        n * o,
                    )?,
                    truncation: observations(
                        "truncation_observations",
                        format,
                        &msg.truncation_observations,
                        k * o,
                    )?,
                })
            };
        Ok(Self {
            actor_id: msg.actor_id,
            version: msg.version,
            shape,
            obs: observations("observations", format, &msg.observations, tn * o)?,
            actions,
            rewards: floats("rewards", &msg.rewards, tn)?,
            terminated,
            truncated,
            log_probs: floats("log_probs", &msg.log_probs, tn)?,
            values: floats("values", &msg.values, tn)?,
            bootstrap_values: floats("bootstrap_values", &msg.bootstrap_values, n)?,
            truncation_values: floats("truncation_values", &msg.truncation_values, tn)?,
            episode_returns,
            episode_lengths,
            moments,
            final_obs,
        })
    }

    /// The final observations, which this run needs.
    pub fn require_final_obs(&self) -> Result<&FinalObservations, RolloutError> {
        self.final_obs
            .as_ref()
            .ok_or(RolloutError::NoFinalObservations)
    }

    /// The wire form.
    pub fn to_proto(&self, model_fingerprint: &str) -> proto::Rollout {
        let to_bytes = |v: &[bool]| v.iter().map(|&b| b as u8).collect::<Vec<u8>>().into();
        proto::Rollout {
            actor_id: self.actor_id,
            model_fingerprint: model_fingerprint.to_string(),
            version: self.version,
            n_steps: self.shape.n_steps as u32,
            num_envs: self.shape.num_envs as u32,
            observations: self.obs.encode(),
            actions: encode_f32(&self.actions),
            rewards: encode_f32(&self.rewards),
            terminated: to_bytes(&self.terminated),
            truncated: to_bytes(&self.truncated),
            log_probs: encode_f32(&self.log_probs),
            values: encode_f32(&self.values),
            bootstrap_values: encode_f32(&self.bootstrap_values),
            truncation_values: encode_f32(&self.truncation_values),
            episode_returns: self.episode_returns.clone(),
            episode_lengths: self.episode_lengths.clone(),
            moments: Some(self.moments.to_proto()),
            actor_stats: None,
            bootstrap_observations: self
                .final_obs
                .as_ref()
                .map_or_else(Default::default, |f| f.bootstrap.encode()),
            truncation_observations: self
                .final_obs
                .as_ref()
                .map_or_else(Default::default, |f| f.truncation.encode()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Rollout {
        let shape = RolloutShape {
            n_steps: 2,
            num_envs: 2,
            obs_dim: 3,
            obs_format: ObsFormat::F32,
            action: ActionHead::Categorical(2),
        };
        Rollout {
            actor_id: 4,
            version: 9,
            shape,
            obs: Observations::F32((0..12).map(|i| i as f32).collect()),
            actions: vec![0.0, 1.0, 1.0, 0.0],
            rewards: vec![1.0; 4],
            terminated: vec![false, true, false, false],
            truncated: vec![false, false, false, true],
            log_probs: vec![-0.7; 4],
            values: vec![0.5; 4],
            bootstrap_values: vec![0.1, 0.2],
            truncation_values: vec![0.0, 0.0, 0.0, 3.0],
            episode_returns: vec![2.0, 7.0],
            episode_lengths: vec![2, 7],
            moments: {
                let mut m = NormStats::new(3);
                m.observations.push(&[1.0, 2.0, 3.0]);
                m.returns.push(&[1.0]);
                m
            },
            final_obs: Some(FinalObservations {
                bootstrap: Observations::F32(vec![0.5; 6]),
                truncation: Observations::F32(vec![9.0, 8.0, 7.0]),
            }),
        }
    }

    #[test]
    fn proto_round_trip() {
        let r = sample();
        assert_eq!(Rollout::from_proto(&r.to_proto("fp"), r.shape).unwrap(), r);
        let without = Rollout {
            final_obs: None,
            ..sample()
        };
        let back = Rollout::from_proto(&without.to_proto("fp"), r.shape).unwrap();
        assert_eq!(back, without);
        assert_eq!(
            back.require_final_obs(),
            Err(RolloutError::NoFinalObservations)
        );
    }

    #[test]
    fn image_rollouts_carry_one_byte_per_pixel_and_no_observation_moments() {
        let mut r = sample();
        r.shape.obs_format = ObsFormat::U8;
        r.obs = Observations::U8((0..12).map(|i| i * 20).collect());
        r.moments = {
            let mut m = NormStats::new(0);
            m.returns.push(&[1.0]);
            m
        };
        r.final_obs = Some(FinalObservations {
            bootstrap: Observations::U8(vec![255; 6]),
            truncation: Observations::U8(vec![1, 2, 3]),
        });
        let msg = r.to_proto("fp");
        assert_eq!(msg.observations.len(), 12);
        assert_eq!(Rollout::from_proto(&msg, r.shape).unwrap(), r);
        let mut bad = msg.clone();
        bad.observations = sample().obs.encode();
        assert!(matches!(
            Rollout::from_proto(&bad, r.shape),
            Err(RolloutError::Length {
                field: "observations",
                got: 48,
                want: 12
            })
        ));
    }

    #[test]
    fn final_observations_must_match_the_truncations() {
        let r = sample();
        // One truncated step: three floats. Two rows is one too many.
        let mut msg = r.to_proto("fp");
        msg.truncation_observations = encode_f32(&[0.0; 6]);
        assert!(matches!(
            Rollout::from_proto(&msg, r.shape),
            Err(RolloutError::Length {
                field: "truncation_observations",
                ..
            })
        ));
        let mut msg = r.to_proto("fp");
        msg.bootstrap_observations = Default::default();
        assert!(matches!(
            Rollout::from_proto(&msg, r.shape),
            Err(RolloutError::Length {
                field: "bootstrap_observations",
                ..
            })
        ));
        let mut msg = r.to_proto("fp");
        msg.bootstrap_observations = encode_f32(&[0.0, 0.0, f32::NAN, 0.0, 0.0, 0.0]);
        assert!(matches!(
            Rollout::from_proto(&msg, r.shape),
            Err(RolloutError::NotFinite {
                field: "bootstrap_observations",
                index: 2
            })
        ));
    }

    #[test]
    fn bad_fields_are_refused() {
        let r = sample();
        let mut msg = r.to_proto("fp");
        msg.actions = encode_f32(&[0.0, 2.0, 1.0, 0.0]);
        assert!(matches!(
            Rollout::from_proto(&msg, r.shape),
            Err(RolloutError::Action { index: 1, .. })
        ));
        let mut msg = r.to_proto("fp");
        msg.rewards = encode_f32(&[1.0, f32::INFINITY, 1.0, 1.0]);
        assert!(matches!(
            Rollout::from_proto(&msg, r.shape),
            Err(RolloutError::NotFinite {
                field: "rewards",
                index: 1
            })
        ));
        let mut msg = r.to_proto("fp");
        msg.observations = msg.observations.slice(4..);
        assert!(matches!(
            Rollout::from_proto(&msg, r.shape),
            Err(RolloutError::Length {
                field: "observations",
                ..
            })
        ));
        let mut msg = r.to_proto("fp");
        msg.n_steps = 3;
        assert!(matches!(
            Rollout::from_proto(&msg, r.shape),
            Err(RolloutError::Dimensions { .. })
        ));
        let mut msg = r.to_proto("fp");
        msg.moments = None;
        assert!(matches!(
            Rollout::from_proto(&msg, r.shape),
            Err(RolloutError::Moments(NormStatsError::Missing(_)))
        ));
        let mut msg = r.to_proto("fp");
        msg.episode_returns.pop();
        msg.episode_lengths.pop();
        assert!(matches!(
            Rollout::from_proto(&msg, r.shape),
            Err(RolloutError::Episodes(_))
        ));
    }

    #[test]
    fn gaussian_actions_are_vectors_of_any_finite_value() {
        let mut r = sample();
        r.shape.action = ActionHead::Gaussian(2);
        // [T, N, A]: unclipped samples may leave the space's bounds.
        r.actions = vec![0.5, -3.0, 2.5, 0.0, 1.0, 1.0, -0.25, 7.0];
        assert_eq!(Rollout::from_proto(&r.to_proto("fp"), r.shape).unwrap(), r);
        let mut msg = r.to_proto("fp");
        msg.actions = encode_f32(&r.actions[..4]);
        assert!(matches!(
            Rollout::from_proto(&msg, r.shape),
            Err(RolloutError::Length {
                field: "actions",
                ..
            })
        ));
        let mut bad = r.actions.clone();
        bad[5] = f32::NAN;
        msg.actions = encode_f32(&bad);
        assert!(matches!(
            Rollout::from_proto(&msg, r.shape),
            Err(RolloutError::NotFinite {
                field: "actions",
                index: 5
            })
        ));
    }
}
