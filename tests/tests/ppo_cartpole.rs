//! End to end: a real learner on 127.0.0.1:0 and two real actor processes train CartPole.

use shoal_common::config::DeviceChoice;
use shoal_tests::{TestLearner, cartpole_config, spawn_actor, temp_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_actor_processes_solve_cartpole_within_150k_steps() {
    let mut config = cartpole_config();
    config.total_steps = 150_000;
    config.target_return = Some(475.0);
    config.learner.device = DeviceChoice::Flex;
    let run_dir = temp_dir("ppo-cartpole");
    let learner = TestLearner::start(config, run_dir.clone()).await;
    let mut actors: Vec<_> = (0..2)
        .map(|i| spawn_actor(&learner.url(), &format!("test-actor-{i}"), false))
        .collect();

    let summary = learner.handle.await.unwrap().unwrap();
    assert!(summary.solved, "not solved: {summary:?}");
    assert!(summary.env_steps <= 150_000, "{summary:?}");
    assert!(summary.return_mean_100.unwrap() >= 475.0);

    // The actors are told the run is over and exit cleanly by themselves.
    for actor in &mut actors {
        let status = actor.wait().await.unwrap();
        assert!(status.success(), "actor exited with {status}");
    }

    // The run directory: config, metrics rows with the documented keys, a final checkpoint.
    assert!(run_dir.join("config.toml").exists());
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    assert_eq!(last["env_steps"].as_u64(), Some(summary.env_steps));
    assert!(last["return_mean_100"].as_f64().unwrap() >= 475.0);
    for key in [
        "sps",
        "updates",
        "version",
        "policy_loss",
        "approx_kl",
        "clipfrac",
        "connected_actors",
    ] {
        assert!(last.get(key).is_some(), "metrics row lacks {key}");
    }
    let ckpt = run_dir.join("checkpoints/final");
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt.join("checkpoint.json")).unwrap())
            .unwrap();
    assert_eq!(meta["env_steps"].as_u64(), Some(summary.env_steps));
    let params = std::fs::read(ckpt.join("params.bin")).unwrap();
    let spec = shoal_learner::model_spec(&cartpole_config()).unwrap();
    assert_eq!(params.len(), spec.layout().num_floats() * 4);
    assert!(ckpt.join("optimizer.bpk").exists());
}

/// An actor SIGKILLed in the middle of a run: the learner notices its subscription close and
/// carries on with the other one (each stall is bounded by `param_wait_ms`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_goes_on_when_an_actor_dies_mid_run() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let mut config = cartpole_config();
    config.total_steps = 12_000;
    config.target_return = None;
    config.learner.device = DeviceChoice::Flex;
    config.learner.param_wait_ms = 300;
    let learner = TestLearner::start(config, temp_dir("actor-dies")).await;
    let mut doomed = spawn_actor(&learner.url(), "doomed", true);
    let mut survivor = spawn_actor(&learner.url(), "survivor", false);

    // Kill the first actor once it has trained with a few versions.
    let mut lines = BufReader::new(doomed.stderr.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if event["message"] == "parameters loaded" && event["version"].as_u64() >= Some(5) {
            break;
        }
    }
    doomed.start_kill().unwrap();
    doomed.wait().await.unwrap();

    let summary = learner.handle.await.unwrap().unwrap();
    assert!(summary.env_steps >= 12_000, "{summary:?}");
    assert!(summary.reason.contains("total_steps"), "{summary:?}");
    assert!(summary.updates >= 10, "{summary:?}");
    assert!(survivor.wait().await.unwrap().success());
}

/// The README's main command, as a user runs it: `shoal train CONFIG --actors 2`, here with a
/// small step budget. It exits cleanly and leaves the run directory.
#[test]
fn shoal_train_command_runs_and_leaves_a_run_directory() {
    let run_dir = temp_dir("shoal-train");
    let out = std::process::Command::new(shoal_tests::shoal_exe())
        .current_dir(shoal_tests::repo_root())
        .args([
            "train",
            "configs/cartpole-ppo.toml",
            "--actors",
            "2",
            "--device",
            "flex",
        ])
        .args([
            "--total-steps",
            "3000",
            "--json",
            "--run-dir",
            run_dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["reason"], "total_steps 3000 reached");
    assert!(summary["env_steps"].as_u64().unwrap() >= 3000);
    assert!(summary["updates"].as_u64().unwrap() >= 10);
    for file in [
        "config.toml",
        "metrics.jsonl",
        "checkpoints/final/params.bin",
    ] {
        assert!(run_dir.join(file).exists(), "{file} missing");
    }
    // Both actors connected (the learner's logs say so).
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        logs.contains("actor-0") && logs.contains("actor-1"),
        "{logs}"
    );
}

/// Issue 3's Acrobot bar, small enough for CI: PPO with 2 actor processes reaches a mean return
/// of −100 over the last 100 episodes within 500k steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acrobot_reaches_minus_100_within_500k_steps() {
    let config = shoal_common::config::RunConfig::load(
        &shoal_tests::repo_root().join("configs/acrobot-ppo.toml"),
    )
    .unwrap();
    assert_eq!(config.total_steps, 500_000);
    let learner = TestLearner::start(config, temp_dir("acrobot")).await;
    let _actors: Vec<_> = (0..2)
        .map(|i| spawn_actor(&learner.url(), &format!("acrobot-{i}"), false))
        .collect();
    let summary = learner.handle.await.unwrap().unwrap();
    assert!(summary.solved, "{summary:?}");
    assert!(summary.return_mean_100.unwrap() >= -100.0);
}
