//! Benchmark: the learner's PPO minibatch step (both heads forward and backward through the
//! clipped-surrogate loss, global-norm clipping, Adam) per model, side by side in one run: the
//! host engine (1 and 2 threads) and the burn engine (autodiff) on flex, with the
//! achieved GFLOP/s and the machine's single-core matmul peak (the `gemm` crate, 1024³, one
//! thread). `scripts/bench-vs-torch` runs it beside PyTorch on one CPU thread.
//!
//! `cargo bench --workspace --bench learner_step`; `SHOAL_BENCH_JSON=FILE` also writes the rows.

use std::time::Instant;

use burn::tensor::Device;
use serde_json::json;
use shoal_common::config::RunConfig;
use shoal_common::model::{ActionHead, Activation, EncoderKind, Input, ModelSpec, SequenceShape};
use shoal_common::obs::Observations;
use shoal_common::rng::Rng;
use shoal_compute::Engine;
use shoal_compute::kernels::gemm::{Operand, matmul};
use shoal_learner::algo::ppo::{Batch, PpoTrainer};

/// One model at one minibatch size.
struct Case {
    name: &'static str,
    spec: ModelSpec,
    rows: usize,
}

fn cases() -> Vec<Case> {
    let cartpole = ModelSpec::mlp(
        4,
        ActionHead::Categorical(2),
        vec![64, 64],
        Activation::Tanh,
    );
    let wide = ModelSpec::mlp(
        64,
        ActionHead::Categorical(6),
        vec![256, 256],
        Activation::Tanh,
    );
    let nature = ModelSpec {
        obs_dim: 4 * 84 * 84,
        input: Input::Image([4, 84, 84]),
        encoder: EncoderKind::NatureCnn,
        ..ModelSpec::mlp(0, ActionHead::Categorical(6), vec![], Activation::Relu)
    };
    let image = |input: [usize; 3], encoder| ModelSpec {
        obs_dim: input.iter().product(),
        input: Input::Image(input),
        encoder,
        ..ModelSpec::mlp(0, ActionHead::Categorical(6), vec![], Activation::Relu)
    };
    let large = ModelSpec {
        obs_dim: 65,
        input: Input::Tokens {
            length: 64,
            vocab: 40,
        },
        encoder: EncoderKind::Transformer,
        sequence: SequenceShape {
            width: 256,
            depth: 4,
            heads: 8,
            feed_forward: 1024,
        },
        ..ModelSpec::mlp(0, ActionHead::Categorical(40), vec![], Activation::Relu)
    };
    let transformer = ModelSpec {
        obs_dim: 17,
        input: Input::Tokens {
            length: 16,
            vocab: 40,
        },
        encoder: EncoderKind::Transformer,
        sequence: SequenceShape {
            width: 64,
            depth: 2,
            heads: 4,
            feed_forward: 128,
        },
        ..ModelSpec::mlp(0, ActionHead::Categorical(40), vec![], Activation::Relu)
    };
    vec![
        Case {
            name: "cartpole_mlp_b64",
            spec: cartpole.clone(),
            rows: 64,
        },
        Case {
            name: "cartpole_mlp_b256",
            spec: cartpole,
            rows: 256,
        },
        Case {
            name: "mlp_256x256_b256",
            spec: wide,
            rows: 256,
        },
        Case {
            name: "small_cnn_b256",
            spec: image([4, 10, 10], EncoderKind::SmallCnn),
            rows: 256,
        },
        Case {
            name: "nature_cnn_b32",
            spec: nature.clone(),
            rows: 32,
        },
        Case {
            name: "nature_cnn_b256",
            spec: nature,
            rows: 256,
        },
        Case {
            name: "transformer_w64_b256",
            spec: transformer,
            rows: 256,
        },
        Case {
            name: "transformer_w256_b64",
            spec: large,
            rows: 64,
        },
    ]
}

/// Multiply-adds of one row's forward pass through both heads (and the shared encoder).
fn forward_macs(spec: &ModelSpec) -> f64 {
    let heads = |features: usize| -> usize {
        [spec.action.outputs(), 1]
            .into_iter()
            .map(|out| {
                let mut d = features;
                let mut macs = 0;
                for &h in spec.hidden.iter().chain([out].iter()) {
                    macs += d * h;
                    d = h;
                }
                macs
            })
            .sum()
    };
    match spec.input {
        Input::Vector => heads(spec.obs_dim) as f64,
        Input::Image(image) => {
            let mut macs = 0;
            let mut channels = image[0];
            let shapes = spec.encoder.conv_shapes(image).unwrap();
            for (l, s) in spec.encoder.conv_layers().iter().zip(&shapes) {
                macs += s[0] * s[1] * s[2] * l.kernel * l.kernel * channels;
                channels = l.filters;
            }
            let flat: usize = shapes.last().unwrap().iter().product();
            let features = spec.encoder.features().unwrap();
            (macs + flat * features + heads(features)) as f64
        }
        Input::Tokens { length, .. } => {
            let s = spec.sequence;
            // Per position and layer: Q, K, V, O projections, scores and mixing over the causal
            // window (half the text on average), the feed-forward network.
            let per_layer = 4 * s.width * s.width + length * s.width + 2 * s.width * s.feed_forward;
            (length * s.depth * per_layer + heads(s.width)) as f64
        }
    }
}

