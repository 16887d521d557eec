//! The network's description ([`ModelSpec`]): its parameter layout, its initialisation and
//! how it builds the network.
//!
//! Both sides build the network from a [`ModelSpec`] and a flat parameter vector in
//! [`ParamLayout`] order, so the learner's initial weights (drawn on the host from the run seed)
//! and every later version reach actors bit-for-bit. Parameters are identified by path and
//! position; [`ModelSpec::build`] gives each the `ParamId` of its position (burn's own ids are
//! random per process), so optimizer state saved by one learner process loads in the next.

use burn::module::{Param, ParamId};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};

use super::encoder::{ConvEncoder, Encoder, EncoderKind, conv2d};
use super::input::Input;
use super::network::{Activation, ActorCritic, Mlp};
use super::orthogonal::orthogonal;
use super::policy::ActionHead;
use super::sequence::SequenceShape;
use crate::codec::{ParamEntry, ParamLayout};
use crate::obs::ObsFormat;
use crate::rng::Rng;

/// Most parameters of a transformer model (a bound on what a registration response can make
/// an actor allocate): 64M `f32`, 256 MB.
pub const MAX_SEQUENCE_PARAMS: usize = 64 << 20;

/// Everything needed to build the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Observation size (C·H·W for images, L + 1 for token sequences).
    pub obs_dim: usize,
    /// What the observations are: vectors, images or token sequences.
    pub input: Input,
    /// The encoder both heads read (`mlp`: none, each head is an MLP on the observation).
    pub encoder: EncoderKind,
    /// The action distribution.
    pub action: ActionHead,
    /// Hidden layer widths of each head's MLP with the `mlp` encoder (the actor and the critic
    /// each get their own stack); with a convolutional encoder the heads are single dense layers
    /// on its features.
    pub hidden: Vec<usize>,
    /// Hidden-layer non-linearity of the heads.
    pub activation: Activation,
    /// The transformer's size (the `transformer` encoder only).
    pub sequence: SequenceShape,
}

impl ModelSpec {
    /// An MLP on `f32` vector observations.
    pub fn mlp(
        obs_dim: usize,
        action: ActionHead,
        hidden: Vec<usize>,
        activation: Activation,
    ) -> Self {
        Self {
            obs_dim,
            input: Input::Vector,
            encoder: EncoderKind::Mlp,
            action,
            hidden,
            activation,
            sequence: SequenceShape::default(),
        }
    }

    /// `[C, H, W]` of image observations.
    pub fn image(&self) -> Option<[usize; 3]> {
        self.input.image()
    }

    /// Checks that the encoder fits the observations: convolutional encoders need images large
    /// enough for their kernels, token sequences need the transformer and it needs them.
    pub fn validate(&self) -> Result<(), String> {
        if let Some([c, h, w]) = self.image()
            && c * h * w != self.obs_dim
        {
            return Err(format!(
                "image {c}×{h}×{w} does not have obs_dim {} values",
                self.obs_dim
            ));
        }
        match (self.input, self.encoder) {
            (Input::Tokens { length, vocab }, EncoderKind::Transformer) => {
                if length + 1 != self.obs_dim || length == 0 || vocab == 0 {
                    return Err(format!(
                        "token sequences of {length} ids from {vocab} do not make obs_dim {}",
                        self.obs_dim
                    ));
                }
                // Ids and the length travel as one byte each.
                if length > 255 || vocab > 256 {
                    return Err(format!(
                        "token sequences of {length} ids from {vocab}: at most 255 ids from 256"
                    ));
                }
                self.sequence.validate()?;
                let floats = self.layout().num_floats();
                if floats > MAX_SEQUENCE_PARAMS {
                    return Err(format!(
                        "{} has {floats} parameters, more than this service trains ({MAX_SEQUENCE_PARAMS})",
                        self.sequence.describe()
                    ));
                }
                return Ok(());
            }
            (Input::Tokens { .. }, other) => {
                return Err(format!(
                    "the observations are token sequences, which encoder `{}` cannot read; use \
                     encoder = \"transformer\"",
                    other.name()
                ));
            }
            (_, EncoderKind::Transformer) => {
                return Err(format!(
                    "encoder `transformer` reads token sequences and the observations are {}",
                    self.input()
                ));
            }
            _ => {}
        }
        if self.encoder == EncoderKind::Mlp {
            return Ok(());
        }
        let Some(image) = self.image() else {
            return Err(format!(
                "encoder `{}` reads images and the observations are vectors of {} values; use                  encoder = \"mlp\"",
                self.encoder.name(),
                self.obs_dim
            ));
        };
        self.encoder.conv_shapes(image).map(|_| ())
    }

