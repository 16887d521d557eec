//! The `[ppo]` section: synchronous PPO's hyperparameters (names as in CleanRL) and their ranges.

use serde::{Deserialize, Serialize};

use super::range::{Invalid, Range, Section};

/// Discount γ (also the discount of the running return that reward scaling divides by).
pub const GAMMA: Range = Range::UNIT;

/// PPO hyperparameters (names as in CleanRL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PpoConfig {
    /// Rollouts (from any actors, made with the current version) consumed per update.
    pub rollouts_per_update: usize,
    /// Adam learning rate at the start.
    pub learning_rate: f64,
    /// Anneal the learning rate linearly to 0 over `total_steps`.
    pub anneal_lr: bool,
    /// Anneal the clip coefficient linearly to 0 over `total_steps` (rl-zoo's `lin_0.2`).
    pub anneal_clip_coef: bool,
    /// Discount factor γ.
    pub gamma: f64,
    /// GAE λ.
    pub gae_lambda: f64,
    /// Surrogate clipping coefficient ε.
    pub clip_coef: f64,
    /// Entropy bonus coefficient.
    pub ent_coef: f64,
    /// Value loss coefficient.
    pub vf_coef: f64,
    /// Global gradient-norm clip.
    pub max_grad_norm: f64,
    /// Passes over each batch.
    pub update_epochs: usize,
    /// Minibatches per pass.
    pub num_minibatches: usize,
    /// Normalise advantages within each minibatch.
    pub norm_adv: bool,
    /// Adam ε.
    pub adam_eps: f64,
    /// β of the KL leash: each step's reward gets −β·(log π − log π_ref) against the frozen
    /// policy the run started from (`shoal train --init`); 0 turns it off.
    pub kl_ref_coef: f64,
    /// The KL to the reference (nats per step) that β is adapted towards after each update
    /// (Ziegler et al. 2019); 0 keeps β fixed.
    pub kl_ref_target: f64,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            rollouts_per_update: 2,
            learning_rate: 2.5e-4,
            anneal_lr: true,
            anneal_clip_coef: false,
            gamma: 0.99,
            gae_lambda: 0.95,
            clip_coef: 0.2,
            ent_coef: 0.0,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            update_epochs: 10,
            num_minibatches: 4,
            norm_adv: true,
            adam_eps: 1e-5,
            kl_ref_coef: 0.0,
            kl_ref_target: 0.0,
        }
    }
}

impl PpoConfig {
    /// Checks every field; `steps_per_rollout` (`num_envs × n_steps`) bounds the minibatches.
    pub fn validate(&self, steps_per_rollout: usize) -> Result<(), Invalid> {
        let s = Section("ppo");
        s.count(
            "rollouts_per_update",
            self.rollouts_per_update as u64,
            Range::AT_LEAST_ONE,
        )?;
        s.check("learning_rate", self.learning_rate, Range::POSITIVE)?;
        s.check("gamma", self.gamma, GAMMA)?;
        s.check("gae_lambda", self.gae_lambda, Range::UNIT)?;
        s.check("clip_coef", self.clip_coef, Range::UNIT_LEFT_OPEN)?;
        s.check("ent_coef", self.ent_coef, Range::NON_NEGATIVE)?;
        s.check("vf_coef", self.vf_coef, Range::NON_NEGATIVE)?;
        s.check("max_grad_norm", self.max_grad_norm, Range::POSITIVE)?;
        s.count(
            "update_epochs",
            self.update_epochs as u64,
            Range::AT_LEAST_ONE,
        )?;
        s.count(
            "num_minibatches",
            self.num_minibatches as u64,
            Range::AT_LEAST_ONE,
        )?;
        let batch = steps_per_rollout * self.rollouts_per_update;
        if self.num_minibatches > batch {
            return Err(s.invalid(
                "num_minibatches",
                self.num_minibatches,
                format!(
                    "must be at most the batch size (num_envs × n_steps × \
                     ppo.rollouts_per_update = {batch})"
                ),
            ));
        }
        s.check("kl_ref_coef", self.kl_ref_coef, Range::NON_NEGATIVE)?;
        s.check("kl_ref_target", self.kl_ref_target, Range::NON_NEGATIVE)?;
        s.check("adam_eps", self.adam_eps, Range::POSITIVE)
    }
}
