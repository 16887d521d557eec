//! Image observations end to end: a real learner on 127.0.0.1:0 and two real actor processes
//! train convolutional networks on shoal's pixel environments, and the trained policies are
//! evaluated greedily from the final checkpoint.

use std::process::Command;

use burn::tensor::{Device, Tensor, TensorData};
use shoal_common::config::RunConfig;
use shoal_common::env::VecEnv;
use shoal_common::evaluate::mean_std;
use shoal_tests::{final_policy_episodes, repo_root, shoal_exe, temp_dir, train_with_actors};

/// The greedy policy of the run's final checkpoint: mean return over `episodes` episodes drawn
/// from a fixed seed that no training actor uses.
fn greedy_mean_return(config: &RunConfig, run_dir: &std::path::Path, episodes: usize) -> f64 {
    let eps = final_policy_episodes(config, run_dir, &config.env(), episodes);
    let returns: Vec<f64> = eps.iter().map(|e| e.episode_return).collect();
    mean_std(&returns).0
}

/// `shoal export` writes the final checkpoint's CNN policy, and numpy alone, reading the file
/// (`scripts/policy_from_safetensors.py`), computes the same action probabilities as shoal's
/// network on frames of the run's environment, to 1e-5.
fn numpy_reproduces_the_export(config: &RunConfig, run_dir: &std::path::Path) {
    let exported = temp_dir("pixels-export").join("policy.safetensors");
    let status = Command::new(shoal_exe())
        .args([
            "export",
            run_dir.join("checkpoints/final").to_str().unwrap(),
        ])
        .args(["--out", exported.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    // 16 frames: 8 copies reset, then stepped once with varied actions.
    let mut venv = VecEnv::new(&config.env(), 8, 77).unwrap();
    let mut frames: Vec<f32> = venv.observations().to_vec();
    let mut step = Default::default();
    let actions: Vec<usize> = (0..8).map(|i| i % 3).collect();
    venv.step_discrete(&actions, &mut step).unwrap();
    frames.extend_from_slice(venv.observations());
    let spec = shoal_learner::model_spec(config).unwrap();
    let params = spec
        .layout()
        .decode(&std::fs::read(run_dir.join("checkpoints/final/params.bin")).unwrap())
        .unwrap();
    let device = Device::flex();
    let logits = spec
        .build(&params, &device)
        .logits(Tensor::from_data(
            TensorData::new(frames.clone(), [16, spec.obs_dim]),
            &device,
        ))
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap();
    let shoal: Vec<f64> = logits
        .chunks_exact(spec.action.outputs())
        .flat_map(|l| {
            let m = l.iter().copied().fold(f32::MIN, f32::max) as f64;
            let e: Vec<f64> = l.iter().map(|&x| (x as f64 - m).exp()).collect();
            let sum: f64 = e.iter().sum();
            e.into_iter().map(move |x| x / sum)
        })
        .collect();
    let rows: Vec<&[f32]> = frames.chunks_exact(spec.obs_dim).collect();
    let Some(numpy) = shoal_tests::numpy_policy(&exported, &rows) else {
        println!("SKIPPED the numpy check: no Python venv (scripts/install-deps)");
        return;
    };
    assert_eq!(numpy.len(), 16);
    let worst = numpy
        .iter()
        .flatten()
        .zip(&shoal)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-5, "numpy differs by {worst}");
    println!("numpy reproduces the exported CNN policy to {worst:e}");
}

fn load(file: &str) -> RunConfig {
    RunConfig::load(&repo_root().join("configs").join(file)).unwrap()
}

/// DQN with the small CNN on Catch: the greedy mean return over 100 episodes reaches 0.9 (a
/// random policy's is about −0.6) within 60k environment steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
    numpy_reproduces_the_export(&config, &run_dir);
}

/// PPO with the small CNN shared by policy and value on Catch: the greedy mean return over 100
/// episodes reaches 0.9 after 60k environment steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

/// A3C with the small CNN on Catch: actors differentiate the loss on their own image rollouts
/// and push gradients; the run reaches a mean return of 0.9 over the last 100 training episodes
/// within 200k environment steps, and the greedy policy 0.9 over 100 episodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a3c_catches_the_ball_from_pixels() {
    let config = load("catch-a3c.toml");
    let (summary, run_dir) = train_with_actors(config.clone(), "pixels-a3c-catch", 2).await;
    assert!(summary.solved, "{summary:?}");
    let greedy = greedy_mean_return(&config, &run_dir, 100);
    assert!(
        greedy >= 0.9,
        "greedy mean return {greedy} over 100 episodes"
    );
}

/// IMPALA (APPO) with the small CNN on Catch, with the last 2 frames stacked (`frame_stack =
/// 2`, so the network reads `[2, 10, 5]`): the learner re-evaluates the actors' byte rollouts
/// and their bootstrap frames under V-trace; the run reaches a mean return of 0.9 over the last
/// 100 training episodes within 200k environment steps, and the greedy policy 0.9 over 100
/// episodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impala_catches_the_ball_from_stacked_frames() {
    let mut config = load("catch-impala.toml");
    config.frame_stack = 2;
    assert_eq!(
        shoal_learner::model_spec(&config).unwrap().image(),
        Some([2, 10, 5])
    );
    let (summary, run_dir) = train_with_actors(config.clone(), "pixels-impala-catch", 2).await;
    assert!(summary.solved, "{summary:?}");
    let greedy = greedy_mean_return(&config, &run_dir, 100);
    assert!(
        greedy >= 0.9,
        "greedy mean return {greedy} over 100 episodes"
    );
}

/// A random policy's mean return on MinBreakout (measured over 1,000 episodes in the
/// environment's tests: 0.315).
const MIN_BREAKOUT_RANDOM: f64 = 0.3;

/// DQN with the small CNN on MinBreakout: within 80k environment steps the greedy policy's mean
/// return over 100 episodes is at least 10× a random policy's (3.0 against 0.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dqn_breaks_bricks_from_pixels() {
    let config = load("minbreakout-dqn.toml");
    assert_eq!(config.total_steps, 80_000);
    let (summary, run_dir) = train_with_actors(config.clone(), "pixels-dqn-minbreakout", 2).await;
    assert!(summary.env_steps >= config.total_steps, "{summary:?}");
    let greedy = greedy_mean_return(&config, &run_dir, 100);
    println!("MinBreakout greedy mean return over 100 episodes: {greedy}");
    assert!(
        greedy >= 10.0 * MIN_BREAKOUT_RANDOM,
        "greedy mean return {greedy} over 100 episodes (random: {MIN_BREAKOUT_RANDOM})"
    );
}

/// The image model crosses processes as it is: the checkpoint's network reads `u8` pixels
/// through its convolutional encoder, and its fingerprint says so.
#[test]
fn the_catch_model_is_a_cnn_on_bytes() {
    let spec = shoal_learner::model_spec(&load("catch-dqn.toml")).unwrap();
    assert_eq!(spec.image(), Some([1, 10, 5]));
    assert_eq!(spec.obs_format(), shoal_common::obs::ObsFormat::U8);
    let model = spec.build(&spec.init_params(1), &Device::flex());
    assert_eq!(model.layout().entries(), spec.layout().entries());
    let vector = shoal_common::model::ModelSpec {
        input: shoal_common::model::Input::Vector,
        encoder: shoal_common::model::EncoderKind::Mlp,
        hidden: vec![64, 64],
        ..spec.clone()
    };
    assert_ne!(vector.layout().fingerprint(), spec.layout().fingerprint());
}
