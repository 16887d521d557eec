//! Continuous actions end to end: a real learner on 127.0.0.1:0 and two real actor processes
//! train a Gaussian PPO policy on Pendulum-v1 (issue 3's bar: mean return ≥ −250 over the last
//! 100 episodes within 300k steps), once as shipped and once with observation normalisation and
//! reward scaling shared across the actors.

use shoal_common::config::RunConfig;
use shoal_tests::{repo_root, train_with_actors};

fn pendulum() -> RunConfig {
    let mut config = RunConfig::load(&repo_root().join("configs/pendulum-ppo.toml")).unwrap();
    assert_eq!(
        (config.total_steps, config.target_return),
        (300_000, Some(-250.0))
    );
    // Lockstep rollouts: with the two tests sharing two cores, a rollout sometimes arrived one
    // version late (stale) and the normalised run's batches then differed from the next update
    // on; that trajectory of seed 1 stopped at 300k steps with a mean return of −675 (3 of 12
    // such runs after issue 19's faster learner, none when no rollout was stale). In lockstep
    // both runs repeat exactly: 69.6k and 94.2k steps.
    config.deterministic = true;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pendulum_reaches_minus_250_within_300k_steps() {
    let summary = train_with_actors(pendulum(), "pendulum", 2).await.0;
    assert!(summary.solved, "{summary:?}");
    assert!(summary.env_steps <= 300_000);
    // The policy saved is Gaussian: its layout ends with the log standard deviation.
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(summary.run_dir.join("checkpoints/final/checkpoint.json"))
            .unwrap(),
    )
    .unwrap();
    let params = meta["params"].as_array().unwrap();
    assert_eq!(params.last().unwrap()["path"], "log_std");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pendulum_with_shared_normalisation_reaches_minus_250() {
    let mut config = pendulum();
    config.normalize.observations = true;
    config.normalize.rewards = true;
    let summary = train_with_actors(config, "pendulum-norm", 2).await.0;
    assert!(summary.solved, "{summary:?}");
    // The checkpoint holds statistics over every sample trained on (each update used 2
    // rollouts of 4 x 512 steps).
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(summary.run_dir.join("checkpoints/final/checkpoint.json"))
            .unwrap(),
    )
    .unwrap();
    let count = meta["normalization"]["observations"]["count"]
        .as_f64()
        .unwrap();
    assert!(
        count >= summary.updates as f64 * 4096.0,
        "{count} {summary:?}"
    );
    let var: Vec<f64> = meta["normalization"]["observations"]["m2"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m2| m2.as_f64().unwrap() / count)
        .collect();
    // cos θ and sin θ vary within [−1, 1], the angular velocity within [−8, 8].
    assert!(var[0] > 0.01 && var[0] <= 1.0 && var[2] > var[0], "{var:?}");
}
