//! End to end, IMPALA (APPO as configured in `configs/`): a real learner on 127.0.0.1:0 and two
//! real actor processes that never wait for a version solve CartPole and Acrobot, the policy
//! lag is measured, and experience beyond `max_policy_lag` is masked out and counted while
//! training goes on.

use shoal_common::config::{DeviceChoice, RunConfig};
use shoal_learner::RunSummary;
use shoal_tests::{repo_root, train_with_actors};

fn load(file: &str) -> RunConfig {
    let mut config = RunConfig::load(&repo_root().join(file)).unwrap();
    config.validate().unwrap();
    config.learner.device = DeviceChoice::Flex;
    config
}

/// Trains `config` with `actors` actor processes; returns the summary and the metrics rows.
async fn train(
    config: RunConfig,
    name: &str,
    actors: usize,
) -> (RunSummary, Vec<serde_json::Value>) {
    let (summary, run_dir) = train_with_actors(config, name, actors).await;
    println!(
        "{name}: solved {} in {} env steps ({} masked), {} updates, {:.2} s, actors idle {:?}",
        summary.solved,
        summary.env_steps,
        summary.samples_masked,
        summary.updates,
        summary.wall_secs,
        summary.actor_idle_fraction
    );
    let rows = std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (summary, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_actor_processes_solve_cartpole_within_500k_steps() {
    let config = load("configs/cartpole-impala.toml");
    assert_eq!(config.total_steps, 500_000);
    let (summary, rows) = train(config, "impala-cartpole", 2).await;
    assert!(summary.solved, "not solved: {summary:?}");
    assert!(summary.env_steps <= 500_000, "{summary:?}");
    assert!(summary.return_mean_100.unwrap() >= 475.0);
    // The actors never waited for a version: they measured how long they did wait (for acks).
    let idle = summary
        .actor_idle_fraction
        .expect("actors report idle time");
    assert!((0.0..=1.0).contains(&idle), "{idle}");
    // Lag is a first-class quantity of every row that saw experience.
    let last = rows.last().unwrap();
    for key in [
        "version_diff_min",
        "version_diff_avg",
        "version_diff_p90",
        "version_diff_max",
        "masked_fraction",
        "samples_masked",
        "policy_loss",
        "clipfrac",
        "queue_depth",
    ] {
        assert!(
            rows.iter().any(|r| !r[key].is_null()),
            "no metrics row has {key}: {last}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_actor_processes_bring_acrobot_to_minus_100_within_500k_steps() {
    let config = load("configs/acrobot-impala.toml");
    assert_eq!(config.total_steps, 500_000);
    let (summary, _) = train(config, "impala-acrobot", 2).await;
    assert!(summary.solved, "not solved: {summary:?}");
    assert!(summary.env_steps <= 500_000, "{summary:?}");
    assert!(summary.return_mean_100.unwrap() >= -100.0);
}

/// Acceptance 5: a learner made slow (many passes over each batch) behind four actors that
/// never wait, and a lag bound of one version. Experience beyond it is masked and counted; the
/// rest is trained on, and the policy still improves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experience_beyond_max_policy_lag_is_masked_and_training_goes_on() {
    let mut config = load("configs/cartpole-impala.toml");
    config.impala.max_policy_lag = 1;
    config.impala.update_epochs = 8;
    config.total_steps = 500_000;
    config.target_return = Some(300.0);
    config.learner.status_interval_secs = 0.5;
    let (summary, rows) = train(config, "impala-lag", 4).await;
    assert!(summary.samples_masked > 0, "nothing masked: {summary:?}");
    assert!(summary.rollouts_stale > 0, "{summary:?}");
    // Masked experience is not trained on; the rest is, version after version.
    assert!(
        summary.rollouts_used > 0 && summary.updates >= 10,
        "{summary:?}"
    );
    assert!(summary.samples_masked < summary.env_steps, "{summary:?}");
    let masked_rows = rows
        .iter()
        .filter(|r| r["masked_fraction"].as_f64().is_some_and(|m| m > 0.0))
        .count();
    assert!(masked_rows > 0, "no row shows a masked fraction");
    assert!(
        rows.iter()
            .any(|r| r["version_diff_max"].as_u64().is_some_and(|l| l > 1)),
        "no lag beyond the bound was seen"
    );
    // Training progressed: a random policy averages about 22 on CartPole.
    assert!(summary.solved, "{summary:?}");
    assert!(summary.return_mean_100.unwrap() >= 300.0);
}
