//! Benchmark: image observations, printed side by side in one run.
//!
//! 1. Bytes per transition on the wire (an encoded `TransitionBatch` of 64 transitions divided
//!    by 64) with `u8` observations against the same observations as `f32`: MinBreakout's
//!    4×10×10 and the Atari frame stack 4×84×84.
//! 2. Forward and forward+backward time per batch (32 and 256) of the Nature network on
//!    `[4, 84, 84]` and of the small CNN on `[4, 10, 10]` (policy and value heads, flex).
//! 3. MinBreakout steps/s on one core (one environment, uniformly random actions).
//! 4. DQN frames/s end to end on MinBreakout with 2 actor processes
//!    (`shoal train configs/minbreakout-dqn.toml --actors 2`, the env steps of the whole run
//!    over its wall-clock time from launch to exit).
//!
//! `cargo bench -p shoal-tests --bench pixels` (`SHOAL_BENCH_SECS`, default 2 s per row;
//! `SHOAL_BENCH_E2E=0` skips the end-to-end run).

use std::time::Instant;

use burn::tensor::{Device, Tensor};
use prost::Message;
use shoal_common::env::{self, Action};
use shoal_common::model::{ActionHead, Activation, EncoderKind, ModelSpec};
use shoal_common::obs::{ObsFormat, Observations};
use shoal_common::rng::Rng;
use shoal_common::transition::TransitionBatch;
use shoal_tests::shoal_train;

/// Encoded bytes per transition of a 64-transition batch of `obs_dim` pixels in `format`.
fn wire_bytes(obs_dim: usize, format: ObsFormat) -> f64 {
    let b = 64;
    let mut rng = Rng::new(1);
    let pixels: Vec<f32> = (0..b * obs_dim).map(|_| rng.below(256) as f32).collect();
    let batch = TransitionBatch {
        actor_id: 1,
        version: 1,
        obs: Observations::from_f32(format, &pixels),
        actions: vec![0; b],
        rewards: vec![0.0; b],
        discounts: vec![0.99; b],
        next_obs: Observations::from_f32(format, &pixels),
        episode_returns: vec![],
        episode_lengths: vec![],
    };
    batch.to_proto("0123456789abcdef").encoded_len() as f64 / b as f64
}

fn spec(image: [usize; 3], encoder: EncoderKind) -> ModelSpec {
    ModelSpec {
        obs_dim: image.iter().product(),
        input: shoal_common::model::Input::Image(image),
        encoder,
        action: ActionHead::Categorical(4),
        hidden: vec![64, 64],
        activation: Activation::Relu,
        sequence: Default::default(),
    }
}

/// Milliseconds per forward pass and per forward+backward pass on a batch of `batch` images.
fn network_ms(spec: &ModelSpec, batch: usize, secs: f64) -> (f64, f64) {
    let flat = spec.init_params(1);
    let time = |device: &Device, backward: bool| {
        let model = spec.build(&flat, device);
        let mut rng = Rng::new(2);
        let pixels: Vec<f32> = (0..batch * spec.obs_dim)
            .map(|_| rng.below(256) as f32)
            .collect();
        let obs = Observations::from_f32(ObsFormat::U8, &pixels);
        let run = || {
            let x: Tensor<2> = obs.clone().into_tensor(batch, device);
            let (logits, values) = model.heads(x);
            let loss = logits.mean() + values.mean();
            if backward {
                let _ = loss.backward();
            } else {
                let _ = loss.into_data();
            }
        };
        run();
        let (mut n, start) = (0u32, Instant::now());
        while n < 3 || start.elapsed().as_secs_f64() < secs {
            run();
            n += 1;
        }
        start.elapsed().as_secs_f64() * 1e3 / n as f64
    };
    let flex = Device::flex();
    (time(&flex, false), time(&flex.autodiff(), true))
}

/// Steps per second of one MinBreakout environment with random actions.
fn min_breakout_steps_per_second(secs: f64) -> f64 {
    let mut env = env::make("MinBreakout-v0").unwrap();
    let mut obs = vec![0.0f32; env.observation_space().flat_dim()];
    let mut rng = Rng::new(3);
    env.reset(&mut rng, &mut obs);
    let (mut steps, start) = (0u64, Instant::now());
    while start.elapsed().as_secs_f64() < secs {
        for _ in 0..10_000 {
            let step = env.step(Action::Discrete(rng.below(3)), &mut obs);
            if step.terminated || step.truncated {
                env.reset(&mut rng, &mut obs);
            }
        }
        steps += 10_000;
    }
    steps as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let secs: f64 = std::env::var("SHOAL_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);

    println!("Bytes per transition on the wire (64-transition TransitionBatch, obs + next obs)");
    println!("| observation | u8 | f32 | f32 / u8 |");
    println!("|---|---|---|---|");
    for (name, dim) in [
        ("MinBreakout 4×10×10", 400),
        ("Atari stack 4×84×84", 4 * 84 * 84),
    ] {
        let (u8s, f32s) = (
            wire_bytes(dim, ObsFormat::U8),
            wire_bytes(dim, ObsFormat::F32),
        );
        println!("| {name} | {u8s:.0} | {f32s:.0} | {:.2}× |", f32s / u8s);
    }

    println!();
    println!("Network time per batch on flex (policy + value heads, u8 pixels cast and scaled)");
    println!("| network | input | batch | forward ms | forward+backward ms |");
    println!("|---|---|---|---|---|");
    for (name, image, encoder) in [
        ("nature_cnn", [4, 84, 84], EncoderKind::NatureCnn),
        ("small_cnn", [4, 10, 10], EncoderKind::SmallCnn),
    ] {
        let spec = spec(image, encoder);
        for batch in [32, 256] {
            let (fwd, both) = network_ms(&spec, batch, secs);
            println!("| {name} | {image:?} | {batch} | {fwd:.2} | {both:.2} |",);
        }
    }

    println!();
    let sps = min_breakout_steps_per_second(secs);
    println!("MinBreakout-v0 steps/s on one core (random actions): {sps:.0}");

    if std::env::var("SHOAL_BENCH_E2E").as_deref() != Ok("0") {
        println!();
        let (summary, wall) = shoal_train("configs/minbreakout-dqn.toml", 1, 2);
        let steps = summary["env_steps"].as_f64().unwrap_or(0.0);
        println!(
            "DQN on MinBreakout-v0, 2 actor processes: {steps:.0} frames in {wall:.1} s = {:.0} \
             frames/s end to end (launch to exit; greedy eval return {})",
            steps / wall,
            summary["eval_return_mean"]
        );
    }
}
