//! PPO trained in distributed mode (a real learner, two actor processes) on the gridworlds ends
//! with the optimal greedy policy from the start state, as value iteration defines it.

use burn::tensor::{Device, Tensor, TensorData};
use shoal_common::codec::ParamLayout;
use shoal_common::config::RunConfig;
use shoal_common::env::gridworld::{GRID_3X3, GRID_4X4, GridSpec, value_iteration};
use shoal_tests::{TestLearner, repo_root, spawn_actor, temp_dir};

async fn train_and_check(config_file: &str, grid: GridSpec) {
    let config = RunConfig::load(&repo_root().join(config_file)).unwrap();
    let gamma = config.ppo.gamma;
    let run_dir = temp_dir(&config.env_id);
    let learner = TestLearner::start(config.clone(), run_dir.clone()).await;
    let _actors: Vec<_> = (0..2)
        .map(|i| spawn_actor(&learner.url(), &format!("grid-{i}"), false))
        .collect();
    let summary = learner.handle.await.unwrap().unwrap();
    assert!(summary.env_steps >= config.total_steps, "{summary:?}");

    // The trained policy, from the final checkpoint.
    let spec = shoal_learner::model_spec(&config).unwrap();
    let layout: ParamLayout = spec.layout();
    let bytes = std::fs::read(run_dir.join("checkpoints/final/params.bin")).unwrap();
    let model = spec.build(&layout.decode(&bytes).unwrap(), &Device::flex());

    let optimal = value_iteration(&grid, gamma, 1e-12);
    let n = grid.num_states();
    let (mut state, mut discounted, mut discount) = (grid.start, 0.0, 1.0);
    for _ in 0..2 * n {
        let mut one_hot = vec![0f32; n];
        one_hot[state - 1] = 1.0;
        let logits = model
            .logits(Tensor::from_data(
                TensorData::new(one_hot, [1, n]),
                &Device::flex(),
            ))
            .into_data()
            .convert::<f32>();
        let logits = logits.as_slice::<f32>().unwrap();
        let action = (0..logits.len()).fold(0, |b, a| if logits[a] > logits[b] { a } else { b });
        assert!(
            (optimal.q[state - 1][action] - optimal.v[state - 1]).abs() < 1e-9,
            "{}: greedy action {action} in state {state} is not optimal (Q* {:?})",
            config.env_id,
            optimal.q[state - 1]
        );
        let (next, reward, done) = grid.transition(state, action);
        discounted += discount * reward;
        discount *= gamma;
        state = next;
        if done {
            break;
        }
    }
    assert_eq!(
        state, grid.goal,
        "{}: the greedy policy does not reach the goal",
        config.env_id
    );
    assert!((discounted - optimal.v[grid.start - 1]).abs() < 1e-9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ppo_learns_the_optimal_policy_on_gridworld_3x3() {
    train_and_check("configs/gridworld-3x3-ppo.toml", GRID_3X3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ppo_learns_the_optimal_policy_on_gridworld_4x4() {
    train_and_check("configs/gridworld-4x4-ppo.toml", GRID_4X4).await;
}
