//! The encoder seam: what turns an observation row into the features the policy and value
//! heads read. `mlp` has no shared encoder (the heads are separate MLPs on the observation);
//! the convolutional encoders read images and are shared by both heads.
//!
//! An encoder is a variant of [`Encoder`] (a burn module, so its parameters are visited,
//! transferred and optimised like the heads') plus an [`EncoderKind`] in the config that says
//! how to build it. A new encoder is one more variant of each; the token embedding and causal
//! transformer (`transformer`, [`super::sequence`]) is the latest.

use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::sequence::SequenceEncoder;

/// Which encoder a model has, as the run config's `[model] encoder` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EncoderKind {
    /// No shared encoder: the policy and the value network are MLPs of `[model] hidden` on the
    /// flat observation (images are flattened and scaled).
    #[default]
    Mlp,
    /// The DQN network of Mnih et al. (2015) for `[4, 84, 84]` frames: 32 filters 8×8 stride 4,
    /// 64 filters 4×4 stride 2, 64 filters 3×3 stride 1 (ReLU after each), then 512 units.
    NatureCnn,
    /// For small images (Catch, MinBreakout): 16 filters 3×3 stride 1, then 128 units.
    SmallCnn,
    /// For token sequences: token embedding, learned positions and a causal transformer of
    /// `[model.transformer]`'s size ([`super::sequence`]).
    Transformer,
}

/// One convolution of a convolutional encoder (no padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvLayer {
    /// Output channels.
    pub filters: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
}

const NATURE: &[ConvLayer] = &[
    ConvLayer {
        filters: 32,
        kernel: 8,
        stride: 4,
    },
    ConvLayer {
        filters: 64,
        kernel: 4,
        stride: 2,
    },
    ConvLayer {
        filters: 64,
        kernel: 3,
        stride: 1,
    },
];

const SMALL: &[ConvLayer] = &[ConvLayer {
    filters: 16,
    kernel: 3,
    stride: 1,
}];

impl EncoderKind {
    /// Every kind, in documentation order.
    pub const ALL: [EncoderKind; 4] = [
        EncoderKind::Mlp,
        EncoderKind::NatureCnn,
        EncoderKind::SmallCnn,
        EncoderKind::Transformer,
    ];

    /// The name used in configs and on the wire.
    pub fn name(self) -> &'static str {
        match self {
            EncoderKind::Mlp => "mlp",
            EncoderKind::NatureCnn => "nature_cnn",
            EncoderKind::SmallCnn => "small_cnn",
            EncoderKind::Transformer => "transformer",
        }
    }

    /// Parses [`EncoderKind::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The convolutions of a convolutional encoder, input first (none for `mlp`).
    pub fn conv_layers(self) -> &'static [ConvLayer] {
        match self {
            EncoderKind::Mlp | EncoderKind::Transformer => &[],
            EncoderKind::NatureCnn => NATURE,
            EncoderKind::SmallCnn => SMALL,
        }
    }

    /// Width of the fully connected layer after the convolutions (the features both heads
    /// read); `None` for `mlp` and for the transformer (whose width is configured).
    pub fn features(self) -> Option<usize> {
        match self {
            EncoderKind::Mlp | EncoderKind::Transformer => None,
            EncoderKind::NatureCnn => Some(512),
            EncoderKind::SmallCnn => Some(128),
        }
    }

    /// The shape after each convolution for an input image `[C, H, W]`, or why the image is
    /// too small for this encoder.
    pub fn conv_shapes(self, input: [usize; 3]) -> Result<Vec<[usize; 3]>, String> {
        let mut shape = input;
        let mut out = Vec::new();
        for (i, l) in self.conv_layers().iter().enumerate() {
            let [_, h, w] = shape;
            if h < l.kernel || w < l.kernel {
                return Err(format!(
                    "{}'s convolution {i} ({}×{} kernel) does not fit a {h}×{w} input (the \
                     observation is {input:?})",
                    self.name(),
                    l.kernel,
                    l.kernel
                ));
            }
            shape = [
                l.filters,
                (h - l.kernel) / l.stride + 1,
                (w - l.kernel) / l.stride + 1,
            ];
            out.push(shape);
        }
        Ok(out)
    }
}

/// A convolutional encoder: convolutions with ReLU, flattened, one dense layer with ReLU.
#[derive(Module, Debug)]
pub struct ConvEncoder {
    /// The convolutions, input first.
    pub convs: Vec<Conv2d>,
    /// The dense layer after them.
    pub fc: Linear,
    /// The input image shape `[C, H, W]`.
    #[module(skip)]
    pub input: [usize; 3],
}

impl ConvEncoder {
    /// `[B, C·H·W]` (pixels already scaled) → `[B, features]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [b, _] = x.dims();
        let [c, h, w] = self.input;
        let mut x: Tensor<4> = x.reshape([b, c, h, w]);
        for conv in &self.convs {
            x = relu(conv.forward(x));
        }
        relu(self.fc.forward(x.flatten(1, 3)))
    }
}

/// A convolution with square `kernel`, `stride` and no padding, from its parameters.
pub(crate) fn conv2d(
    weight: burn::module::Param<Tensor<4>>,
    bias: burn::module::Param<Tensor<1>>,
    layer: ConvLayer,
) -> Conv2d {
    Conv2d {
        weight,
        bias: Some(bias),
        stride: [layer.stride; 2],
        kernel_size: [layer.kernel; 2],
        dilation: [1, 1],
        groups: 1,
        padding: PaddingConfig2d::Valid,
    }
}

/// A shared encoder (the module counterpart of the non-`mlp` [`EncoderKind`]s).
#[derive(Module, Debug)]
pub enum Encoder {
    /// `nature_cnn` or `small_cnn`.
    Conv(ConvEncoder),
    /// `transformer`.
    Sequence(SequenceEncoder),
}

impl Encoder {
    /// `[B, O]` scaled observations → `[B, features]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Encoder::Conv(conv) => conv.forward(x),
            Encoder::Sequence(sequence) => sequence.forward(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in EncoderKind::ALL {
            assert_eq!(EncoderKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(EncoderKind::from_name("resnet"), None);
    }

    #[test]
    fn nature_shapes_on_84_by_84_frames() {
        let shapes = EncoderKind::NatureCnn.conv_shapes([4, 84, 84]).unwrap();
        assert_eq!(shapes, vec![[32, 20, 20], [64, 9, 9], [64, 7, 7]]);
        assert_eq!(
            EncoderKind::SmallCnn.conv_shapes([1, 10, 5]).unwrap(),
            vec![[16, 8, 3]]
        );
        let err = EncoderKind::NatureCnn.conv_shapes([4, 10, 10]).unwrap_err();
        assert!(err.contains("does not fit"), "{err}");
    }
}
