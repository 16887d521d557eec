//! The learning suite: every shipped config trained with `shoal train` (learner + 2 actor
//! processes, 4 for A3C, flex), one line per run with env steps, wall-clock, final mean return and whether
//! it reached its target. Results are recorded in docs/learning-suite.md.
//!
//! `cargo bench -p shoal-tests --bench learning_suite` (`SHOAL_SUITE_SEEDS=N`, default 3).

use shoal_tests::shoal_train;

/// Each config with the number of actor processes it is meant for.
const CONFIGS: &[(&str, u32)] = &[
    ("configs/cartpole-ppo.toml", 2),
    ("configs/acrobot-ppo.toml", 2),
    ("configs/pendulum-ppo.toml", 2),
    ("configs/cartpole-a3c.toml", 4),
    ("configs/cartpole-dqn.toml", 2),
    ("configs/gridworld-3x3-ppo.toml", 2),
    ("configs/gridworld-4x4-ppo.toml", 2),
];

fn main() {
    let seeds: u64 = std::env::var("SHOAL_SUITE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    println!(
        "| config | actors | seed | solved | env steps | launch→end (s) | return (last 100) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for &(config, actors) in CONFIGS {
        for seed in 1..=seeds {
            let (s, secs) = shoal_train(config, seed, actors);
            println!(
                "| {config} | {actors} | {seed} | {} | {} | {secs:.1} | {:.1} |",
                s["solved"],
                s["env_steps"],
                s["return_mean_100"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
}
