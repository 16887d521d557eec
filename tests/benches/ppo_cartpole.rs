//! Benchmark: PPO on CartPole with a learner and 2 actor processes (`shoal train`), over 5
//! seeds, with the learner's two compute paths side by side in one run, alternating per seed:
//! the host engine (`learner.engine = "auto"`, the default) and the burn engine
//! (`--set learner.engine=burn`, autodiff). Per run: env steps and wall-clock
//! seconds from launch to solved (mean return ≥ 475 over the last 100 episodes), end-to-end SPS,
//! and the share of the learner's time spent updating; then medians and the ratio.
//!
//! `cargo bench -p shoal-tests --bench ppo_cartpole` (after `cargo build --release --bins`).
//! `SHOAL_BENCH_SEEDS=N` changes the number of seeds; `SHOAL_BENCH_JSON=FILE` also writes the
//! per-run results as JSON.

use serde_json::json;
use shoal_tests::shoal_train_with;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The two compute paths: a name and the overrides that choose it.
const PATHS: [(&str, &[&str]); 2] = [("host", &[]), ("burn", &["--set", "learner.engine=burn"])];

fn main() {
    // `cargo bench` passes --bench; no other arguments are used.
    let seeds: u64 = std::env::var("SHOAL_BENCH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut rows = Vec::new();
    println!(
        "shoal PPO CartPole-v1, learner + 2 actor processes, device flex, {seeds} seeds, the \
         learner's host path and burn's autodiff alternating"
    );
    println!(
        "{:>4} {:>5} {:>7} {:>9} {:>9} {:>9} {:>8} {:>7}",
        "seed", "path", "solved", "env_steps", "launch_s", "learner_s", "sps", "update%"
    );
    for seed in 1..=seeds {
        for (path, extra) in PATHS {
            let (summary, launch_secs) =
                shoal_train_with("configs/cartpole-ppo.toml", seed, 2, extra);
            let env_steps = summary["env_steps"].as_u64().unwrap();
            let wall = summary["wall_secs"].as_f64().unwrap();
            let update = summary["update_secs"].as_f64().unwrap();
            let solved = summary["solved"].as_bool().unwrap();
            let sps = env_steps as f64 / wall;
            println!(
                "{seed:>4} {path:>5} {solved:>7} {env_steps:>9} {launch_secs:>9.2} {wall:>9.2} {sps:>8.0} {:>6.0}%",
                100.0 * update / wall
            );
            rows.push(json!({
                "seed": seed, "path": path, "solved": solved, "env_steps": env_steps,
                "launch_to_exit_s": launch_secs, "learner_wall_s": wall, "update_s": update,
                "sps": sps, "rollouts_stale": summary["rollouts_stale"],
            }));
        }
    }
    let mut medians = Vec::new();
    for (path, _) in PATHS {
        let of_path: Vec<_> = rows.iter().filter(|r| r["path"] == path).collect();
        let col = |k: &str| {
            of_path
                .iter()
                .map(|r| r[k].as_f64().unwrap())
                .collect::<Vec<_>>()
        };
        let solved = of_path
            .iter()
            .filter(|r| r["solved"].as_bool() == Some(true))
            .count();
        let launch = median(col("launch_to_exit_s"));
        println!(
            "median {path} over {seeds} seeds: env_steps {:.0}, launch-to-solved {launch:.2} s, learner wall {:.2} s, SPS {:.0}, learner updating {:.0}% of its wall time; solved {solved}/{seeds}",
            median(col("env_steps")),
            median(col("learner_wall_s")),
            median(col("sps")),
            100.0 * median(col("update_s")) / median(col("learner_wall_s")),
        );
        medians.push(launch);
    }
    println!(
        "launch-to-solved, burn over host: {:.2}x (median over median)",
        medians[1] / medians[0]
    );
    if let Ok(path) = std::env::var("SHOAL_BENCH_JSON") {
        std::fs::write(path, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
    }
}
