//! Image observations end to end: a real learner on 127.0.0.1:0 and two real actor processes
//! train convolutional networks on shoal's pixel environments, and the trained policies are
//! evaluated greedily from the final checkpoint.

use burn::tensor::Device;
use shoal_common::config::RunConfig;
use shoal_common::evaluate::{evaluate_deterministic, mean_std};
use shoal_common::normalize::Normalizer;
use shoal_tests::{repo_root, train_with_actors};

/// The greedy policy of the run's final checkpoint: mean return over `episodes` episodes drawn
/// from a fixed seed that no training actor uses.
fn greedy_mean_return(config: &RunConfig, run_dir: &std::path::Path, episodes: usize) -> f64 {
    let spec = shoal_learner::model_spec(config).unwrap();
    let bytes = std::fs::read(run_dir.join("checkpoints/final/params.bin")).unwrap();
    let params = spec.layout().decode(&bytes).unwrap();
    let eps = evaluate_deterministic(
        &spec,
        &params,
        &Normalizer::off(spec.moments_dim()),
        &config.env_id,
        episodes,
        12_345,
    )
    .unwrap();
    let returns: Vec<f64> = eps.iter().map(|e| e.episode_return).collect();
    mean_std(&returns).0
}

fn load(file: &str) -> RunConfig {
    RunConfig::load(&repo_root().join("configs").join(file)).unwrap()
}

/// DQN with the small CNN on Catch: the greedy mean return over 100 episodes reaches 0.9 (a
/// random policy's is about −0.6) within 60k environment steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "issue 16 in progress: budget not yet verified over 5 runs (cargo test -- --ignored)"]
async fn dqn_catches_the_ball_from_pixels() {
    let config = load("catch-dqn.toml");
    assert_eq!(config.model.encoder.name(), "small_cnn");
    let (summary, run_dir) = train_with_actors(config.clone(), "pixels-dqn-catch", 2).await;
    assert!(summary.solved, "{summary:?}");
    assert!(summary.env_steps <= config.total_steps, "{summary:?}");
    let greedy = greedy_mean_return(&config, &run_dir, 100);
    assert!(
        greedy >= 0.9,
        "greedy mean return {greedy} over 100 episodes"
    );
}

/// PPO with the small CNN shared by policy and value on Catch: the greedy mean return over 100
/// episodes reaches 0.9 after 60k environment steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "issue 16 in progress: budget not yet verified over 5 runs (cargo test -- --ignored)"]
async fn ppo_catches_the_ball_from_pixels() {
    let config = load("catch-ppo.toml");
    let (summary, run_dir) = train_with_actors(config.clone(), "pixels-ppo-catch", 2).await;
    assert!(summary.env_steps >= config.total_steps, "{summary:?}");
    let greedy = greedy_mean_return(&config, &run_dir, 100);
    assert!(
        greedy >= 0.9,
        "greedy mean return {greedy} over 100 episodes"
    );
}

/// The image model crosses processes as it is: the checkpoint's network reads `u8` pixels
/// through its convolutional encoder, and its fingerprint says so.
#[test]
fn the_catch_model_is_a_cnn_on_bytes() {
    let spec = shoal_learner::model_spec(&load("catch-dqn.toml")).unwrap();
    assert_eq!(spec.image, Some([1, 10, 5]));
    assert_eq!(spec.obs_format(), shoal_common::obs::ObsFormat::U8);
    let model = spec.build(&spec.init_params(1), &Device::flex());
    assert_eq!(model.layout().entries(), spec.layout().entries());
    let vector = shoal_common::model::ModelSpec {
        image: None,
        encoder: shoal_common::model::EncoderKind::Mlp,
        hidden: vec![64, 64],
        ..spec.clone()
    };
    assert_ne!(vector.layout().fingerprint(), spec.layout().fingerprint());
}
