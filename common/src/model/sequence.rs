//! The sequence encoder for token observations: token embedding plus learned positions, a
//! small causal transformer (burn's `TransformerEncoder`, pre-norm, ReLU feed-forward, no
//! dropout), a final layer norm, and the features at the text's last position, which both
//! heads read (logits and value, or Q-values for DQN).
//!
//! The observation row is `[ids (L), length]` ([`Space::Tokens`](crate::env::Space)); position
//! `t` attends to positions `0..=t` only, so the padding after the text never changes what the
//! heads read.

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::nn::attention::generate_autoregressive_mask;
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{Embedding, LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// The transformer's size, as the run config's `[model.transformer]` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SequenceShape {
    /// Model width: the embedding size and the features the heads read.
    pub width: usize,
    /// Transformer layers.
    pub depth: usize,
    /// Attention heads per layer (they divide `width`).
    pub heads: usize,
    /// Hidden width of each layer's feed-forward network.
    pub feed_forward: usize,
}

impl Default for SequenceShape {
    fn default() -> Self {
        Self {
            width: 64,
            depth: 2,
            heads: 4,
            feed_forward: 128,
        }
    }
}

impl SequenceShape {
    /// Why this shape cannot be built, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.width == 0 || self.depth == 0 || self.heads == 0 || self.feed_forward == 0 {
            return Err(format!("every size must be at least 1: {self:?}"));
        }
        if !self.width.is_multiple_of(self.heads) {
            return Err(format!(
                "{} heads do not divide the width {}",
                self.heads, self.width
            ));
        }
        if self.width > 4096 || self.depth > 64 || self.feed_forward > 16384 {
            return Err(format!("too large for this service: {self:?}"));
        }
        Ok(())
    }

    /// How it reads in a fingerprint and in messages.
    pub fn describe(&self) -> String {
        format!(
            "transformer width {} depth {} heads {} feed-forward {}",
            self.width, self.depth, self.heads, self.feed_forward
        )
    }

    /// The parameter shapes in the order burn visits them, each path under `prefix`, for
    /// sequences of `length` tokens of a `vocab`-token vocabulary.
    pub fn param_shapes(
        &self,
        prefix: &str,
        length: usize,
        vocab: usize,
    ) -> Vec<(String, Vec<usize>)> {
        let (d, f) = (self.width, self.feed_forward);
        let mut shapes = vec![
            (format!("{prefix}.tokens.weight"), vec![vocab, d]),
            (format!("{prefix}.positions"), vec![length, d]),
        ];
        for i in 0..self.depth {
            let layer = format!("{prefix}.blocks.layers.{i}");
            for linear in ["query", "key", "value", "output"] {
                shapes.push((format!("{layer}.mha.{linear}.weight"), vec![d, d]));
                shapes.push((format!("{layer}.mha.{linear}.bias"), vec![d]));
            }
            shapes.push((format!("{layer}.pwff.linear_inner.weight"), vec![d, f]));
            shapes.push((format!("{layer}.pwff.linear_inner.bias"), vec![f]));
            shapes.push((format!("{layer}.pwff.linear_outer.weight"), vec![f, d]));
            shapes.push((format!("{layer}.pwff.linear_outer.bias"), vec![d]));
            for norm in ["norm_1", "norm_2"] {
                shapes.push((format!("{layer}.{norm}.gamma"), vec![d]));
                shapes.push((format!("{layer}.{norm}.beta"), vec![d]));
            }
        }
        shapes.push((format!("{prefix}.norm.gamma"), vec![d]));
        shapes.push((format!("{prefix}.norm.beta"), vec![d]));
        shapes
    }

    /// Initial values for [`SequenceShape::param_shapes`], drawn from `rng`: embeddings and
    /// positions N(0, 0.02²) as GPT-2's, dense weights orthogonal with gain 1 (the outputs of
    /// attention and feed-forward, which add to the residual stream, with 1/√(2·depth), GPT-2's
    /// scaling of residual projections), zero biases, layer norms at the identity.
    pub fn init(&self, shapes: &[(String, Vec<usize>)], rng: &mut Rng) -> Vec<f32> {
        let residual = 1.0 / (2.0 * self.depth as f64).sqrt();
        let mut flat = Vec::new();
        for (path, shape) in shapes {
            let n: usize = shape.iter().product();
            if path.ends_with(".gamma") {
                flat.extend(std::iter::repeat_n(1.0, n));
            } else if path.ends_with(".bias") || path.ends_with(".beta") {
                flat.extend(std::iter::repeat_n(0.0, n));
            } else if path.ends_with("tokens.weight") || path.ends_with(".positions") {
                flat.extend((0..n).map(|_| (0.02 * rng.normal()) as f32));
            } else {
                let gain = if path.contains("mha.output") || path.contains("linear_outer") {
                    residual
                } else {
                    1.0
                };
                flat.extend(super::orthogonal::orthogonal(shape[0], shape[1], gain, rng));
            }
        }
        flat
    }

    /// The encoder with parameters from `take` (values and id of the next parameter in
    /// [`SequenceShape::param_shapes`] order).
    pub fn build(
        &self,
        length: usize,
        vocab: usize,
        device: &Device,
        take: &mut dyn FnMut(usize) -> (Vec<f32>, ParamId),
    ) -> SequenceEncoder {
        let d = self.width;
        let blocks = TransformerEncoderConfig::new(d, self.feed_forward, self.heads, self.depth)
            .with_dropout(0.0)
            .with_norm_first(true)
            .with_activation(burn::nn::activation::ActivationConfig::Relu)
            .init(device);
        let encoder = SequenceEncoder {
            tokens: Embedding {
                weight: Param::from_data(
                    TensorData::new(vec![0.0f32; vocab * d], [vocab, d]),
                    device,
                ),
            },
            positions: Param::from_data(
                TensorData::new(vec![0.0f32; length * d], [length, d]),
                device,
            ),
            blocks,
            norm: LayerNormConfig::new(d).init(device),
            length,
        };
        encoder.map(&mut Load { take, device })
    }
}

