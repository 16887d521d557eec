//! Benchmark: token-sequence RL with the causal transformer, per model size, measured side by
//! side in one run on `configs/text-reverse-ppo.toml` (Text-Reverse, 10-token observations):
//! tokens an actor generates per second (its rollout: batched inference on flex, sampling, the
//! environment), and the learner's PPO update on one batch (2 rollouts of 16 copies × 32
//! steps = 1,024 tokens, 4 epochs × 4 minibatches): ms per update, tokens per second, updates
//! per second, for five sizes around the one-second boundary; the largest model that trains at
//! ≥ 1 update/s is printed last.
//!
//! `cargo bench -p shoal-tests --bench text`

use std::time::Instant;

use shoal_actor::policy::Policy;
use shoal_common::config::RunConfig;
use shoal_common::model::SequenceShape;
use shoal_common::normalize::Normalizer;
use shoal_compute::Engine;
use shoal_learner::algo::ppo::PpoTrainer;
use shoal_tests::{collect_batch, repo_root, worker_for};

/// Mean seconds per call of `f` over at least `min_secs` (after one warm-up call).
fn secs_per_call(min_secs: f64, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut calls = 0u32;
    while calls == 0 || start.elapsed().as_secs_f64() < min_secs {
        f();
        calls += 1;
    }
    start.elapsed().as_secs_f64() / f64::from(calls)
}

const SIZES: [SequenceShape; 5] = [
    SequenceShape {
        width: 32,
        depth: 2,
        heads: 2,
        feed_forward: 64,
    },
    SequenceShape {
        width: 48,
        depth: 2,
        heads: 4,
        feed_forward: 96,
    },
    SequenceShape {
        width: 64,
        depth: 1,
        heads: 4,
        feed_forward: 128,
    },
    SequenceShape {
        width: 64,
        depth: 2,
        heads: 4,
        feed_forward: 128,
    },
    SequenceShape {
        width: 128,
        depth: 2,
        heads: 4,
        feed_forward: 256,
    },
];

fn main() {
    let mut config = RunConfig::load(&repo_root().join("configs/text-reverse-ppo.toml")).unwrap();
    println!(
        "Text-Reverse, PPO update = {} tokens ({} rollouts x {} copies x {} steps), {} epochs x {} minibatches; flex, one process",
        config.ppo.rollouts_per_update * config.num_envs * config.n_steps,
        config.ppo.rollouts_per_update,
        config.num_envs,
        config.n_steps,
        config.ppo.update_epochs,
        config.ppo.num_minibatches
    );
    println!(
        "| width | depth | heads | ff | parameters | actor tokens/s | update ms | learner tokens/s | updates/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut largest = None;
    for shape in SIZES {
        config.model.transformer = shape;
        let spec = shoal_learner::model_spec(&config).unwrap();
        let params = spec.init_params(1);
        let policy = Policy::new(&spec, &params, 1, Normalizer::off(spec.obs_dim));
        let mut worker = worker_for(&config, &spec, 3);
        let tokens_per_rollout = (config.num_envs * config.n_steps) as f64;
        let rollout = secs_per_call(2.0, || {
            worker.collect(&policy).unwrap();
        });
        let batch = collect_batch(&config, &spec, &params, 5, config.ppo.rollouts_per_update);
        let mut trainer = PpoTrainer::new(
            &config,
            spec.clone(),
            &params,
            &Engine::Host { threads: 1 },
            1,
        );
        let update = secs_per_call(3.0, || {
            let _ = trainer.update(&batch, 0);
        });
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.2} |",
            shape.width,
            shape.depth,
            shape.heads,
            shape.feed_forward,
            spec.layout().num_floats(),
            tokens_per_rollout / rollout,
            update * 1e3,
            batch.len() as f64 / update,
            1.0 / update
        );
        let floats = spec.layout().num_floats();
        if update <= 1.0 && largest.is_none_or(|(_, n)| floats > n) {
            largest = Some((shape, floats));
        }
    }
    match largest {
        Some((s, n)) => println!(
            "largest model at >= 1 update/s: width {} depth {} heads {} feed-forward {} ({n} parameters)",
            s.width, s.depth, s.heads, s.feed_forward
        ),
        None => println!("no model size reaches 1 update/s on this machine"),
    }
}
