//! Benchmark: the DQN learner's throughput on the CartPole network (4-64-64-2 Q-network).
//!
//! 1. Updates per second of the trainer alone (sample a batch from a replay buffer of 20k real
//!    CartPole transitions, one double-DQN step with Adam, priorities updated), batch 64 and 256,
//!    uniform and prioritised replay.
//! 2. Transitions per second a live learner ingests on loopback from 1, 2 and 4 pushers (the
//!    actor's transport settings, 64-transition batches, adopting the parameters each ack
//!    carries): with learning off (`learning_starts` never reached: decode, validate, insert)
//!    and on (`configs/cartpole-dqn.toml`: replay ratio 0.5, batch 64), where the updates the
//!    learner owes bound the rate.
//!
//! Time to solve CartPole beside Stable-Baselines3 is `scripts/bench-vs-sb3 dqn`.
//!
//! `cargo bench -p shoal-tests --bench dqn` (`SHOAL_BENCH_SECS`, default 3 s per row).

use std::time::{Duration, Instant};

use shoal_actor::policy::Policy;
use shoal_common::config::{DeviceChoice, RunConfig};
use shoal_common::normalize::Normalizer;
use shoal_common::proto;
use shoal_learner::algo::dqn::DqnTrainer;
use shoal_tests::{TestLearner, dqn_worker_for, repo_root, temp_dir};
use tonic::Code;

/// The learner runs in this process: with the allocator its binaries use (see learner/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn cartpole_dqn() -> RunConfig {
    let mut config = RunConfig::load(&repo_root().join("configs/cartpole-dqn.toml")).unwrap();
    config.learner.device = DeviceChoice::Flex;
    config
}

/// A batch of real transitions from a random-acting worker.
fn real_batch(config: &RunConfig, seed: u64) -> shoal_common::transition::TransitionBatch {
    let spec = shoal_learner::model_spec(config).unwrap();
    let mut config = config.clone();
    config.dqn.epsilon = 1.0;
    let policy = Policy::new(
        &spec,
        &spec.init_params(1),
        1,
        Normalizer::off(spec.obs_dim),
    );
    dqn_worker_for(&config, &spec, seed)
        .collect(&policy)
        .unwrap()
}

fn updates_per_second(batch_size: usize, prioritized: bool, dense: bool) -> f64 {
    let mut config = cartpole_dqn();
    config.dqn.batch_size = batch_size;
    config.dqn.prioritized = prioritized;
    let spec = shoal_learner::model_spec(&config).unwrap();
    let engine = if dense {
        shoal_compute::Engine::Host { threads: 1 }
    } else {
        shoal_compute::Engine::Burn {
            device: burn::tensor::Device::flex(),
        }
    };
    let mut trainer = DqnTrainer::new(&config, spec.clone(), &spec.init_params(1), &engine, 1);
    let batch = real_batch(&config, 7);
    while trainer.replay.len() < 20_000 {
        trainer.insert(&batch);
    }
    for _ in 0..20 {
        trainer.update(0.4);
    }
    let n = 400;
    let start = Instant::now();
    for _ in 0..n {
        trainer.update(0.4);
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn pusher(url: String, batch: proto::TransitionBatch, until: Instant) -> (u64, u64) {
    let mut c = shoal_tests::test_client(&url).await;
    let s = shoal_tests::register_probe(&mut c).await;
    let mut msg = proto::TransitionBatch {
        actor_id: s.actor_id,
        model_fingerprint: s.model_fingerprint.clone(),
        version: 1,
        ..batch
    };
    let (mut accepted, mut full) = (0, 0);
    while Instant::now() < until {
        match c.push_transitions(msg.clone()).await {
            Ok(ack) => {
                let ack = ack.into_inner();
                accepted += ack.accepted as u64;
                if let Some(p) = ack.parameters {
                    msg.version = p.version;
                }
            }
            Err(status) if status.code() == Code::ResourceExhausted => {
                full += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(status) => panic!("push failed: {status}"),
        }
    }
    (accepted, full)
}

fn main() {
    let secs: f64 = std::env::var("SHOAL_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    println!(
        "DQN learner updates/s, CartPole Q-network 4-64-64-2, flex, replay of 20k transitions"
    );
    println!(
        "host: the host engine (`learner.engine = \"auto\"` on the CPU, the default); burn: \
         `learner.engine = \"burn\"` (autodiff), side by side"
    );
    println!(
        "| batch | uniform, host | uniform, burn | ratio | prioritised, host | prioritised, burn | ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    for batch in [64, 256] {
        let [uh, ub, ph, pb] = [(false, true), (false, false), (true, true), (true, false)]
            .map(|(prioritized, dense)| updates_per_second(batch, prioritized, dense));
        println!(
            "| {batch} | {uh:.0} | {ub:.0} | {:.1}x | {ph:.0} | {pb:.0} | {:.1}x |",
            uh / ub,
            ph / pb
        );
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let wire = real_batch(&cartpole_dqn(), 3).to_proto("");
    println!(
        "\nTransitions ingested per second on loopback ({} per push), {secs} s per row",
        cartpole_dqn().n_steps * cartpole_dqn().num_envs
    );
    println!("| learning | pushers | transitions/s inserted | updates/s | queue full |");
    println!("|---|---|---|---|---|");
    for learning in [false, true] {
        for pushers in [1, 2, 4] {
            runtime.block_on(async {
                let mut config = cartpole_dqn();
                config.total_steps = u64::MAX / 2;
                config.target_return = None;
                config.learner.queue_capacity = 1024;
                if !learning {
                    config.dqn.learning_starts = usize::MAX;
                }
                // No evaluation inside the measurement.
                config.dqn.eval_interval = u64::MAX / 2;
                let learner = TestLearner::start(config, temp_dir("dqn-bench")).await;
                let until = Instant::now() + Duration::from_secs_f64(secs);
                let tasks: Vec<_> = (0..pushers)
                    .map(|_| tokio::spawn(pusher(learner.url(), wire.clone(), until)))
                    .collect();
                let mut full = 0;
                for t in tasks {
                    full += t.await.unwrap().1;
                }
                learner.shutdown.cancel();
                let summary = learner.handle.await.unwrap().unwrap();
                println!(
                    "| {} | {pushers} | {:.0} | {:.0} | {full} |",
                    if learning { "on" } else { "off" },
                    summary.env_steps as f64 / secs,
                    summary.updates as f64 / secs,
                );
            });
        }
    }
}
