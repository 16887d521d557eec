//! The `[dqn]` section: distributed DQN's hyperparameters and their ranges.

use serde::{Deserialize, Serialize};

use super::range::{Invalid, Range, Section};

/// Discount γ (also checked in what the learner sends actors).
pub const GAMMA: Range = Range::UNIT;
/// Every exploration rate (also checked in what the learner sends actors).
pub const EPSILON: Range = Range::UNIT;
/// Steps summed into one transition (also checked in what the learner sends actors).
pub const N_STEP: Range = Range::AT_LEAST_ONE;

/// How DQN actors explore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EpsilonSchedule {
    /// Ape-X: a fixed ε per actor, `epsilon^(1 + epsilon_alpha·i/(N − 1))` for actor i of N.
    #[default]
    Apex,
    /// One ε for every actor, decaying linearly from `epsilon_start` to `epsilon_final` over
    /// the first `exploration_fraction · total_steps` environment steps (as Stable-Baselines3).
    Linear,
}

/// DQN hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DqnConfig {
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Adam ε. Larger values (Rainbow: 1.5e-4) damp the steps Adam takes when a gradient
    /// follows a long run of near-zero ones, as happens once Q has converged.
    pub adam_eps: f64,
    /// Discount γ.
    pub gamma: f64,
    /// Steps summed into each transition's return.
    pub n_step: usize,
    /// Replay capacity (transitions).
    pub buffer_size: usize,
    /// Transitions in the buffer before updates start.
    pub learning_starts: usize,
    /// Sampled transitions per update.
    pub batch_size: usize,
    /// Gradient updates per inserted transition, whatever the number of actors.
    pub replay_ratio: f64,
    /// Update the target network every this many updates.
    pub target_update_interval: u64,
    /// Polyak coefficient of a target update: `θ' ← τ·θ + (1 − τ)·θ'` (1: a hard copy).
    pub tau: f64,
    /// Publish parameters to actors every this many updates.
    pub publish_interval: u64,
    /// Global gradient-norm clip.
    pub max_grad_norm: f64,
    /// Prioritised replay (sum-tree, importance weights).
    pub prioritized: bool,
    /// Priority exponent α.
    pub priority_alpha: f64,
    /// Importance-sampling exponent β at the start, annealed linearly to 1 over `total_steps`.
    pub priority_beta: f64,
    /// The exploration schedule: per-actor Ape-X ε, or one linearly decaying ε.
    pub epsilon_schedule: EpsilonSchedule,
    /// Ape-X: actor i of `num_actors` explores with `epsilon^(1 + epsilon_alpha·i/(N − 1))`.
    pub epsilon: f64,
    /// Ape-X's α.
    pub epsilon_alpha: f64,
    /// N of the schedule (the number of actors the run is meant for).
    pub num_actors: usize,
    /// Linear schedule: ε at the start.
    pub epsilon_start: f64,
    /// Linear schedule: ε after the decay.
    pub epsilon_final: f64,
    /// Linear schedule: the fraction of `total_steps` over which ε decays.
    pub exploration_fraction: f64,
    /// Run greedy evaluation episodes every this many updates.
    pub eval_interval: u64,
    /// Greedy episodes per evaluation.
    pub eval_episodes: usize,
    /// Save the replay buffer in checkpoints, so that a resumed run keeps its experience
    /// (costs `buffer_size × (2·obs_dim + 3)` floats of disk per checkpoint).
    pub checkpoint_replay: bool,
}

impl Default for DqnConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            adam_eps: 1e-5,
            gamma: 0.99,
            n_step: 3,
            buffer_size: 100_000,
            learning_starts: 1_000,
            batch_size: 64,
            replay_ratio: 0.5,
            target_update_interval: 250,
            tau: 1.0,
            publish_interval: 10,
            max_grad_norm: 10.0,
            prioritized: false,
            priority_alpha: 0.6,
            priority_beta: 0.4,
            epsilon_schedule: EpsilonSchedule::Apex,
            epsilon: 0.4,
            epsilon_alpha: 7.0,
            num_actors: 2,
            epsilon_start: 1.0,
            epsilon_final: 0.05,
            exploration_fraction: 0.1,
            eval_interval: 500,
            eval_episodes: 10,
            checkpoint_replay: false,
        }
    }
}

impl DqnConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), Invalid> {
        let s = Section("dqn");
        s.check("learning_rate", self.learning_rate, Range::POSITIVE)?;
        s.check("adam_eps", self.adam_eps, Range::POSITIVE)?;
        s.check("gamma", self.gamma, GAMMA)?;
        s.count("n_step", self.n_step as u64, N_STEP)?;
        s.count("batch_size", self.batch_size as u64, Range::AT_LEAST_ONE)?;
        s.count(
            "buffer_size",
            self.buffer_size as u64,
            Range::at_least(self.batch_size as f64),
        )
        .map_err(|_| {
            s.invalid(
                "buffer_size",
                self.buffer_size,
                format!("must be at least dqn.batch_size ({})", self.batch_size),
            )
        })?;
        s.check("replay_ratio", self.replay_ratio, Range::POSITIVE)?;
        s.count(
            "target_update_interval",
            self.target_update_interval,
            Range::AT_LEAST_ONE,
        )?;
        s.check("tau", self.tau, Range::UNIT_LEFT_OPEN)?;
        s.count(
            "publish_interval",
            self.publish_interval,
            Range::AT_LEAST_ONE,
        )?;
        s.check("max_grad_norm", self.max_grad_norm, Range::POSITIVE)?;
        s.check("priority_alpha", self.priority_alpha, Range::NON_NEGATIVE)?;
        s.check("priority_beta", self.priority_beta, Range::UNIT)?;
        s.check("epsilon", self.epsilon, EPSILON)?;
        s.check("epsilon_alpha", self.epsilon_alpha, Range::NON_NEGATIVE)?;
        s.count("num_actors", self.num_actors as u64, Range::AT_LEAST_ONE)?;
        s.check("epsilon_start", self.epsilon_start, EPSILON)?;
        s.check("epsilon_final", self.epsilon_final, EPSILON)?;
        s.check(
            "exploration_fraction",
            self.exploration_fraction,
            Range::UNIT,
        )?;
        s.count("eval_interval", self.eval_interval, Range::AT_LEAST_ONE)?;
        s.count(
            "eval_episodes",
            self.eval_episodes as u64,
            Range::AT_LEAST_ONE,
        )
    }
}
