//! The `[model]` section: the network's shape.

use serde::{Deserialize, Serialize};

use super::range::{Invalid, Section};
use crate::model::Activation;

/// Network shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Hidden layer widths of the policy and of the value network.
    pub hidden: Vec<usize>,
    /// Hidden-layer non-linearity: `tanh` or `relu`.
    pub activation: Activation,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            hidden: vec![64, 64],
            activation: Activation::Tanh,
        }
    }
}

impl ModelConfig {
    /// At least one hidden layer, none of width 0.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return Err(Section("model").invalid(
                "hidden",
                format!("{:?}", self.hidden),
                "needs at least one layer, each of width at least 1",
            ));
        }
        Ok(())
    }
}
