//! The learning suite: every shipped config trained with `shoal train` (learner + 2 actor
//! processes, flex), one line per run with env steps, wall-clock, final mean return and whether
//! it reached its target. Results are recorded in docs/learning-suite.md.
//!
//! `cargo bench -p shoal-tests --bench learning_suite` (`SHOAL_SUITE_SEEDS=N`, default 3).

use shoal_tests::shoal_train;

const CONFIGS: &[&str] = &[
    "configs/cartpole-ppo.toml",
    "configs/acrobot-ppo.toml",
    "configs/pendulum-ppo.toml",
    "configs/gridworld-3x3-ppo.toml",
    "configs/gridworld-4x4-ppo.toml",
];

fn main() {
    let seeds: u64 = std::env::var("SHOAL_SUITE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    println!("| config | seed | solved | env steps | launch→end (s) | return (last 100) |");
    println!("|---|---|---|---|---|---|");
    for config in CONFIGS {
        for seed in 1..=seeds {
            let (s, secs) = shoal_train(config, seed);
            println!(
                "| {config} | {seed} | {} | {} | {secs:.1} | {:.1} |",
                s["solved"],
                s["env_steps"],
                s["return_mean_100"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
}