    /// How observations travel and are stored: bytes for images and tokens, `f32` otherwise.
    pub fn obs_format(&self) -> ObsFormat {
        self.input.obs_format()
    }

    /// Size of the observation statistics the run keeps for normalisation: the observation
    /// size, or 0 for images and tokens (they are not normalised: the network scales pixels
    /// and embeds tokens).
    pub fn moments_dim(&self) -> usize {
        match self.input {
            Input::Vector => self.obs_dim,
            _ => 0,
        }
    }

    /// Width of the shared encoder's features, `None` for `mlp`.
    fn features(&self) -> Option<usize> {
        match self.encoder {
            EncoderKind::Transformer => Some(self.sequence.width),
            kind => kind.features(),
        }
    }

    /// Width of the features the heads read: the encoder's, or the observation's for `mlp`.
    fn head_input(&self) -> usize {
        self.features().unwrap_or(self.obs_dim)
    }

    /// The hidden widths of each head: `hidden` for an MLP, none on a CNN's features (the heads
    /// are single dense layers there).
    pub fn head_hidden(&self) -> &[usize] {
        match self.encoder {
            EncoderKind::Mlp => &self.hidden,
            _ => &[],
        }
    }

    fn stack(&self, out: usize) -> Vec<(usize, usize)> {
        let mut dims = vec![self.head_input()];
        dims.extend(self.head_hidden());
        dims.push(out);
        dims.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// The shared encoder's parameter shapes in layout order: per convolution its weight
    /// `[out, in, k, k]` and bias, then the dense layer's `[in, out]` weight and bias; for the
    /// transformer, [`SequenceShape::param_shapes`].
    fn encoder_shapes(&self) -> Vec<(String, Vec<usize>)> {
        if let (EncoderKind::Transformer, Input::Tokens { length, vocab }) =
            (self.encoder, self.input)
        {
            return self
                .sequence
                .param_shapes("encoder.Sequence", length, vocab);
        }
        let (Some(image), Some(features)) = (self.image(), self.encoder.features()) else {
            return Vec::new();
        };
        let shapes = self
            .encoder
            .conv_shapes(image)
            .expect("validated model spec");
        let mut entries = Vec::new();
        let mut channels = image[0];
        for (i, l) in self.encoder.conv_layers().iter().enumerate() {
            entries.push((
                format!("encoder.Conv.convs.{i}.weight"),
                vec![l.filters, channels, l.kernel, l.kernel],
            ));
            entries.push((format!("encoder.Conv.convs.{i}.bias"), vec![l.filters]));
            channels = l.filters;
        }
        let flat: usize = shapes.last().map_or(0, |s| s.iter().product());
        entries.push(("encoder.Conv.fc.weight".into(), vec![flat, features]));
        entries.push(("encoder.Conv.fc.bias".into(), vec![features]));
        entries
    }

    /// The parameter layout of the network this spec builds, in transfer order.
    pub fn layout(&self) -> ParamLayout {
        let mut entries: Vec<ParamEntry> = self
            .encoder_shapes()
            .into_iter()
            .map(|(path, shape)| ParamEntry::new(path, shape))
            .collect();
        for (head, out) in [("actor", self.action.outputs()), ("critic", 1)] {
            for (i, (d_in, d_out)) in self.stack(out).into_iter().enumerate() {
                entries.push(ParamEntry::new(
                    format!("{head}.layers.{i}.weight"),
                    vec![d_in, d_out],
                ));
                entries.push(ParamEntry::new(
                    format!("{head}.layers.{i}.bias"),
                    vec![d_out],
                ));
            }
        }
        if let ActionHead::Gaussian(dim) = self.action {
            entries.push(ParamEntry::new("log_std".to_string(), vec![dim]));
        }
        let layout = ParamLayout::new(entries);
        match self.input {
            Input::Vector => layout,
            _ => layout.with_input(self.input()),
        }
    }

    /// What the network reads: `u8 image [C, H, W]`, `u8 tokens [L] of V with the length, ...`
    /// or `O f32 values` (an image or token model's is part of its fingerprint: it says what
    /// the parameter shapes do not, such as the attention heads).
    pub fn input(&self) -> String {
        match self.input {
            Input::Image([c, h, w]) => format!("u8 image [{c}, {h}, {w}]"),
            Input::Tokens { length, vocab } => format!(
                "u8 tokens [{length}] of {vocab} with the length, {}",
                self.sequence.describe()
            ),
            Input::Vector => format!("{} f32 values", self.obs_dim),
        }
    }

    /// Initial parameters drawn from `seed`: orthogonal weights with gain √2 in hidden layers,
    /// 0.01 on the policy output and 1 on the value output, zero biases (the PPO
    /// implementation details of Huang et al. 2022, as in Stable-Baselines3); a Gaussian
    /// policy's `log_std` starts at 0 (standard deviation 1), as in Stable-Baselines3 and CleanRL.
    /// A convolutional encoder's weights are orthogonal with gain √2 too (Stable-Baselines3's
    /// `NatureCNN`), each filter a row of `[out, in·k·k]`.
    /// The transformer's are [`SequenceShape::init`]'s.
    pub fn init_params(&self, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let mut flat = Vec::with_capacity(self.layout().num_floats());
        let shapes = self.encoder_shapes();
        if self.encoder == EncoderKind::Transformer {
            flat.extend(self.sequence.init(&shapes, &mut rng));
        } else {
            flat.extend(conv_init(&shapes, &mut rng));
        }
        for (out, out_gain) in [(self.action.outputs(), 0.01), (1, 1.0)] {
            let layers = self.stack(out);
            let last = layers.len() - 1;
            for (i, (d_in, d_out)) in layers.into_iter().enumerate() {
                let gain = if i == last {
                    out_gain
                } else {
                    std::f64::consts::SQRT_2
                };
                flat.extend(orthogonal(d_in, d_out, gain, &mut rng));
                flat.extend(std::iter::repeat_n(0.0, d_out));
            }
        }
        if let ActionHead::Gaussian(dim) = self.action {
            flat.extend(std::iter::repeat_n(0.0, dim));
        }
        flat
    }

    /// Builds the network on `device` from `flat` parameters in [`ModelSpec::layout`] order.
    ///
    /// # Panics
    /// When `flat` does not have `layout().num_floats()` values; callers decode parameters with
    /// [`ParamLayout::decode`], which checks that first.
    pub fn build(&self, flat: &[f32], device: &Device) -> ActorCritic {
        assert_eq!(flat.len(), self.layout().num_floats(), "parameter count");
        let mut offset = 0;
        let mut position = 0u64;
        // The next `n` values in layout order, with the id of their parameter's position.
        let mut take = |n: usize| {
            let values = flat[offset..offset + n].to_vec();
            offset += n;
            position += 1;
            (values, ParamId::from(position))
        };
        let encoder = match (self.encoder, self.input) {
            (EncoderKind::Transformer, Input::Tokens { length, vocab }) => Some(Encoder::Sequence(
                self.sequence.build(length, vocab, device, &mut take),
            )),
            (kind, Input::Image(image)) if kind.features().is_some() => {
                // Weight and bias shapes in layout order: a pair per convolution, then the
                // dense layer's pair.
                let shapes = self.encoder_shapes();
                let (conv_shapes, fc_shapes) = shapes.split_at(shapes.len() - 2);
                let convs = self
                    .encoder
                    .conv_layers()
                    .iter()
                    .zip(conv_shapes.chunks(2))
                    .map(|(&l, pair)| {
                        let shape: [usize; 4] = pair[0]
                            .1
                            .clone()
                            .try_into()
                            .expect("4-D convolution weight");
                        let (w, w_id) = take(shape.iter().product());
                        let (b, b_id) = take(l.filters);
                        conv2d(
                            param(TensorData::new(w, shape), w_id, device),
                            param(TensorData::new(b, [l.filters]), b_id, device),
                            l,
                        )
                    })
                    .collect();
                let &[flat, features] = &fc_shapes[0].1[..] else {
                    panic!("2-D dense weight")
                };
                let (w, w_id) = take(flat * features);
                let (b, b_id) = take(features);
                Some(Encoder::Conv(ConvEncoder {
                    convs,
                    fc: Linear {
                        weight: param(TensorData::new(w, [flat, features]), w_id, device),
                        bias: Some(param(TensorData::new(b, [features]), b_id, device)),
                    },
                    input: image,
                }))
            }
            _ => None,
        };
        let mut mlp = |out: usize| Mlp {
            layers: self
                .stack(out)
                .into_iter()
                .map(|(d_in, d_out)| {
                    let (w, w_id) = take(d_in * d_out);
                    let (b, b_id) = take(d_out);
                    Linear {
                        weight: param(TensorData::new(w, [d_in, d_out]), w_id, device),
                        bias: Some(param(TensorData::new(b, [d_out]), b_id, device)),
                    }
                })
                .collect(),
            activation: self.activation,
        };
        let actor = mlp(self.action.outputs());
        let critic = mlp(1);
        let log_std = match self.action {
            ActionHead::Categorical(_) => None,
            ActionHead::Gaussian(dim) => {
                let (v, id) = take(dim);
                Some(param(TensorData::new(v, [dim]), id, device))
            }
        };
        ActorCritic {
            encoder,
            actor,
            critic,
            log_std,
            pixels: self.image().is_some(),
        }
    }
}

/// Initial values for a convolutional encoder's parameter shapes, drawn from `rng`:
/// orthogonal weights with gain √2 (each filter a row of `[out, in·k·k]`), zero biases; none
/// for `mlp`, whose shapes are empty.
fn conv_init(shapes: &[(String, Vec<usize>)], rng: &mut Rng) -> Vec<f32> {
    let mut flat = Vec::new();
    for (path, shape) in shapes {
        if path.ends_with("bias") {
            flat.extend(std::iter::repeat_n(0.0, shape[0]));
        } else if shape.len() == 4 {
            let fan_in = shape[1] * shape[2] * shape[3];
            let w = orthogonal(fan_in, shape[0], std::f64::consts::SQRT_2, rng);
            // `orthogonal` returns [in, out]; a convolution's weight is [out, in, k, k].
            for o in 0..shape[0] {
                flat.extend((0..fan_in).map(|i| w[i * shape[0] + o]));
            }
        } else {
            flat.extend(orthogonal(
                shape[0],
                shape[1],
                std::f64::consts::SQRT_2,
                rng,
            ));
        }
    }
    flat
}

/// A trainable parameter from `data` on `device` with the fixed `id`.
fn param<const D: usize>(data: TensorData, id: ParamId, device: &Device) -> Param<Tensor<D>> {
    let mut p = Param::from_data(data, device);
    p.id = id;
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::orthogonal::tests::assert_gram;

    fn spec() -> ModelSpec {
        ModelSpec::mlp(
            4,
            ActionHead::Categorical(2),
            vec![64, 64],
            Activation::Tanh,
        )
    }

    #[test]
    fn built_module_has_the_spec_layout_and_round_trips() {
        let spec = spec();
        let flat = spec.init_params(5);
        let model = spec.build(&flat, &Device::flex());
        assert_eq!(model.layout(), spec.layout());
        assert_eq!(model.to_flat(), flat);
        assert_eq!(
            spec.layout().num_floats(),
            2 * (4 * 64 + 64 + 64 * 64 + 64) + 64 * 2 + 2 + 65
        );
    }

    #[test]
    fn gaussian_spec_adds_a_log_std_parameter_last() {
        let spec = ModelSpec::mlp(3, ActionHead::Gaussian(2), vec![8], Activation::Tanh);
        let flat = spec.init_params(1);
        let model = spec.build(&flat, &Device::flex());
        assert_eq!(model.layout(), spec.layout());
        let last = spec.layout().entries().last().unwrap().clone();
        assert_eq!((last.path.as_str(), last.shape), ("log_std", vec![2]));
        assert_eq!(&flat[flat.len() - 2..], &[0.0, 0.0]);
        assert_eq!(model.to_flat(), flat);
        assert_eq!(model.log_std().unwrap().dims(), [2]);
        let categorical = ModelSpec {
            action: ActionHead::Categorical(2),
            ..spec
        };
        let model = categorical.build(&categorical.init_params(1), &Device::flex());
        assert!(model.log_std().is_none());
    }

    fn nature(actions: usize) -> ModelSpec {
        ModelSpec {
            obs_dim: 4 * 84 * 84,
            input: Input::Image([4, 84, 84]),
            encoder: EncoderKind::NatureCnn,
            action: ActionHead::Categorical(actions),
            hidden: vec![64, 64],
            activation: Activation::Relu,
            sequence: SequenceShape::default(),
        }
    }

    #[test]
    fn the_nature_network_has_the_papers_layers_and_parameter_count() {
        let spec = nature(4);
        spec.validate().unwrap();
        let shapes: Vec<(String, Vec<usize>)> = spec
            .layout()
            .entries()
            .iter()
            .map(|e| (e.path.clone(), e.shape.clone()))
            .collect();
        let want: Vec<(&str, Vec<usize>)> = vec![
            ("encoder.Conv.convs.0.weight", vec![32, 4, 8, 8]),
            ("encoder.Conv.convs.0.bias", vec![32]),
            ("encoder.Conv.convs.1.weight", vec![64, 32, 4, 4]),
            ("encoder.Conv.convs.1.bias", vec![64]),
            ("encoder.Conv.convs.2.weight", vec![64, 64, 3, 3]),
            ("encoder.Conv.convs.2.bias", vec![64]),
            ("encoder.Conv.fc.weight", vec![3136, 512]),
            ("encoder.Conv.fc.bias", vec![512]),
            ("actor.layers.0.weight", vec![512, 4]),
            ("actor.layers.0.bias", vec![4]),
            ("critic.layers.0.weight", vec![512, 1]),
            ("critic.layers.0.bias", vec![1]),
        ];
        let want: Vec<(String, Vec<usize>)> =
            want.into_iter().map(|(p, s)| (p.to_string(), s)).collect();
        assert_eq!(shapes, want);
        // 8,224 + 32,832 + 36,928 conv, 1,606,144 dense, 2,052 + 513 heads.
        assert_eq!(spec.layout().num_floats(), 1_686_693);

        // The built network visits the same parameters and computes the documented shapes.
        let device = Device::flex();
        let flat = spec.init_params(3);
        let model = spec.build(&flat, &device);
        assert_eq!(model.layout().entries(), spec.layout().entries());
        assert_eq!(model.to_flat(), flat);
        let obs = Tensor::<2>::ones([2, 4 * 84 * 84], &device).mul_scalar(255.0);
        let Some(Encoder::Conv(conv)) = &model.encoder else {
            panic!("a convolutional encoder")
        };
        let mut x: Tensor<4> = obs.clone().div_scalar(255.0).reshape([2, 4, 84, 84]);
        let mut dims = Vec::new();
        for layer in &conv.convs {
            x = layer.forward(x);
            dims.push(x.dims());
        }
        assert_eq!(dims, vec![[2, 32, 20, 20], [2, 64, 9, 9], [2, 64, 7, 7]]);
        assert_eq!(x.flatten::<2>(1, 3).dims(), [2, 3136]);
        assert_eq!(model.features(obs.clone()).dims(), [2, 512]);
        let (logits, values) = model.heads(obs);
        assert_eq!((logits.dims(), values.dims()), ([2, 4], [2]));
    }

    #[test]
    fn conv_filters_are_orthogonal_rows_and_encoders_must_fit_their_input() {
        let spec = ModelSpec {
            obs_dim: 4 * 10 * 10,
            input: Input::Image([4, 10, 10]),
            encoder: EncoderKind::SmallCnn,
            ..nature(3)
        };
        let flat = spec.init_params(9);
        // The first convolution: 16 filters of 4·3·3 = 36 values, orthonormal rows × √2.
        assert_gram(&flat[..16 * 36], 16, 2.0);
        assert_eq!(
            spec.layout().num_floats(),
            16 * 36 + 16 + 1024 * 128 + 128 + 128 * 3 + 3 + 129
        );
        let too_small = ModelSpec {
            obs_dim: 4 * 10 * 10,
            input: Input::Image([4, 10, 10]),
            ..nature(3)
        };
        assert!(too_small.validate().unwrap_err().contains("does not fit"));
        let on_vectors = ModelSpec::mlp(4, ActionHead::Categorical(2), vec![8], Activation::Tanh);
        let on_vectors = ModelSpec {
            encoder: EncoderKind::SmallCnn,
            ..on_vectors
        };
        assert!(on_vectors.validate().unwrap_err().contains("reads images"));
    }

    #[test]
    fn image_models_scale_pixels_and_say_so_in_the_fingerprint() {
        let image = ModelSpec {
            obs_dim: 3,
            input: Input::Image([1, 1, 3]),
            encoder: EncoderKind::Mlp,
            ..ModelSpec::mlp(3, ActionHead::Categorical(2), vec![4], Activation::Tanh)
        };
        let vector = ModelSpec {
            input: Input::Vector,
            ..image.clone()
        };
        assert_eq!(image.layout().entries(), vector.layout().entries());
        assert_ne!(image.layout().fingerprint(), vector.layout().fingerprint());
        let flat = image.init_params(1);
        let device = Device::flex();
        let pixels =
            Tensor::<2>::from_data(TensorData::new(vec![255.0f32, 0.0, 51.0], [1, 3]), &device);
        let scaled =
            Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.2], [1, 3]), &device);
        let read = |t: Tensor<2>| {
            t.into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap()
        };
        let a = read(image.build(&flat, &device).logits(pixels));
        let b = read(vector.build(&flat, &device).logits(scaled));
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }
}
