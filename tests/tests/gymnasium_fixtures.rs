//! shoal's classic-control environments against reference trajectories recorded from Gymnasium
//! (`scripts/gen_gymnasium_fixtures.py`): same internal state, same actions → same observations
//! (within 1e-9), rewards and termination/truncation flags, including the time limit.

use serde_json::Value;
use shoal_common::env::{self, Action, Space};
use shoal_tests::repo_root;

fn check(env_id: &str) {
    let path = repo_root().join(format!("tests/fixtures/gymnasium/{env_id}.json"));
    let data: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let f64s = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let mut env = env::make(env_id).unwrap();
    let obs_dim = env.observation_space().flat_dim();
    let discrete = matches!(env.action_space(), Space::Discrete(_));
    let mut obs = vec![0f32; obs_dim];
    let mut steps = 0;
    for (e, episode) in data["episodes"].as_array().unwrap().iter().enumerate() {
        env.reset_to(&f64s(&episode["initial_state"]), &mut obs)
            .unwrap();
        for (o, want) in obs.iter().zip(f64s(&episode["initial_obs"])) {
            assert!(
                (*o as f64 - want).abs() <= 1e-9,
                "{env_id} ep {e} reset obs {o} vs {want}"
            );
        }
        let actions = episode["actions"].as_array().unwrap();
        for (t, action) in actions.iter().enumerate() {
            let a: Vec<f32> = f64s(action).iter().map(|&x| x as f32).collect();
            let step = if discrete {
                env.step(Action::Discrete(a[0] as usize), &mut obs)
            } else {
                env.step(Action::Continuous(&a), &mut obs)
            };
            let want_obs = f64s(&episode["obs"][t]);
            for (i, (o, w)) in obs.iter().zip(&want_obs).enumerate() {
                assert!(
                    (*o as f64 - w).abs() <= 1e-9,
                    "{env_id} episode {e} step {t} obs[{i}]: shoal {o} vs gymnasium {w}"
                );
            }
            let want_reward = episode["rewards"][t].as_f64().unwrap();
            assert!(
                (step.reward - want_reward).abs() <= 1e-9 * (1.0 + want_reward.abs()),
                "{env_id} episode {e} step {t} reward: shoal {} vs gymnasium {want_reward}",
                step.reward
            );
            assert_eq!(
                step.terminated,
                episode["terminated"][t].as_bool().unwrap(),
                "{env_id} {e} {t} terminated"
            );
            assert_eq!(
                step.truncated,
                episode["truncated"][t].as_bool().unwrap(),
                "{env_id} {e} {t} truncated"
            );
            steps += 1;
        }
    }
    assert!(steps > 0);
}

#[test]
fn cartpole_matches_gymnasium() {
    check("CartPole-v1");
}

#[test]
fn mountain_car_matches_gymnasium() {
    check("MountainCar-v0");
}

#[test]
fn mountain_car_continuous_matches_gymnasium() {
    check("MountainCarContinuous-v0");
}

#[test]
fn pendulum_matches_gymnasium() {
    check("Pendulum-v1");
}

#[test]
fn acrobot_matches_gymnasium() {
    check("Acrobot-v1");
}
