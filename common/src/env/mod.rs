//! Environments: the [`Env`] trait, spaces, the registry by Gymnasium id and the vectorised
//! environment actors step.
//!
//! Dynamics follow Gymnasium to the digit: internal state in `f64`, observations handed to the
//! policy as `f32`, time limits applied by a [`TimeLimit`] wrapper exactly as Gymnasium's
//! `TimeLimit` does (truncation, not termination).

mod acrobot;
mod cartpole;
pub mod gridworld;
mod mountain_car;
mod pendulum;
mod vec_env;

pub use acrobot::Acrobot;
pub use cartpole::CartPole;
pub use mountain_car::{MountainCar, MountainCarContinuous};
pub use pendulum::Pendulum;
pub use vec_env::{FinishedEpisode, VecEnv, VecStep};

use thiserror::Error;

/// An observation or action space, as in Gymnasium.
#[derive(Debug, Clone, PartialEq)]
pub enum Space {
    /// `Discrete(n)`: integers `0..n`.
    Discrete(usize),
    /// `Box(low, high)`: a vector of reals with per-dimension bounds (may be infinite).
    Box {
        /// Lower bounds.
        low: Vec<f64>,
        /// Upper bounds.
        high: Vec<f64>,
    },
}

impl Space {
    /// `Box(-high, high)`.
    pub fn symmetric(high: Vec<f64>) -> Self {
        Space::Box {
            low: high.iter().map(|h| -h).collect(),
            high,
        }
    }

    /// Number of `f32` values one element of the space takes.
    pub fn flat_dim(&self) -> usize {
        match self {
            Space::Discrete(_) => 1,
            Space::Box { low, .. } => low.len(),
        }
    }
}

impl std::fmt::Display for Space {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Space::Discrete(n) => write!(f, "Discrete({n})"),
            Space::Box { low, high } => {
                // Huge bounds (f32::MAX stands for "unbounded" in Gymnasium) as 3.4028e38,
                // not 39 digits.
                let fmt_all = |v: &[f64]| {
                    v.iter()
                        .map(|x| match x.abs() {
                            a if a >= 1e6 && a.is_finite() => format!("{x:.4e}"),
                            _ => format!("{x:.4}"),
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                write!(
                    f,
                    "Box(low=[{}], high=[{}], shape=({},))",
                    fmt_all(low),
                    fmt_all(high),
                    low.len()
                )
            }
        }
    }
}

/// An action handed to [`Env::step`].
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// For `Space::Discrete`.
    Discrete(usize),
    /// For `Space::Box`.
    Continuous(&'a [f32]),
}

/// What one step returned (the observation is written into the caller's buffer).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Reward for this transition.
    pub reward: f64,
    /// The episode reached a terminal state: do not bootstrap.
    pub terminated: bool,
    /// The episode was cut short (time limit): bootstrap from the value of the final observation.
    pub truncated: bool,
}

/// A single environment.
pub trait Env: Send {
    /// The observation space.
    fn observation_space(&self) -> Space;
    /// The action space.
    fn action_space(&self) -> Space;
    /// Starts a new episode, drawing the initial state from `rng`, and writes the first
    /// observation into `obs`.
    fn reset(&mut self, rng: &mut crate::rng::Rng, obs: &mut [f32]);
    /// Starts a new episode from a given internal state (what Gymnasium holds as
    /// `env.unwrapped.state`) and writes its observation into `obs`: for reference trajectories
    /// and evaluation from fixed starts.
    fn reset_to(&mut self, state: &[f64], obs: &mut [f32]) -> Result<(), EnvError>;
    /// Advances one step and writes the next observation into `obs`.
    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Step;
}

/// A state handed to [`Env::reset_to`] as an array of the environment's state size.
pub(crate) fn state_array<const N: usize>(state: &[f64]) -> Result<[f64; N], EnvError> {
    state.try_into().map_err(|_| EnvError::State {
        got: state.len(),
        want: N,
    })
}

/// Errors from the environment registry.
#[derive(Debug, Error, PartialEq)]
pub enum EnvError {
    /// No environment is registered under this id.
    #[error("unknown environment id `{id}`; registered: {known}")]
    UnknownId {
        /// The id asked for.
        id: String,
        /// Comma-separated list of registered ids.
        known: String,
    },
    /// A state for [`Env::reset_to`] of the wrong length.
    #[error("state has {got} values, the environment's has {want}")]
    State {
        /// Values given.
        got: usize,
        /// Values expected.
        want: usize,
    },
}

/// One registry entry.
#[derive(Debug, Clone, Copy)]
pub struct EnvInfo {
    /// The Gymnasium id, e.g. `CartPole-v1`.
    pub id: &'static str,
    /// Gymnasium's `max_episode_steps` (the [`TimeLimit`]).
    pub max_episode_steps: Option<usize>,
    /// Smallest and largest reward of one step (what episode returns are checked against).
    pub reward_range: (f64, f64),
    make: fn() -> Box<dyn Env>,
}

/// Pendulum's largest cost of one step: θ = π, θ̇ at its limit 8, torque 2.
const PENDULUM_MAX_COST: f64 =
    std::f64::consts::PI * std::f64::consts::PI + 0.1 * 64.0 + 0.001 * 4.0;

