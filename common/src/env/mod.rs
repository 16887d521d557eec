//! Environments: the [`Env`] trait, spaces, the registry by Gymnasium id and the vectorised
//! environment actors step.
//!
//! Dynamics follow Gymnasium to the digit: internal state in `f64`, observations handed to the
//! policy as `f32`, time limits applied by a [`TimeLimit`] wrapper exactly as Gymnasium's
//! `TimeLimit` does (truncation, not termination).
//!
//! Two small image games of our own, [`Catch`] and [`MinBreakout`], have no Gymnasium
//! counterpart; their rules are in their modules. [`FrameStack`] stacks an image environment's
//! last frames ([`make_stacked`]); an [`EnvSpec`] names an environment with its wrappers, as
//! a run config does.

mod acrobot;
#[cfg(test)]
mod board_art;
mod cartpole;
pub mod catch;
mod frame_stack;
pub mod gridworld;
pub mod min_breakout;
mod mountain_car;
mod options;
mod paddle;
mod pendulum;
mod remote_error;
mod spec;
pub mod text;
mod vec_env;

pub use acrobot::Acrobot;
pub use cartpole::CartPole;
pub use catch::Catch;
pub use frame_stack::FrameStack;
pub use min_breakout::MinBreakout;
pub use mountain_car::{MountainCar, MountainCarContinuous};
pub use options::{Options, split_id};
pub use pendulum::Pendulum;
pub use remote_error::RemoteError;
pub use spec::{EnvSpec, MAX_FRAME_STACK};
pub use vec_env::{EnvCopies, FinishedEpisode, LocalCopies, VecEnv, VecStep};

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
    /// An image: `u8` pixels (0..=255) of shape `[channels, height, width]`, stored channel by
    /// channel, each channel row by row (C-major, then rows, then columns: the order of PyTorch's
    /// and burn's convolutions). Environments write the pixel values as `f32` integers into the
    /// observation buffer; they travel and are stored as `u8` and become `f32` in `[0, 1]` (÷255)
    /// in the network's first operation.
    Image {
        /// C.
        channels: usize,
        /// H.
        height: usize,
        /// W.
        width: usize,
    },
    /// A token sequence: `length` token ids (each below `vocab`, padded with id 0 after the
    /// text), then the text's length. Values travel as one byte each, like pixels; the network
    /// embeds the ids (see [`text`]).
    Tokens {
        /// Token ids in one observation (the longest text).
        length: usize,
        /// Size of the vocabulary.
        vocab: usize,
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
            Space::Image {
                channels,
                height,
                width,
            } => channels * height * width,
            Space::Tokens { length, .. } => length + 1,
        }
    }

    /// `[C, H, W]` of an image space, `None` for other spaces.
    pub fn image_shape(&self) -> Option<[usize; 3]> {
        match *self {
            Space::Image {
                channels,
                height,
                width,
            } => Some([channels, height, width]),
            _ => None,
        }
    }

    /// `(length, vocab)` of a token-sequence space, `None` for other spaces.
    pub fn token_shape(&self) -> Option<(usize, usize)> {
        match *self {
            Space::Tokens { length, vocab } => Some((length, vocab)),
            _ => None,
        }
    }
}

impl std::fmt::Display for Space {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Space::Discrete(n) => write!(f, "Discrete({n})"),
            Space::Image {
                channels,
                height,
                width,
            } => write!(f, "Image(u8, shape=({channels}, {height}, {width}))"),
            Space::Tokens { length, vocab } => {
                write!(f, "Tokens(u8, length={length}, vocab={vocab})")
            }
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
    /// A state for [`Env::reset_to`] that the environment cannot be in (a value out of range).
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// Settings after the id that the environment does not take.
    #[error("environment `{id}`: {why}")]
    Options {
        /// The id with its settings (bounded).
        id: String,
        /// Which setting and why.
        why: String,
    },
    /// [`FrameStack`] cannot wrap this environment.
    #[error("cannot stack frames: {0}")]
    FrameStack(String),
    /// A served environment (dm_env_rpc) failed: unreachable, refused a request, or sent
    /// something that does not match its specs.
    #[error("served environment {env}: {source}")]
    Remote {
        /// The environment's URL (bounded).
        env: String,
        /// What went wrong.
        #[source]
        source: RemoteError,
    },
    /// The environment's observations are not what the network reads.
    #[error(
        "{env} observes {space}, but the learner's network reads {model} (are the learner and \
         actor the same shoal version?)"
    )]
    ModelMismatch {
        /// The environment as specified.
        env: String,
        /// Its observation space.
        space: String,
        /// What the network reads.
        model: String,
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
    /// Builds the environment from the settings after its id.
    make: fn(Options) -> Result<Box<dyn Env>, EnvError>,
    /// The text task, for a text environment.
    pub text: Option<text::TextTask>,
}

