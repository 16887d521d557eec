//! N copies of one environment stepped together ([`EnvCopies`]: local or served), with
//! struct-of-arrays `f32` buffers and auto-reset (the final observation of an ended episode is
//! kept for bootstrapping).

use super::{Action, Env, EnvError, EnvSpec, Space, Step};
use crate::rng::{Rng, derive_seed};

/// An episode that ended during a [`VecEnv`] step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FinishedEpisode {
    /// Which copy it ran in.
    pub env_index: usize,
    /// Undiscounted return.
    pub episode_return: f64,
    /// Number of steps.
    pub length: u32,
}

/// Per-copy results of one [`VecEnv`] step, indexed by copy.
#[derive(Debug, Clone, Default)]
pub struct VecStep {
    /// Rewards, `[N]`.
    pub rewards: Vec<f32>,
    /// Terminal state reached, `[N]`.
    pub terminated: Vec<bool>,
    /// Cut by the time limit, `[N]`.
    pub truncated: Vec<bool>,
    /// The last observation of every episode that ended in this step, `[N * O]`; meaningful only
    /// where `terminated` or `truncated` is set. (The observation buffer already holds the first
    /// observation of the next episode there.)
    pub final_obs: Vec<f32>,
    /// Episodes that ended in this step.
    pub finished: Vec<FinishedEpisode>,
}

/// N copies of one environment behind one interface: shoal's own environments
/// ([`LocalCopies`], stepped in turn) or worlds served over dm_env_rpc
/// ([`crate::remote::RemoteWorlds`], stepped concurrently). A copy that fails (a served world
/// that breaks the protocol) fails the whole step: nothing it returned is used.
pub trait EnvCopies: Send {
    /// Number of copies (N).
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The copies' observation space.
    fn observation_space(&self) -> Space;
    /// The copies' action space.
    fn action_space(&self) -> Space;
    /// Starts a new episode in each copy listed and writes its first observation into its row
    /// of `obs` (`[N * O]`).
    fn reset(&mut self, which: &[usize], obs: &mut [f32]) -> Result<(), EnvError>;
    /// Steps every copy `i` with `action(i)`, writing its next observation into its row of `obs`
    /// and what the step returned into `steps[i]`.
    fn step<'a>(
        &mut self,
        action: &dyn Fn(usize) -> Action<'a>,
        obs: &mut [f32],
        steps: &mut [Step],
    ) -> Result<(), EnvError>;
}

/// Copies of a registered environment, each drawing its episodes from its own generator.
pub struct LocalCopies {
    envs: Vec<Box<dyn Env>>,
    rngs: Vec<Rng>,
}

impl LocalCopies {
    /// `num_envs` copies of `env`; copy `i` draws its episodes from `derive_seed(seed, i)`.
    pub fn new(env: &EnvSpec, num_envs: usize, seed: u64) -> Result<Self, EnvError> {
        Ok(Self {
            envs: (0..num_envs)
                .map(|_| env.make())
                .collect::<Result<Vec<_>, _>>()?,
            rngs: (0..num_envs)
                .map(|i| Rng::new(derive_seed(seed, i as u64)))
                .collect(),
        })
    }
}

impl EnvCopies for LocalCopies {
    fn len(&self) -> usize {
        self.envs.len()
    }
    fn observation_space(&self) -> Space {
        self.envs[0].observation_space()
    }
    fn action_space(&self) -> Space {
        self.envs[0].action_space()
    }
    fn reset(&mut self, which: &[usize], obs: &mut [f32]) -> Result<(), EnvError> {
        let d = obs.len() / self.envs.len();
        for &i in which {
            self.envs[i].reset(&mut self.rngs[i], &mut obs[i * d..(i + 1) * d]);
        }
        Ok(())
    }
    fn step<'a>(
        &mut self,
        action: &dyn Fn(usize) -> Action<'a>,
        obs: &mut [f32],
        steps: &mut [Step],
    ) -> Result<(), EnvError> {
        let d = obs.len() / self.envs.len();
        for (i, env) in self.envs.iter_mut().enumerate() {
            steps[i] = env.step(action(i), &mut obs[i * d..(i + 1) * d]);
        }
        Ok(())
    }
}

/// The vectorised environment actors step.
pub struct VecEnv {
    copies: Box<dyn EnvCopies>,
    obs_dim: usize,
    obs: Vec<f32>,
    steps: Vec<Step>,
    ended: Vec<usize>,
    returns: Vec<f64>,
    lengths: Vec<u32>,
    observation_space: Space,
    action_space: Space,
}

impl VecEnv {
    /// `num_envs` copies of the registered `env`; copy `i` draws its episodes from
    /// `derive_seed(seed, i)`. All copies are reset. (`crate::sources::open` also opens served
    /// environments.)
    pub fn new(env: &EnvSpec, num_envs: usize, seed: u64) -> Result<Self, EnvError> {
        Self::of(Box::new(LocalCopies::new(env, num_envs, seed)?))
    }

    /// Steps `copies`, starting an episode in each.
    pub fn of(mut copies: Box<dyn EnvCopies>) -> Result<Self, EnvError> {
        let num_envs = copies.len();
        let observation_space = copies.observation_space();
        let action_space = copies.action_space();
        let obs_dim = observation_space.flat_dim();
        let mut obs = vec![0.0; num_envs * obs_dim];
        copies.reset(&(0..num_envs).collect::<Vec<_>>(), &mut obs)?;
        Ok(Self {
            copies,
            obs_dim,
            obs,
            steps: vec![
                Step {
                    reward: 0.0,
                    terminated: false,
                    truncated: false
                };
                num_envs
            ],
            ended: Vec::with_capacity(num_envs),
            returns: vec![0.0; num_envs],
            lengths: vec![0; num_envs],
            observation_space,
            action_space,
        })
    }

