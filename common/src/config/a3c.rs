//! The `[a3c]` section: A3C's hyperparameters and their ranges.

use serde::{Deserialize, Serialize};

use super::range::{Invalid, Range, Section};

/// Discount γ of the n-step returns (also checked in what the learner sends actors).
pub const GAMMA: Range = Range::UNIT;
/// The value-loss and entropy weights (also checked in what the learner sends actors).
pub const LOSS_COEF: Range = Range::NON_NEGATIVE;

/// A3C's optimizer on the learner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum A3cOptimizer {
    /// RMSProp as in the A3C paper (shared statistics, no momentum unless configured).
    #[default]
    Rmsprop,
    /// Adam.
    Adam,
}

/// A3C hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct A3cConfig {
    /// Optimizer applied to every pushed gradient.
    pub optimizer: A3cOptimizer,
    /// Learning rate.
    pub learning_rate: f64,
    /// RMSProp smoothing constant α.
    pub rmsprop_alpha: f64,
    /// RMSProp momentum. The A3C paper uses none; burn's own default is 0.9, so it is set
    /// explicitly.
    pub rmsprop_momentum: f64,
    /// RMSProp / Adam ε.
    pub epsilon: f64,
    /// Discount γ of the n-step returns.
    pub gamma: f64,
    /// Value loss weight.
    pub vf_coef: f64,
    /// Entropy bonus weight.
    pub ent_coef: f64,
    /// Global gradient-norm clip, applied by the learner to each gradient.
    pub max_grad_norm: f64,
    /// A gradient computed on a version more than this many versions old is dropped (counted).
    pub max_staleness: u64,
}

impl Default for A3cConfig {
    fn default() -> Self {
        Self {
            optimizer: A3cOptimizer::Rmsprop,
            learning_rate: 7e-4,
            rmsprop_alpha: 0.99,
            rmsprop_momentum: 0.0,
            epsilon: 1e-5,
            gamma: 0.99,
            vf_coef: 0.5,
            ent_coef: 0.01,
            max_grad_norm: 0.5,
            max_staleness: 16,
        }
    }
}

impl A3cConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), Invalid> {
        let s = Section("a3c");
        s.check("learning_rate", self.learning_rate, Range::POSITIVE)?;
        s.check("rmsprop_alpha", self.rmsprop_alpha, Range::UNIT_RIGHT_OPEN)?;
        s.check(
            "rmsprop_momentum",
            self.rmsprop_momentum,
            Range::UNIT_RIGHT_OPEN,
        )?;
        s.check("epsilon", self.epsilon, Range::POSITIVE)?;
        s.check("gamma", self.gamma, GAMMA)?;
        s.check("vf_coef", self.vf_coef, LOSS_COEF)?;
        s.check("ent_coef", self.ent_coef, LOSS_COEF)?;
        s.check("max_grad_norm", self.max_grad_norm, Range::POSITIVE)
    }
}