/// An environment without settings: refuses any.
fn plain(options: Options, env: Box<dyn Env>) -> Result<Box<dyn Env>, EnvError> {
    options.finish()?;
    Ok(env)
}

/// A text task with the settings given.
fn text_task(task: text::TextTask, options: Options) -> Result<Box<dyn Env>, EnvError> {
    Ok(Box::new(text::TextEnv::new(task, options)?))
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
        make: |o| plain(o, Box::new(CartPole::default())),
        text: None,
    },
    EnvInfo {
        id: "Acrobot-v1",
        max_episode_steps: Some(500),
        reward_range: (-1.0, 0.0),
        make: |o| plain(o, Box::new(Acrobot::default())),
        text: None,
    },
    EnvInfo {
        id: "MountainCar-v0",
        max_episode_steps: Some(200),
        reward_range: (-1.0, -1.0),
        make: |o| plain(o, Box::new(MountainCar::default())),
        text: None,
    },
    EnvInfo {
        id: "MountainCarContinuous-v0",
        max_episode_steps: Some(999),
        reward_range: (f64::NEG_INFINITY, 100.0),
        make: |o| plain(o, Box::new(MountainCarContinuous::default())),
        text: None,
    },
    EnvInfo {
        id: "Pendulum-v1",
        max_episode_steps: Some(200),
        reward_range: (-PENDULUM_MAX_COST, 0.0),
        make: |o| plain(o, Box::new(Pendulum::default())),
        text: None,
    },
    EnvInfo {
        id: "GridWorld-3x3",
        max_episode_steps: Some(100),
        reward_range: (-1.0, 1.0),
        make: |o| plain(o, Box::new(gridworld::GridWorld::new(gridworld::GRID_3X3))),
        text: None,
    },
    EnvInfo {
        id: "GridWorld-4x4",
        max_episode_steps: Some(100),
        reward_range: (-1.0, 1.0),
        make: |o| plain(o, Box::new(gridworld::GridWorld::new(gridworld::GRID_4X4))),
        text: None,
    },
    // Every Catch episode ends by itself after 9 steps.
    EnvInfo {
        id: "Catch-v0",
        max_episode_steps: None,
        reward_range: (-1.0, 1.0),
        make: |o| plain(o, Box::new(Catch::default())),
        text: None,
    },
    // At most one brick breaks per step.
    EnvInfo {
        id: "MinBreakout-v0",
        max_episode_steps: Some(1000),
        reward_range: (0.0, 1.0),
        make: |o| plain(o, Box::new(MinBreakout::default())),
        text: None,
    },
    // Text tasks (settings after the id, see `text`): episodes end by themselves; the reward
    // is 1 for a right answer, partial credit minus a length penalty (each at most 1) otherwise.
    EnvInfo {
        id: "Text-Copy-v0",
        max_episode_steps: None,
        reward_range: (-1.0, 1.0),
        make: |o| text_task(text::COPY, o),
        text: Some(text::COPY),
    },
    EnvInfo {
        id: "Text-Reverse-v0",
        max_episode_steps: None,
        reward_range: (-1.0, 1.0),
        make: |o| text_task(text::REVERSE, o),
        text: Some(text::REVERSE),
    },
    EnvInfo {
        id: "Text-Addition-v0",
        max_episode_steps: None,
        reward_range: (-1.0, 1.0),
        make: |o| text_task(text::ADDITION, o),
        text: Some(text::ADDITION),
    },
    EnvInfo {
        id: "Text-Palindrome-v0",
        max_episode_steps: None,
        reward_range: (-1.0, 1.0),
        make: |o| text_task(text::PALINDROME, o),
        text: Some(text::PALINDROME),
    },
];

