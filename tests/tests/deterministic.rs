//! Runs that repeat bit for bit (issue 14): with `deterministic = true`, a synchronous PPO run
//! and a DQN run with the same seed and actor count, launched as a user launches them (`shoal
//! train`, learner and actor processes), end with byte-identical parameters, the same
//! episodes and the same counts, three times over.

use std::path::Path;

use shoal_tests::{repo_root, shoal_exe, temp_dir};

/// What a run must repeat: the final parameters, every episode (`episodes.csv` has no
/// wall-clock column) and the summary's counts.
#[derive(Debug, PartialEq)]
struct Outcome {
    params: Vec<u8>,
    episodes: String,
    counts: Vec<(String, serde_json::Value)>,
}

/// `shoal train CONFIG --actors ACTORS --set deterministic=true ...` in a fresh directory.
fn run(config: &str, actors: u32, sets: &[&str], dir: &Path) -> Outcome {
    let mut cmd = std::process::Command::new(shoal_exe());
    cmd.current_dir(repo_root())
        .args(["train", config, "--actors", &actors.to_string()])
        .args(["--device", "flex", "--json", "--no-progress"])
        .args(["--run-dir", dir.to_str().unwrap()])
        .args(["--set", "deterministic=true"])
        // A slow start under load must not close a round without an actor.
        .args(["--set", "learner.actor_timeout_secs=60"]);
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = cmd
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run shoal train");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["partial_updates"], 0, "{summary}");
    let counts = [
        "reason",
        "solved",
        "env_steps",
        "episodes",
        "updates",
        "version",
        "rollouts_used",
        "rollouts_stale",
        "nonfinite_updates",
        "return_mean_100",
        "eval_return_mean",
        "recent",
    ]
    .iter()
    .map(|k| (k.to_string(), summary[*k].clone()))
    .collect();
    Outcome {
        params: std::fs::read(dir.join("checkpoints/final/params.bin")).unwrap(),
        episodes: std::fs::read_to_string(dir.join("episodes.csv")).unwrap(),
        counts,
    }
}

fn repeats(name: &str, config: &str, actors: u32, sets: &[&str]) {
    let dir = temp_dir(name);
    let outcomes: Vec<Outcome> = (0..3)
        .map(|i| run(config, actors, sets, &dir.join(format!("run{i}"))))
        .collect();
    assert!(
        outcomes[0].episodes.lines().count() > 10,
        "too short a run to show anything: {:?}",
        outcomes[0].counts
    );
    for (i, o) in outcomes.iter().enumerate().skip(1) {
        assert_eq!(o.counts, outcomes[0].counts, "run {i}'s counts differ");
        assert!(
            o.episodes == outcomes[0].episodes,
            "run {i}'s episodes differ"
        );
        assert!(
            o.params == outcomes[0].params,
            "run {i}'s parameters differ"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn synchronous_ppo_repeats_bit_for_bit() {
    repeats(
        "det-ppo",
        "configs/cartpole-ppo.toml",
        2,
        &["total_steps=16384"],
    );
}

#[test]
fn dqn_repeats_bit_for_bit() {
    repeats(
        "det-dqn",
        "configs/cartpole-dqn.toml",
        2,
        &["total_steps=6144", "dqn.learning_starts=1024"],
    );
}