/// A seeded batch of `rows` plausible samples for `spec`.
fn batch(spec: &ModelSpec, rows: usize) -> Batch {
    let mut rng = Rng::new(1);
    let obs: Vec<f32> = match spec.input {
        Input::Vector => (0..rows * spec.obs_dim)
            .map(|_| rng.normal() as f32)
            .collect(),
        Input::Image(_) => (0..rows * spec.obs_dim)
            .map(|_| rng.below(256) as f32)
            .collect(),
        Input::Tokens { length, vocab } => (0..rows)
            .flat_map(|_| {
                let mut row: Vec<f32> = (0..length).map(|_| rng.below(vocab) as f32).collect();
                row.push(length as f32);
                row
            })
            .collect(),
    };
    let n = spec.action.outputs();
    Batch {
        obs: Observations::from_f32(spec.obs_format(), &obs),
        actions: (0..rows).map(|_| rng.below(n) as f32).collect(),
        log_probs: (0..rows)
            .map(|_| -(n as f32).ln() + 0.1 * rng.normal() as f32)
            .collect(),
        advantages: (0..rows).map(|_| rng.normal() as f32).collect(),
        returns: (0..rows).map(|_| rng.normal() as f32).collect(),
        values: vec![0.0; rows],
    }
}

/// Milliseconds per minibatch step of `PpoTrainer` on `batch` (one minibatch per epoch): the
/// whole `update`, so also the minibatch's gathering, advantage normalisation and statistics
/// (PyTorch's figure times the step alone).
fn step_ms(spec: &ModelSpec, batch: &Batch, engine: &Engine, budget_s: f64) -> f64 {
    let mut config = RunConfig::default();
    config.ppo.num_minibatches = 1;
    config.ppo.update_epochs = 1;
    // torch_step.py's loss: clipped surrogate + 0.5 · value MSE − 0.01 · entropy.
    config.ppo.ent_coef = 0.01;
    let initial = spec.init_params(1);
    let mut trainer = PpoTrainer::new(&config, spec.clone(), &initial, engine, 1);
    let _ = trainer.update(batch, 0); // warm-up
    let start = Instant::now();
    let mut steps = 0u32;
    while steps < 3 || start.elapsed().as_secs_f64() < budget_s {
        let _ = trainer.update(batch, 0);
        steps += 1;
    }
    start.elapsed().as_secs_f64() / steps as f64 * 1e3
}

/// Single-thread GFLOP/s of a 1024³ product (best of 5).
fn matmul_peak() -> f64 {
    let n = 1024;
    let mut rng = Rng::new(2);
    let a: Vec<f32> = (0..n * n).map(|_| rng.normal() as f32).collect();
    let b: Vec<f32> = (0..n * n).map(|_| rng.normal() as f32).collect();
    let mut c = vec![0.0f32; n * n];
    (0..6)
        .map(|_| {
            let t = Instant::now();
            matmul(
                &mut c,
                Operand::new(&a, n, n),
                Operand::new(&b, n, n),
                false,
            );
            2.0 * (n * n * n) as f64 / t.elapsed().as_secs_f64() / 1e9
        })
        .skip(1)
        .fold(0.0, f64::max)
}

fn main() {
    let peak = matmul_peak();
    println!("single-core matmul peak (gemm crate, 1024³, 1 thread): {peak:.1} GFLOP/s");
    println!(
        "{:<22} {:>10} {:>12} {:>9} {:>12} {:>9} {:>12} {:>9}",
        "case", "MFLOP", "host 1t ms", "GFLOP/s", "host 2t ms", "GFLOP/s", "burn ms", "burn/host1"
    );
    let mut rows = Vec::new();
    for case in cases() {
        let batch = batch(&case.spec, case.rows);
        // Forward, then backward at about twice the forward's cost (a slight overcount: neither
        // side computes the input's gradient of the first layer).
        let mflop = 3.0 * 2.0 * forward_macs(&case.spec) * case.rows as f64 / 1e6;
        let burn = step_ms(
            &case.spec,
            &batch,
            &Engine::Burn {
                device: Device::flex(),
            },
            2.0,
        );
        let host1 = Some(step_ms(
            &case.spec,
            &batch,
            &Engine::Host { threads: 1 },
            2.0,
        ));
        let host2 = Some(step_ms(
            &case.spec,
            &batch,
            &Engine::Host { threads: 2 },
            2.0,
        ));
        let gflops = |ms: f64| mflop / ms;
        let show = |v: Option<f64>| v.map_or("-".to_string(), |ms| format!("{ms:.3}"));
        let show_g = |v: Option<f64>| v.map_or("-".to_string(), |ms| format!("{:.1}", gflops(ms)));
        println!(
            "{:<22} {:>10.2} {:>12} {:>9} {:>12} {:>9} {:>12.3} {:>9}",
            case.name,
            mflop,
            show(host1),
            show_g(host1),
            show(host2),
            show_g(host2),
            burn,
            host1.map_or("-".to_string(), |h| format!("{:.1}x", burn / h)),
        );
        rows.push(json!({
            "case": case.name, "rows": case.rows, "mflop": mflop, "params": case.spec.layout().num_floats(),
            "host_1t_ms": host1, "host_2t_ms": host2, "burn_ms": burn,
        }));
    }
    if let Ok(path) = std::env::var("SHOAL_BENCH_JSON") {
        let out = json!({"matmul_peak_gflops": peak, "cases": rows});
        std::fs::write(path, serde_json::to_string_pretty(&out).unwrap()).unwrap();
    }
}
