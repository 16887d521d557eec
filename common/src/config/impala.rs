//! The `[impala]` section: the asynchronous actor-critic with V-trace (IMPALA; APPO when the
//! clipped surrogate is on) and its ranges. Names follow the IMPALA paper (ρ̄, c̄) and Sample
//! Factory (`max_policy_lag`).

use serde::{Deserialize, Serialize};

use super::range::{Invalid, Range, Section};

/// IMPALA / APPO hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImpalaConfig {
    /// Rollouts (from any actors, made with any recent version) in one training batch.
    pub rollouts_per_batch: usize,
    /// Adam learning rate at the start.
    pub learning_rate: f64,
    /// Anneal the learning rate linearly to 0 over `total_steps`.
    pub anneal_lr: bool,
    /// Discount factor γ.
    pub gamma: f64,
    /// V-trace ρ̄: truncation of the importance weights of the value targets.
    pub rho_bar: f64,
    /// V-trace c̄: truncation of the trace coefficients.
    pub c_bar: f64,
    /// ρ̄ of the policy-gradient advantage.
    pub rho_bar_pg: f64,
    /// λ of the traces (1: plain V-trace).
    pub lambda: f64,
    /// APPO: the PPO clipping ε of the ratio between the current and the behaviour policy.
    /// Absent: IMPALA's policy gradient (log π times the V-trace advantage).
    pub clip_coef: Option<f64>,
    /// Passes over each batch (APPO; IMPALA makes one).
    pub update_epochs: usize,
    /// Minibatches per pass, each of whole environment trajectories (V-trace runs along time).
    pub num_minibatches: usize,
    /// Normalise the advantages within each minibatch.
    pub norm_adv: bool,
    /// Entropy bonus coefficient.
    pub ent_coef: f64,
    /// Value loss coefficient (the loss is the mean squared error to the V-trace targets).
    pub vf_coef: f64,
    /// Global gradient-norm clip.
    pub max_grad_norm: f64,
    /// Adam ε.
    pub adam_eps: f64,
    /// Experience more than this many versions older than the learner's is left out of the
    /// loss and counted (Sample Factory's rule).
    pub max_policy_lag: u64,
}

impl Default for ImpalaConfig {
    fn default() -> Self {
        Self {
            rollouts_per_batch: 2,
            learning_rate: 5e-4,
            anneal_lr: false,
            gamma: 0.99,
            rho_bar: 1.0,
            c_bar: 1.0,
            rho_bar_pg: 1.0,
            lambda: 1.0,
            clip_coef: None,
            update_epochs: 1,
            num_minibatches: 1,
            norm_adv: false,
            ent_coef: 0.01,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            adam_eps: 1e-5,
            max_policy_lag: 20,
        }
    }
}

impl ImpalaConfig {
    /// Checks every field; `num_envs` (trajectories per rollout) bounds the minibatches.
    pub fn validate(&self, num_envs: usize) -> Result<(), Invalid> {
        let s = Section("impala");
        s.count(
            "rollouts_per_batch",
            self.rollouts_per_batch as u64,
            Range::AT_LEAST_ONE,
        )?;
        s.check("learning_rate", self.learning_rate, Range::POSITIVE)?;
        s.check("gamma", self.gamma, super::ppo::GAMMA)?;
        s.check("rho_bar", self.rho_bar, Range::POSITIVE)?;
        s.check("c_bar", self.c_bar, Range::POSITIVE)?;
        s.check("rho_bar_pg", self.rho_bar_pg, Range::POSITIVE)?;
        s.check("lambda", self.lambda, Range::UNIT)?;
        if let Some(clip) = self.clip_coef {
            s.check("clip_coef", clip, Range::UNIT_LEFT_OPEN)?;
        }
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
        let trajectories = num_envs * self.rollouts_per_batch;
        if self.num_minibatches > trajectories {
            return Err(s.invalid(
                "num_minibatches",
                self.num_minibatches,
                format!(
                    "must be at most the trajectories in a batch (num_envs × \
                     impala.rollouts_per_batch = {trajectories}): a minibatch holds whole \
                     trajectories"
                ),
            ));
        }
        s.check("ent_coef", self.ent_coef, Range::NON_NEGATIVE)?;
        s.check("vf_coef", self.vf_coef, Range::NON_NEGATIVE)?;
        s.check("max_grad_norm", self.max_grad_norm, Range::POSITIVE)?;
        s.check("adam_eps", self.adam_eps, Range::POSITIVE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_are_named() {
        ImpalaConfig::default().validate(4).unwrap();
        let bad = ImpalaConfig {
            num_minibatches: 9,
            ..ImpalaConfig::default()
        };
        let err = bad.validate(4).unwrap_err().to_string();
        assert!(err.contains("impala.num_minibatches"), "{err}");
        let bad = ImpalaConfig {
            clip_coef: Some(0.0),
            ..ImpalaConfig::default()
        };
        assert!(bad.validate(4).is_err());
        let bad = ImpalaConfig {
            lambda: 1.5,
            ..ImpalaConfig::default()
        };
        assert!(bad.validate(4).is_err());
    }
}