/// Every registered environment.
pub fn registry() -> &'static [EnvInfo] {
    REGISTRY
}

/// The registry entry of `id` (settings after a `?` are ignored).
pub fn info(id: &str) -> Result<&'static EnvInfo, EnvError> {
    let id = split_id(id).0;
    REGISTRY
        .iter()
        .find(|info| info.id == id)
        .ok_or_else(|| EnvError::UnknownId {
            id: id.to_string(),
            known: REGISTRY.iter().map(|i| i.id).collect::<Vec<_>>().join(", "),
        })
}

/// Builds the environment registered as `id` (with the settings after a `?`), wrapped in its
/// time limit.
pub fn make(id: &str) -> Result<Box<dyn Env>, EnvError> {
    let info = info(id)?;
    Ok(with_time_limit(info, build(info, id)?))
}

/// The environment of `info` with the settings of `id`.
fn build(info: &EnvInfo, id: &str) -> Result<Box<dyn Env>, EnvError> {
    (info.make)(Options::of_id(id)?)
}

/// `env` inside the time limit of its registry entry, if it has one.
fn with_time_limit(info: &EnvInfo, env: Box<dyn Env>) -> Box<dyn Env> {
    match info.max_episode_steps {
        Some(max_steps) => Box::new(TimeLimit::new(env, max_steps)),
        None => env,
    }
}

/// Builds `id` with its observation the last `frame_stack` frames ([`FrameStack`], inside the
/// time limit); `frame_stack` ≤ 1 is [`make`].
///
/// # Errors
/// An unknown id, or an environment whose observations are not images.
pub fn make_stacked(id: &str, frame_stack: usize) -> Result<Box<dyn Env>, EnvError> {
    if frame_stack <= 1 {
        return make(id);
    }
    let info = info(id)?;
    let env = FrameStack::new(build(info, id)?, frame_stack).map_err(|err| match err {
        EnvError::FrameStack(why) => EnvError::FrameStack(format!("`{id}`: {why}")),
        other => other,
    })?;
    Ok(with_time_limit(info, Box::new(env)))
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

    /// Every registered environment builds, resets and takes random steps whose rewards stay
    /// in its reward range, whatever its observation space.
    #[test]
    fn every_registered_environment_steps_within_its_reward_range() {
        let mut rng = crate::rng::Rng::new(0);
        for info in registry() {
            let mut env = make(info.id).unwrap();
            let mut obs = vec![f32::NAN; env.observation_space().flat_dim()];
            env.reset(&mut rng, &mut obs);
            for _ in 0..300 {
                let continuous: Vec<f32>;
                let action = match env.action_space() {
                    Space::Discrete(n) => Action::Discrete(rng.below(n)),
                    Space::Box { low, high } => {
                        continuous = low
                            .iter()
                            .zip(&high)
                            .map(|(l, h)| rng.uniform(*l, *h) as f32)
                            .collect();
                        Action::Continuous(&continuous)
                    }
                    other => panic!("{}: the action space {other}", info.id),
                };
                let step = env.step(action, &mut obs);
                let (low, high) = info.reward_range;
                assert!((low..=high).contains(&step.reward), "{}: {step:?}", info.id);
                assert!(obs.iter().all(|v| v.is_finite()), "{}", info.id);
                if let Some([c, h, w]) = env.observation_space().image_shape() {
                    assert_eq!(obs.len(), c * h * w);
                    assert!(obs.iter().all(|&v| v == 0.0 || v == 255.0), "{}", info.id);
                }
                if step.terminated || step.truncated {
                    env.reset(&mut rng, &mut obs);
                }
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