// MountainCarContinuous: Gymnasium charges 0.1·a² on the unclipped action, so a step's reward
// has no lower bound; the flag gives 100 once.
const REGISTRY: &[EnvInfo] = &[
    EnvInfo {
        id: "CartPole-v1",
        max_episode_steps: Some(500),
        reward_range: (0.0, 1.0),
        make: || Box::new(CartPole::default()),
    },
    EnvInfo {
        id: "Acrobot-v1",
        max_episode_steps: Some(500),
        reward_range: (-1.0, 0.0),
        make: || Box::new(Acrobot::default()),
    },
    EnvInfo {
        id: "MountainCar-v0",
        max_episode_steps: Some(200),
        reward_range: (-1.0, -1.0),
        make: || Box::new(MountainCar::default()),
    },
    EnvInfo {
        id: "MountainCarContinuous-v0",
        max_episode_steps: Some(999),
        reward_range: (f64::NEG_INFINITY, 100.0),
        make: || Box::new(MountainCarContinuous::default()),
    },
    EnvInfo {
        id: "Pendulum-v1",
        max_episode_steps: Some(200),
        reward_range: (-PENDULUM_MAX_COST, 0.0),
        make: || Box::new(Pendulum::default()),
    },
    EnvInfo {
        id: "GridWorld-3x3",
        max_episode_steps: Some(100),
        reward_range: (-1.0, 1.0),
        make: || Box::new(gridworld::GridWorld::new(gridworld::GRID_3X3)),
    },
    EnvInfo {
        id: "GridWorld-4x4",
        max_episode_steps: Some(100),
        reward_range: (-1.0, 1.0),
        make: || Box::new(gridworld::GridWorld::new(gridworld::GRID_4X4)),
    },
];

/// Every registered environment.
pub fn registry() -> &'static [EnvInfo] {
    REGISTRY
}

/// The registry entry of `id`.
pub fn info(id: &str) -> Result<&'static EnvInfo, EnvError> {
    REGISTRY
        .iter()
        .find(|info| info.id == id)
        .ok_or_else(|| EnvError::UnknownId {
            id: id.to_string(),
            known: REGISTRY.iter().map(|i| i.id).collect::<Vec<_>>().join(", "),
        })
}

/// Builds the environment registered as `id`, wrapped in its time limit.
pub fn make(id: &str) -> Result<Box<dyn Env>, EnvError> {
    let info = info(id)?;
    let env = (info.make)();
    Ok(match info.max_episode_steps {
        Some(max_steps) => Box::new(TimeLimit::new(env, max_steps)),
        None => env,
    })
}

/// Gymnasium's `TimeLimit`: truncates an episode after `max_steps` steps.
pub struct TimeLimit {
    inner: Box<dyn Env>,
    max_steps: usize,
    elapsed: usize,
}

impl TimeLimit {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn Env>, max_steps: usize) -> Self {
        Self {
            inner,
            max_steps,
            elapsed: 0,
        }
    }
}

impl Env for TimeLimit {
    fn observation_space(&self) -> Space {
        self.inner.observation_space()
    }
    fn action_space(&self) -> Space {
        self.inner.action_space()
    }
    fn reset(&mut self, rng: &mut crate::rng::Rng, obs: &mut [f32]) {
        self.elapsed = 0;
        self.inner.reset(rng, obs);
    }
    fn reset_to(&mut self, state: &[f64], obs: &mut [f32]) -> Result<(), EnvError> {
        self.elapsed = 0;
        self.inner.reset_to(state, obs)
    }
    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Step {
        let mut step = self.inner.step(action, obs);
        self.elapsed += 1;
        if self.elapsed >= self.max_steps {
            step.truncated = true;
        }
        step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_id_is_a_clear_error() {
        let err = make("CartPole-v0").err().unwrap();
        assert!(
            err.to_string()
                .contains("unknown environment id `CartPole-v0`")
        );
        assert!(err.to_string().contains("CartPole-v1"));
    }

    /// An environment that never terminates, to look at the time limit alone.
    struct Endless;
    impl Env for Endless {
        fn observation_space(&self) -> Space {
            Space::Discrete(1)
        }
        fn action_space(&self) -> Space {
            Space::Discrete(1)
        }
        fn reset(&mut self, _rng: &mut crate::rng::Rng, _obs: &mut [f32]) {}
        fn reset_to(&mut self, _state: &[f64], _obs: &mut [f32]) -> Result<(), EnvError> {
            Ok(())
        }
        fn step(&mut self, _action: Action<'_>, _obs: &mut [f32]) -> Step {
            Step {
                reward: 1.0,
                terminated: false,
                truncated: false,
            }
        }
    }

    #[test]
    fn time_limit_truncates_at_max_steps_and_resets() {
        let mut env = TimeLimit::new(Box::new(Endless), 500);
        let mut rng = crate::rng::Rng::new(0);
        for _episode in 0..2 {
            env.reset(&mut rng, &mut []);
            for t in 1..=500 {
                let step = env.step(Action::Discrete(0), &mut []);
                assert_eq!(step.truncated, t == 500, "step {t}");
                assert!(!step.terminated);
            }
        }
    }

    #[test]
    fn registry_lists_cartpole_with_gymnasium_spaces() {
        let env = make("CartPole-v1").unwrap();
        assert_eq!(env.action_space(), Space::Discrete(2));
        assert_eq!(env.observation_space().flat_dim(), 4);
        assert_eq!(registry()[0].max_episode_steps, Some(500));
    }
}
