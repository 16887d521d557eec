//! Seeded fixtures for tests on the compute seam, here and in the algorithms that stand on it:
//! one model of each encoder the engines compute, observations for it, and parameters away from
//! the initialisation.

use shoal_common::model::{ActionHead, Activation, EncoderKind, Input, ModelSpec, SequenceShape};
use shoal_common::rng::Rng;

/// One model of each kind the host computes.
pub fn specs() -> Vec<(&'static str, ModelSpec)> {
    let image = |input: [usize; 3], encoder, actions| ModelSpec {
        obs_dim: input.iter().product(),
        input: Input::Image(input),
        encoder,
        ..ModelSpec::mlp(
            0,
            ActionHead::Categorical(actions),
            vec![],
            Activation::Relu,
        )
    };
    vec![
        (
            "mlp tanh",
            ModelSpec::mlp(
                4,
                ActionHead::Categorical(2),
                vec![64, 64],
                Activation::Tanh,
            ),
        ),
        (
            "mlp relu",
            ModelSpec::mlp(6, ActionHead::Categorical(5), vec![32], Activation::Relu),
        ),
        (
            "mlp gaussian",
            ModelSpec::mlp(3, ActionHead::Gaussian(2), vec![16, 16], Activation::Tanh),
        ),
        (
            "mlp on pixels",
            ModelSpec {
                obs_dim: 2 * 5 * 5,
                input: Input::Image([2, 5, 5]),
                ..ModelSpec::mlp(50, ActionHead::Categorical(3), vec![16], Activation::Relu)
            },
        ),
        ("small_cnn", image([2, 10, 9], EncoderKind::SmallCnn, 3)),
        ("nature_cnn", image([4, 84, 84], EncoderKind::NatureCnn, 6)),
        (
            "transformer",
            ModelSpec {
                obs_dim: 9,
                input: Input::Tokens {
                    length: 8,
                    vocab: 11,
                },
                encoder: EncoderKind::Transformer,
                sequence: SequenceShape {
                    width: 16,
                    depth: 2,
                    heads: 4,
                    feed_forward: 24,
                },
                ..ModelSpec::mlp(9, ActionHead::Categorical(11), vec![], Activation::Relu)
            },
        ),
    ]
}

/// Seeded observations of `rows` rows for `spec` (pixels, or texts of every length).
pub fn observations(spec: &ModelSpec, rows: usize, rng: &mut Rng) -> (Vec<u8>, Vec<f32>) {
    match spec.input {
        Input::Vector => (
            Vec::new(),
            (0..rows * spec.obs_dim)
                .map(|_| rng.normal() as f32)
                .collect(),
        ),
        Input::Image(_) => (
            (0..rows * spec.obs_dim)
                .map(|_| rng.below(256) as u8)
                .collect(),
            Vec::new(),
        ),
        Input::Tokens { length, vocab } => {
            let mut bytes = Vec::new();
            for r in 0..rows {
                bytes.extend((0..length).map(|_| rng.below(vocab) as u8));
                bytes.push((r % length + 1) as u8);
            }
            (bytes, Vec::new())
        }
    }
}

/// Parameters away from the initialisation (zero biases, 0.01-gain policy layer), so that
/// every path of the network carries gradient.
pub fn params(spec: &ModelSpec, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed + 100);
    let mut p = spec.init_params(seed);
    p.iter_mut()
        .for_each(|v| *v += (rng.normal() * 0.05) as f32);
    p
}
