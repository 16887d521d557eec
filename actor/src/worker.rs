//! Rollout collection: the PPO actor's inner loop, free of networking.

use shoal_common::env::{EnvError, Space, VecEnv, VecStep};
use shoal_common::rng::{Rng, derive_seed};
use shoal_common::rollout::{Rollout, RolloutShape};
use shoal_common::settings::ActorSettings;

use crate::policy::Policy;

/// The environments and the sampling state of one actor.
pub struct Worker {
    venv: VecEnv,
    rng: Rng,
    shape: RolloutShape,
    actor_id: u32,
    step: VecStep,
}

impl Worker {
    /// Environments and sampler for `settings` (seeded from the actor's seed).
    pub fn new(settings: &ActorSettings) -> Result<Self, EnvError> {
        let venv = VecEnv::new(&settings.env_id, settings.num_envs, settings.seed)?;
        let num_actions = match venv.action_space() {
            Space::Discrete(n) => *n,
            Space::Box { .. } => 0,
        };
        Ok(Self {
            shape: RolloutShape {
                n_steps: settings.n_steps,
                num_envs: settings.num_envs,
                obs_dim: venv.obs_dim(),
                num_actions,
            },
            rng: Rng::new(derive_seed(settings.seed, u64::MAX)),
            actor_id: settings.actor_id,
            venv,
            step: VecStep::default(),
        })
    }

    /// Updates the id after a re-registration gave another one.
    pub fn set_actor_id(&mut self, actor_id: u32) {
        self.actor_id = actor_id;
    }

    /// Runs `n_steps` steps in every copy with `policy`.
    pub fn collect(&mut self, policy: &Policy) -> Rollout {
        let RolloutShape {
            n_steps: t_len,
            num_envs: n,
            obs_dim: o,
            ..
        } = self.shape;
        let tn = t_len * n;
        let mut r = Rollout {
            actor_id: self.actor_id,
            version: policy.version(),
            shape: self.shape,
            obs: Vec::with_capacity(tn * o),
            actions: Vec::with_capacity(tn),
            rewards: Vec::with_capacity(tn),
            terminated: Vec::with_capacity(tn),
            truncated: Vec::with_capacity(tn),
            log_probs: Vec::with_capacity(tn),
            values: Vec::with_capacity(tn),
            bootstrap_values: Vec::new(),
            truncation_values: vec![0.0; tn],
            episode_returns: Vec::new(),
            episode_lengths: Vec::new(),
        };
        for t in 0..t_len {
            r.obs.extend_from_slice(self.venv.observations());
            let act = policy.act(self.venv.observations(), &mut self.rng);
            self.venv.step_discrete(&act.actions, &mut self.step);
            r.actions.extend(act.actions.iter().map(|&a| a as u32));
            r.log_probs.extend(&act.log_probs);
            r.values.extend(&act.values);
            r.rewards.extend(&self.step.rewards);
            r.terminated.extend(&self.step.terminated);
            r.truncated.extend(&self.step.truncated);
            // Truncated episodes bootstrap from their final observation: one batched forward.
            let cut: Vec<usize> = (0..n).filter(|&i| self.step.truncated[i]).collect();
            if !cut.is_empty() {
                let finals: Vec<f32> = cut
                    .iter()
                    .flat_map(|&i| self.step.final_obs[i * o..(i + 1) * o].iter().copied())
                    .collect();
                for (&i, v) in cut.iter().zip(policy.values(&finals)) {
                    r.truncation_values[t * n + i] = v;
                }
            }
            for ep in &self.step.finished {
                r.episode_returns.push(ep.episode_return as f32);
                r.episode_lengths.push(ep.length);
            }
        }
        r.bootstrap_values = policy.values(self.venv.observations());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_common::model::{Activation, ModelSpec};
    use shoal_common::rollout::Rollout as R;

    fn settings() -> ActorSettings {
        let model = ModelSpec {
            obs_dim: 4,
            num_actions: 2,
            hidden: vec![8],
            activation: Activation::Tanh,
        };
        ActorSettings {
            actor_id: 2,
            env_id: "CartPole-v1".into(),
            num_envs: 3,
            n_steps: 40,
            seed: 5,
            param_wait_ms: 10,
            model_fingerprint: model.layout().fingerprint(),
            model,
        }
    }

    #[test]
    fn rollouts_are_consistent_valid_and_reproducible() {
        let s = settings();
        let policy = Policy::new(&s.model, &s.model.init_params(1), 7);
        let mut a = Worker::new(&s).unwrap();
        let mut b = Worker::new(&s).unwrap();
        let ra = a.collect(&policy);
        assert_eq!(ra, b.collect(&policy));
        assert_eq!(ra.version, 7);
        assert_eq!(ra.obs.len(), 40 * 3 * 4);
        // A random policy ends CartPole episodes within 40 steps: episodes are reported, and
        // each ended step is flagged.
        assert!(!ra.episode_returns.is_empty());
        // The wire check accepts what the worker makes.
        assert_eq!(R::from_proto(&ra.to_proto("x"), ra.shape).unwrap(), ra);
        // The next rollout continues the episodes (different data).
        assert_ne!(a.collect(&policy).obs, ra.obs);
    }
}
