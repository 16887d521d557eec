//! The `[normalize]` section: observation normalisation and reward scaling, and their ranges.

use serde::{Deserialize, Serialize};

use super::range::{Invalid, Range, Section};

/// Clip bounds and ε (also checked in what the learner sends actors).
pub const POSITIVE: Range = Range::POSITIVE;

/// Observation normalisation and reward scaling, as Stable-Baselines3's `VecNormalize`, with
/// statistics merged across all actors by the learner and shipped with each parameter version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NormalizeConfig {
    /// Normalise observations to zero mean and unit variance.
    pub observations: bool,
    /// Divide rewards by the standard deviation of the discounted return (discount `ppo.gamma`).
    pub rewards: bool,
    /// Clip normalised observations to `±clip_observations`.
    pub clip_observations: f64,
    /// Clip scaled rewards to `±clip_rewards`.
    pub clip_rewards: f64,
    /// Added to variances before the square root.
    pub epsilon: f64,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        Self {
            observations: false,
            rewards: false,
            clip_observations: 10.0,
            clip_rewards: 10.0,
            epsilon: 1e-8,
        }
    }
}

impl NormalizeConfig {
    /// Checks every field; `supported` says whether the run's algorithm normalises at all;
    /// `gamma` is the discount of the running return rewards are scaled by (`ppo.gamma`, or
    /// `impala.gamma` in IMPALA runs; sent to every run's actors, so checked whatever the
    /// algorithm).
    pub fn validate(&self, supported: bool, gamma: f64) -> Result<(), Invalid> {
        // IMPALA's discount was checked with its section, under its own name.
        Section("ppo").check("gamma", gamma, super::ppo::GAMMA)?;
        let s = Section("normalize");
        if !supported {
            for (name, on) in [
                ("observations", self.observations),
                ("rewards", self.rewards),
            ] {
                if on {
                    return Err(s.invalid(
                        name,
                        on,
                        "must be false: normalize is supported with algorithm = \"ppo\" or \
                         \"impala\" only in this version",
                    ));
                }
            }
        }
        s.check("clip_observations", self.clip_observations, POSITIVE)?;
        s.check("clip_rewards", self.clip_rewards, POSITIVE)?;
        s.check("epsilon", self.epsilon, POSITIVE)
    }
}
