//! Distributed DQN end to end: a real learner on 127.0.0.1:0 and two real ε-greedy actor
//! processes.

use burn::tensor::{Device, Tensor, TensorData};
use shoal_common::config::RunConfig;
use shoal_common::env::gridworld::{GRID_3X3, value_iteration};
use shoal_tests::{repo_root, train_with_actors};

fn cartpole_dqn() -> RunConfig {
    let config = RunConfig::load(&repo_root().join("configs/cartpole-dqn.toml")).unwrap();
    assert_eq!(
        (config.total_steps, config.target_return),
        (100_000, Some(475.0))
    );
    config
}

/// Issue 5's bar: the greedy evaluation mean return reaches 475 within 100k env steps (counted
/// on the training actors), and the run stops on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_actor_processes_reach_a_greedy_475_on_cartpole_within_100k_steps() {
    let (summary, run_dir) = train_with_actors(cartpole_dqn(), "dqn-cartpole", 2).await;
    assert!(summary.solved, "{summary:?}");
    assert!(summary.eval_return_mean.unwrap() >= 475.0);
    assert!(summary.env_steps <= 100_000);
    // The status rows carry DQN's quantities.
    let rows = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(rows.lines().last().unwrap()).unwrap();
    for key in [
        "eval_return_mean",
        "replay_size",
        "replay_ratio",
        "epsilon_min",
        "epsilon_max",
        "q_mean",
        "td_error",
    ] {
        assert!(!last[key].is_null(), "{key} missing in {last}");
    }
    assert!(
        (last["replay_ratio"].as_f64().unwrap() - 0.5).abs() < 0.05,
        "{last}"
    );
}

/// The same run with prioritised replay (sum-tree sampling, importance weights annealed to 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prioritized_replay_reaches_a_greedy_475_on_cartpole_within_100k_steps() {
    let mut config = cartpole_dqn();
    config.dqn.prioritized = true;
    let (summary, _) = train_with_actors(config, "dqn-cartpole-per", 2).await;
    assert!(summary.solved, "{summary:?}");
    assert!(summary.env_steps <= 100_000);
}

/// DQN on GridWorld-3x3 ends with Q-values within 0.05 of value iteration's Q* on every state
/// reachable from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gridworld_q_values_match_value_iteration() {
    let config = RunConfig::load(&repo_root().join("configs/gridworld-3x3-dqn.toml")).unwrap();
    assert_gridworld_q_star(config, "dqn-grid").await;
}

/// The same with the other options: prioritised replay (whose importance weights must undo the
/// sampling bias for Q to converge to Q*), one linearly decaying ε for all actors and a Polyak
/// target network updated after every update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gridworld_q_values_match_with_prioritized_replay_linear_epsilon_and_polyak_target() {
    use shoal_common::config::EpsilonSchedule;
    let mut config = RunConfig::load(&repo_root().join("configs/gridworld-3x3-dqn.toml")).unwrap();
    config.dqn.prioritized = true;
    config.dqn.epsilon_schedule = EpsilonSchedule::Linear;
    config.dqn.epsilon_final = 0.2;
    config.dqn.exploration_fraction = 0.5;
    config.dqn.target_update_interval = 1;
    config.dqn.tau = 0.02;
    let run_dir = assert_gridworld_q_star(config, "dqn-grid-per").await;
    // Both actors explored with the schedule's final ε by the end.
    let rows = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(rows.lines().last().unwrap()).unwrap();
    assert_eq!(last["epsilon_min"], 0.2, "{last}");
    assert_eq!(last["epsilon_max"], 0.2, "{last}");
}

/// Trains `config` on GridWorld-3x3 and checks the final Q-network against Q*.
async fn assert_gridworld_q_star(config: RunConfig, name: &str) -> std::path::PathBuf {
    let gamma = config.dqn.gamma;
    let (_, run_dir) = train_with_actors(config.clone(), name, 2).await;
    let spec = shoal_learner::model_spec(&config).unwrap();
    let bytes = std::fs::read(run_dir.join("checkpoints/final/params.bin")).unwrap();
    let model = spec.build(&spec.layout().decode(&bytes).unwrap(), &Device::flex());
    let grid = GRID_3X3;
    let optimal = value_iteration(&grid, gamma, 1e-12);
    let n = grid.num_states();
    // States reachable from the start (terminal ones have no Q to learn).
    let mut reachable = vec![grid.start];
    let mut k = 0;
    while k < reachable.len() {
        let s = reachable[k];
        k += 1;
        if grid.is_terminal(s) {
            continue;
        }
        for a in 0..4 {
            let (next, _, _) = grid.transition(s, a);
            if !reachable.contains(&next) {
                reachable.push(next);
            }
        }
    }
    for &s in reachable.iter().filter(|&&s| !grid.is_terminal(s)) {
        let mut one_hot = vec![0f32; n];
        one_hot[s - 1] = 1.0;
        let q = model
            .logits(Tensor::from_data(
                TensorData::new(one_hot, [1, n]),
                &Device::flex(),
            ))
            .into_data()
            .convert::<f32>();
        let q = q.as_slice::<f32>().unwrap();
        for (a, (&got, want)) in q.iter().zip(optimal.q[s - 1]).enumerate() {
            assert!(
                (got as f64 - want).abs() < 0.05,
                "state {s} action {a}: Q {got} vs Q* {want}"
            );
        }
    }
    run_dir
}
