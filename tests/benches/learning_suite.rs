//! The learning suite: every shipped config trained with `shoal train` (learner + 2 actor
//! processes, flex), one line per run with env steps, wall-clock, final mean return and whether
//! it reached its target. Results are recorded in docs/learning-suite.md.
//!
//! `cargo bench -p shoal-tests --bench learning_suite` (`SHOAL_SUITE_SEEDS=N`, default 3).

use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;
use shoal_tests::{repo_root, shoal_exe, temp_dir};

const CONFIGS: &[&str] = &[
    "configs/cartpole-ppo.toml",
    "configs/acrobot-ppo.toml",
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
            let run_dir = temp_dir(&format!("suite-{seed}"));
            let start = Instant::now();
            let out = Command::new(shoal_exe())
                .current_dir(repo_root())
                .args([
                    "train", config, "--actors", "2", "--json", "--device", "flex",
                ])
                .args([
                    "--seed",
                    &seed.to_string(),
                    "--run-dir",
                    run_dir.to_str().unwrap(),
                ])
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .expect("run shoal train");
            let secs = start.elapsed().as_secs_f64();
            assert!(
                out.status.success(),
                "{config} seed {seed} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let s: Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
            println!(
                "| {config} | {seed} | {} | {} | {secs:.1} | {:.1} |",
                s["solved"],
                s["env_steps"],
                s["return_mean_100"].as_f64().unwrap_or(f64::NAN)
            );
            let _ = std::fs::remove_dir_all(&run_dir);
        }
    }
}
