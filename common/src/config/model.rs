//! The `[model]` section: the network's shape.

use serde::{Deserialize, Serialize};

use super::range::{Invalid, Section};
use crate::model::{Activation, EncoderKind, SequenceShape};

/// Network shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// The encoder: `mlp` (separate policy and value MLPs of `hidden`), `nature_cnn` or
    /// `small_cnn` (convolutions over image observations shared by both heads), or
    /// `transformer` (over token sequences, shared by both heads).
    pub encoder: EncoderKind,
    /// Hidden layer widths of the policy and of the value network (`mlp` only: a convolutional
    /// encoder fixes its layers and its heads are single dense layers).
    pub hidden: Vec<usize>,
    /// Hidden-layer non-linearity: `tanh` or `relu`.
    pub activation: Activation,
    /// `[model.transformer]`: width, depth, heads and feed-forward width of the `transformer`
    /// encoder.
    pub transformer: SequenceShape,
}

/// `hidden`'s default.
const DEFAULT_HIDDEN: [usize; 2] = [64, 64];

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            encoder: EncoderKind::Mlp,
            hidden: DEFAULT_HIDDEN.to_vec(),
            activation: Activation::Tanh,
            transformer: SequenceShape::default(),
        }
    }
}

impl ModelConfig {
    /// At least one hidden layer, none of width 0; `hidden` is left alone with a convolutional
    /// encoder (it would not be used).
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.encoder != EncoderKind::Mlp && self.hidden != DEFAULT_HIDDEN {
            return Err(Section("model").invalid(
                "hidden",
                format!("{:?}", self.hidden),
                format!(
                    "applies to encoder = \"mlp\" only; `{}` has fixed layers and one dense \
                     layer per head",
                    self.encoder.name()
                ),
            ));
        }
        if self.encoder != EncoderKind::Transformer && self.transformer != SequenceShape::default()
        {
            return Err(Section("model").invalid(
                "transformer",
                self.transformer.describe(),
                "applies to encoder = \"transformer\" only",
            ));
        }
        if let Err(why) = self.transformer.validate() {
            return Err(Section("model").invalid("transformer", self.transformer.describe(), why));
        }
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
