//! Benchmark: IMPALA's scaling with the number of actor processes on this machine. For 1, 2, 4
//! and 8 actors, `shoal train configs/cartpole-impala.toml` runs a fixed budget of env steps
//! (a target it cannot reach, so every run does the same work) and the table shows end-to-end SPS, the
//! learner's busy share, the actors' idle share and the policy lag over the run (mean of the
//! status rows' means, median of their p90s, largest max) with the masked share.
//!
//! `cargo bench -p shoal-tests --bench impala_scaling` (after `cargo build --release --bins`).
//! `SHOAL_BENCH_STEPS=N` changes the budget (default 300k); `SHOAL_BENCH_ACTORS=1,2,4,8` the
//! actor counts.

use std::process::Stdio;

use shoal_tests::{repo_root, shoal_exe, temp_dir};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let steps: u64 = std::env::var("SHOAL_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300_000);
    let counts: Vec<u32> = std::env::var("SHOAL_BENCH_ACTORS")
        .unwrap_or_else(|_| "1,2,4,8".into())
        .split(',')
        .map(|s| s.trim().parse().expect("actor counts"))
        .collect();
    println!(
        "shoal IMPALA CartPole-v1 (configs/cartpole-impala.toml), {steps} env steps per run, \
         device flex, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:>6} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8} {:>7}",
        "actors", "sps", "learner", "idle", "lag_avg", "lag_p90", "lag_max", "masked"
    );
    for actors in counts {
        let run_dir = temp_dir(&format!("impala-scaling-{actors}"));
        let out = std::process::Command::new(shoal_exe())
            .current_dir(repo_root())
            .args(["train", "configs/cartpole-impala.toml", "--json"])
            .args(["--actors", &actors.to_string(), "--device", "flex"])
            .args([
                "--total-steps",
                &steps.to_string(),
                "--target-return",
                "1e9",
            ])
            .args(["--run-dir", run_dir.to_str().expect("utf-8 path")])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .expect("run shoal train");
        assert!(
            out.status.success(),
            "shoal train failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
        let rows: Vec<serde_json::Value> = std::fs::read_to_string(run_dir.join("metrics.jsonl"))
            .expect("metrics.jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a metrics row"))
            .collect();
        let _ = std::fs::remove_dir_all(&run_dir);
        let col = |k: &str| -> Vec<f64> { rows.iter().filter_map(|r| r[k].as_f64()).collect() };
        let lag_avg = col("version_diff_avg");
        let lag_avg = lag_avg.iter().sum::<f64>() / lag_avg.len().max(1) as f64;
        let lag_max = col("version_diff_max").into_iter().fold(0.0, f64::max);
        let wall = s["wall_secs"].as_f64().unwrap();
        let env_steps = s["env_steps"].as_u64().unwrap() as f64;
        let masked = s["samples_masked"].as_u64().unwrap_or(0) as f64;
        println!(
            "{actors:>6} {:>8.0} {:>7.0}% {:>6.0}% {lag_avg:>8.2} {:>8.0} {lag_max:>8.0} {:>6.1}%",
            env_steps / wall,
            100.0 * s["update_secs"].as_f64().unwrap() / wall,
            100.0 * s["actor_idle_fraction"].as_f64().unwrap_or(f64::NAN),
            median(col("version_diff_p90")),
            100.0 * masked / (masked + env_steps),
        );
    }
}