/// Overwrites every float parameter, in visit order, with the values and id `take` gives.
struct Load<'a> {
    take: &'a mut dyn FnMut(usize) -> (Vec<f32>, ParamId),
    device: &'a Device,
}

impl ModuleMapper for Load<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let dims: [usize; D] = param.shape().dims();
        let (values, id) = (self.take)(dims.iter().product());
        let mut p = Param::from_data(TensorData::new(values, dims), self.device);
        p.id = id;
        p
    }
}

/// Token embedding, learned positions, causal transformer, final layer norm.
#[derive(Module, Debug)]
pub struct SequenceEncoder {
    /// `[V, width]`.
    pub tokens: Embedding,
    /// `[L, width]`, added to the token embedding of each position.
    pub positions: Param<Tensor<2>>,
    /// The causal transformer layers.
    pub blocks: TransformerEncoder,
    /// Applied to the features the heads read (pre-norm transformers end with one).
    pub norm: LayerNorm,
    /// L: token ids per observation.
    #[module(skip)]
    pub length: usize,
}

impl SequenceEncoder {
    /// `[B, L + 1]` observations (ids, then the text's length) → `[B, width]`: the features
    /// at the text's last position. Ids outside the vocabulary (only a faulty or hostile actor
    /// sends them: every byte passes the wire check) are clamped into it, and the length into
    /// `1..=L`, so no observation can index past a table.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [b, _] = x.dims();
        let l = self.length;
        let device = x.device();
        let [vocab, _]: [usize; 2] = self.tokens.weight.shape().dims();
        let ids: Tensor<2, Int> = x
            .clone()
            .slice([0..b, 0..l])
            .clamp(0.0, (vocab - 1) as f32)
            .int();
        let last: Tensor<2, Int> = x
            .slice([0..b, l..l + 1])
            .sub_scalar(1.0)
            .clamp(0.0, (l - 1) as f32)
            .int();
        let h = self.tokens.forward(ids) + self.positions.val().unsqueeze::<3>();
        let mask = generate_autoregressive_mask(b, l, &device);
        let h = self
            .blocks
            .forward(TransformerEncoderInput::new(h).mask_attn(mask));
        let [_, _, d] = h.dims();
        let index = last.reshape([b, 1, 1]).expand([b, 1, d]);
        self.norm.forward(h.gather(1, index).reshape([b, d]))
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};

    use crate::model::{ActionHead, Activation, EncoderKind, Input, ModelSpec, SequenceShape};

    fn spec() -> ModelSpec {
        ModelSpec {
            obs_dim: 9,
            input: Input::Tokens {
                length: 8,
                vocab: 40,
            },
            encoder: EncoderKind::Transformer,
            sequence: SequenceShape {
                width: 16,
                depth: 2,
                heads: 4,
                feed_forward: 32,
            },
            ..ModelSpec::mlp(
                9,
                ActionHead::Categorical(40),
                vec![64, 64],
                Activation::Tanh,
            )
        }
    }

    fn rows(rows: &[&[f32]]) -> Tensor<2> {
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_data(TensorData::new(flat, [rows.len(), 9]), &Device::flex())
    }

    fn read(t: Tensor<2>) -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap()
    }

    /// burn visits the built transformer's parameters exactly as the spec lays them out, and
    /// they read back bit for bit.
    #[test]
    fn the_built_transformer_has_the_spec_layout_and_round_trips() {
        let spec = spec();
        spec.validate().unwrap();
        let flat = spec.init_params(7);
        let model = spec.build(&flat, &Device::flex());
        assert_eq!(model.layout().entries(), spec.layout().entries());
        assert_eq!(model.to_flat(), flat);
        let (d, f, v, l) = (16, 32, 40, 8);
        let per_layer = 4 * (d * d + d) + (d * f + f) + (f * d + d) + 4 * d;
        let encoder = v * d + l * d + 2 * per_layer + 2 * d;
        let heads = (d * 40 + 40) + (d + 1);
        assert_eq!(spec.layout().num_floats(), encoder + heads);
        assert!(spec.input().contains("heads 4"));
    }

    /// The heads read the text's last position: what follows it (padding, or anything) changes
    /// nothing, what precedes it does.
    #[test]
    fn the_features_are_causal_and_read_at_the_texts_last_position() {
        let spec = spec();
        let model = spec.build(&spec.init_params(3), &Device::flex());
        let text = [14.0, 15.0, 2.0, 16.0, 0.0, 0.0, 0.0, 0.0, 4.0];
        let noise = [14.0, 15.0, 2.0, 16.0, 30.0, 1.0, 7.0, 9.0, 4.0];
        let earlier = [14.0, 17.0, 2.0, 16.0, 0.0, 0.0, 0.0, 0.0, 4.0];
        let shorter = [14.0, 15.0, 2.0, 16.0, 0.0, 0.0, 0.0, 0.0, 3.0];
        let out = read(model.logits(rows(&[&text, &noise, &earlier, &shorter])));
        let row = |i: usize| &out[i * 40..(i + 1) * 40];
        for (a, b) in row(0).iter().zip(row(1)) {
            assert!(
                (a - b).abs() < 1e-6,
                "tokens after the text changed the logits"
            );
        }
        let differs = |a: &[f32], b: &[f32]| a.iter().zip(b).any(|(x, y)| (x - y).abs() > 1e-6);
        assert!(differs(row(0), row(2)), "an earlier token did not matter");
        assert!(differs(row(0), row(3)), "the length did not matter");
        // A single row gives what it gives in the batch.
        let alone = read(model.logits(rows(&[&shorter])));
        for (a, b) in alone.iter().zip(row(3)) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    /// What a registration response may ask for is bounded: ids and lengths fit a byte, the
    /// model fits memory.
    #[test]
    fn token_shapes_and_model_sizes_are_bounded() {
        let long = ModelSpec {
            obs_dim: 301,
            input: Input::Tokens {
                length: 300,
                vocab: 40,
            },
            ..spec()
        };
        assert!(long.validate().unwrap_err().contains("at most 255"));
        let huge = ModelSpec {
            sequence: SequenceShape {
                width: 4096,
                depth: 64,
                heads: 8,
                feed_forward: 16384,
            },
            ..spec()
        };
        assert!(huge.validate().unwrap_err().contains("parameters"));
        let on_vectors = ModelSpec {
            input: Input::Vector,
            ..spec()
        };
        assert!(on_vectors.validate().is_err());
    }

    /// Ids outside the vocabulary (a faulty actor's) are clamped, not an out-of-bounds read.
    #[test]
    fn ids_outside_the_vocabulary_are_clamped() {
        let spec = spec();
        let model = spec.build(&spec.init_params(2), &Device::flex());
        let wild = read(model.logits(rows(&[&[255.0, 15.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 200.0]])));
        let top = read(model.logits(rows(&[&[39.0, 15.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 8.0]])));
        assert_eq!(wild, top);
    }

    /// Gradients reach every parameter of the transformer through the gathered position.
    #[test]
    fn every_transformer_parameter_gets_a_gradient() {
        let spec = spec();
        let device = Device::flex().autodiff();
        let model = spec.build(&spec.init_params(1), &device);
        let obs = rows(&[&[14.0, 15.0, 2.0, 16.0, 17.0, 0.0, 0.0, 0.0, 5.0]]).to_device(&device);
        let (logits, values) = model.heads(obs);
        let loss = logits.powf_scalar(2.0).sum() + values.sum();
        let grads = loss.backward();
        let grads = burn::optim::GradientsParams::from_grads(grads, &model);
        assert_eq!(grads.len(), spec.layout().entries().len());
    }
}