    /// Number of copies (N).
    pub fn num_envs(&self) -> usize {
        self.copies.len()
    }

    /// Size of one observation (O).
    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// The copies' observation space.
    pub fn observation_space(&self) -> &Space {
        &self.observation_space
    }

    /// The copies' action space.
    pub fn action_space(&self) -> &Space {
        &self.action_space
    }

    /// Current observations, `[N * O]`.
    pub fn observations(&self) -> &[f32] {
        &self.obs
    }

    /// Steps every copy with its discrete action; ended copies are reset at once.
    ///
    /// # Errors
    /// A copy that failed (a served world); nothing of the step is in `out` then.
    pub fn step_discrete(&mut self, actions: &[usize], out: &mut VecStep) -> Result<(), EnvError> {
        assert_eq!(actions.len(), self.num_envs(), "one action per copy");
        self.step_each(out, &|i| Action::Discrete(actions[i]))
    }

    /// Steps every copy with its continuous action (`[N * A]`), each clipped to the action
    /// space's bounds first (as Stable-Baselines3 does before `env.step`); ended copies are reset
    /// at once.
    ///
    /// # Errors
    /// A copy that failed (a served world); nothing of the step is in `out` then.
    ///
    /// # Panics
    /// When the action space is not a `Box` or `actions` does not hold N actions.
    pub fn step_continuous(&mut self, actions: &[f32], out: &mut VecStep) -> Result<(), EnvError> {
        let Space::Box { low, high } = &self.action_space else {
            panic!("step_continuous on a {} action space", self.action_space);
        };
        let a = low.len();
        assert_eq!(actions.len(), self.num_envs() * a, "one action per copy");
        let clipped: Vec<f32> = actions
            .iter()
            .enumerate()
            .map(|(k, &x)| (x as f64).clamp(low[k % a], high[k % a]) as f32)
            .collect();
        self.step_each(out, &|i| Action::Continuous(&clipped[i * a..(i + 1) * a]))
    }

    fn step_each<'a>(
        &mut self,
        out: &mut VecStep,
        action: &dyn Fn(usize) -> Action<'a>,
    ) -> Result<(), EnvError> {
        let n = self.num_envs();
        out.rewards.resize(n, 0.0);
        out.terminated.resize(n, false);
        out.truncated.resize(n, false);
        out.final_obs.resize(n * self.obs_dim, 0.0);
        out.finished.clear();
        self.copies.step(action, &mut self.obs, &mut self.steps)?;
        let d = self.obs_dim;
        self.ended.clear();
        for (i, step) in self.steps.iter().enumerate() {
            out.rewards[i] = step.reward as f32;
            out.terminated[i] = step.terminated;
            out.truncated[i] = step.truncated && !step.terminated;
            self.returns[i] += step.reward;
            self.lengths[i] += 1;
            if step.terminated || step.truncated {
                out.final_obs[i * d..(i + 1) * d].copy_from_slice(&self.obs[i * d..(i + 1) * d]);
                out.finished.push(FinishedEpisode {
                    env_index: i,
                    episode_return: self.returns[i],
                    length: self.lengths[i],
                });
                self.returns[i] = 0.0;
                self.lengths[i] = 0;
                self.ended.push(i);
            }
        }
        if !self.ended.is_empty() {
            self.copies.reset(&self.ended, &mut self.obs)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_reset_keeps_the_final_observation_and_counts_episodes() {
        let mut venv = VecEnv::new(&EnvSpec::new("CartPole-v1"), 3, 42).unwrap();
        let mut step = VecStep::default();
        let mut finished = 0;
        let mut steps = 0u32;
        // Always pushing right ends every episode within a few dozen steps.
        while finished < 6 {
            venv.step_discrete(&[1, 1, 1], &mut step).unwrap();
            steps += 3;
            for ep in &step.finished {
                let i = ep.env_index;
                assert!(step.terminated[i]);
                let final_obs = &step.final_obs[i * 4..(i + 1) * 4];
                // Pushed right until it fell: the final state is out of bounds, the new one is
                // a fresh start near zero.
                assert!(final_obs[0].abs() > 2.4 || final_obs[2].abs() > 0.2094);
                assert!(
                    venv.observations()[i * 4..(i + 1) * 4]
                        .iter()
                        .all(|x| x.abs() <= 0.05)
                );
                assert_eq!(ep.episode_return, ep.length as f64);
                finished += 1;
            }
            assert!(steps < 10_000);
        }
    }

    #[test]
    fn continuous_actions_are_clipped_to_the_bounds() {
        // Pendulum's reward charges 0.001·u² for the torque actually applied: a torque of 50
        // clipped to 2 costs what 2 costs.
        let mut a = VecEnv::new(&EnvSpec::new("Pendulum-v1"), 1, 3).unwrap();
        let mut b = VecEnv::new(&EnvSpec::new("Pendulum-v1"), 1, 3).unwrap();
        let (mut sa, mut sb) = (VecStep::default(), VecStep::default());
        a.step_continuous(&[50.0], &mut sa).unwrap();
        b.step_continuous(&[2.0], &mut sb).unwrap();
        assert_eq!(sa.rewards, sb.rewards);
        assert_eq!(a.observations(), b.observations());
    }

    #[test]
    fn copies_are_seeded_differently_and_reproducibly() {
        let a = VecEnv::new(&EnvSpec::new("CartPole-v1"), 2, 1).unwrap();
        let b = VecEnv::new(&EnvSpec::new("CartPole-v1"), 2, 1).unwrap();
        assert_eq!(a.observations(), b.observations());
        assert_ne!(a.observations()[..4], a.observations()[4..]);
    }
}
