//! Rollout collection (PPO and A3C actors): `n_steps` steps of every environment copy with
//! batched inference, free of networking.

use shoal_common::env::{EnvError, VecEnv, VecStep};
use shoal_common::model::ActionHead;
use shoal_common::normalize::NormStats;
use shoal_common::obs::Observations;
use shoal_common::rng::{Rng, derive_seed};
use shoal_common::rollout::{FinalObservations, Rollout, RolloutShape};
use shoal_common::settings::ActorSettings;

use shoal_common::stats::InferenceClock;

use crate::policy::Policy;

/// The environments and the sampling state of one actor.
pub struct Worker {
    venv: VecEnv,
    rng: Rng,
    shape: RolloutShape,
    actor_id: u32,
    step: VecStep,
    /// Discount of the running returns whose spread scales rewards.
    gamma: f64,
    /// Running discounted return per copy (reset when its episode ends).
    discounted: Vec<f64>,
    /// Scratch: the normalised observations of one step.
    obs: Vec<f32>,
    /// Scratch: categorical actions as indices.
    indices: Vec<usize>,
    /// Time in batched policy forward passes.
    pub inference: InferenceClock,
}

impl Worker {
    /// Environments and sampler for `settings` (seeded from the actor's seed).
    pub fn new(settings: &ActorSettings) -> Result<Self, EnvError> {
        let venv = settings.open_envs()?;
        Ok(Self {
            shape: RolloutShape::of(&settings.model, settings.n_steps, settings.num_envs),
            rng: Rng::new(derive_seed(settings.seed, u64::MAX)),
            actor_id: settings.actor_id,
            gamma: settings.normalize.gamma,
            discounted: vec![0.0; settings.num_envs],
            venv,
            step: VecStep::default(),
            obs: Vec::new(),
            indices: Vec::new(),
            inference: InferenceClock::default(),
        })
    }

    /// Updates the id after a re-registration gave another one.
    pub fn set_actor_id(&mut self, actor_id: u32) {
        self.actor_id = actor_id;
    }

    /// Runs `n_steps` steps in every copy with `policy`, normalising what the learner trains on
    /// with the policy version's statistics and measuring the raw data for the next ones.
    ///
    /// # Errors
    /// A served environment failed (nothing of this rollout may be pushed).
    pub fn collect(&mut self, policy: &Policy) -> Result<Rollout, EnvError> {
        let RolloutShape {
            n_steps: t_len,
            num_envs: n,
            obs_dim: o,
            obs_format,
            action: head,
        } = self.shape;
        let norm = policy.normalizer();
        let tn = t_len * n;
        let mut r = Rollout {
            actor_id: self.actor_id,
            version: policy.version(),
            shape: self.shape,
            obs: Observations::with_capacity(obs_format, tn * o),
            actions: Vec::with_capacity(tn * head.action_width()),
            rewards: Vec::with_capacity(tn),
            terminated: Vec::with_capacity(tn),
            truncated: Vec::with_capacity(tn),
            log_probs: Vec::with_capacity(tn),
            values: Vec::with_capacity(tn),
            bootstrap_values: Vec::new(),
            truncation_values: vec![0.0; tn],
            episode_returns: Vec::new(),
            episode_lengths: Vec::new(),
            moments: NormStats::new(self.shape.moments_dim()),
            final_obs: None,
        };
        let mut truncation_obs = Observations::with_capacity(obs_format, 0);
        for t in 0..t_len {
            let raw = self.venv.observations();
            if self.shape.moments_dim() > 0 {
                for row in raw.chunks_exact(o) {
                    r.moments.observations.push(row);
                }
            }
            self.obs.clear();
            self.obs.extend_from_slice(raw);
            norm.observations(&mut self.obs);
            r.obs.extend_from_f32(&self.obs);
            let act = self.inference.time(|| policy.act(&self.obs, &mut self.rng));
            match head {
                ActionHead::Categorical(_) => {
                    self.indices.clear();
                    self.indices.extend(act.actions.iter().map(|&a| a as usize));
                    self.venv.step_discrete(&self.indices, &mut self.step)?;
                }
                ActionHead::Gaussian(_) => {
                    self.venv.step_continuous(&act.actions, &mut self.step)?
                }
            }
            r.actions.extend(&act.actions);
            r.log_probs.extend(&act.log_probs);
            r.values.extend(&act.values);
            for i in 0..n {
                let reward = self.step.rewards[i];
                self.discounted[i] = self.discounted[i] * self.gamma + reward as f64;
                r.moments.returns.push(&[self.discounted[i] as f32]);
                if self.step.terminated[i] || self.step.truncated[i] {
                    self.discounted[i] = 0.0;
                }
                r.rewards.push(norm.reward(reward));
            }
            r.terminated.extend(&self.step.terminated);
            r.truncated.extend(&self.step.truncated);
            // Truncated episodes bootstrap from their final observation: one batched forward.
            let cut: Vec<usize> = (0..n).filter(|&i| self.step.truncated[i]).collect();
            if !cut.is_empty() {
                let mut finals: Vec<f32> = cut
                    .iter()
                    .flat_map(|&i| self.step.final_obs[i * o..(i + 1) * o].iter().copied())
                    .collect();
                norm.observations(&mut finals);
                for (&i, v) in cut.iter().zip(policy.values(&finals)) {
                    r.truncation_values[t * n + i] = v;
                }
                truncation_obs.extend_from_f32(&finals);
            }
            for ep in &self.step.finished {
                r.episode_returns.push(ep.episode_return as f32);
                r.episode_lengths.push(ep.length);
            }
        }
        self.obs.clear();
        self.obs.extend_from_slice(self.venv.observations());
        norm.observations(&mut self.obs);
        r.bootstrap_values = policy.values(&self.obs);
        r.final_obs = Some(FinalObservations {
            bootstrap: Observations::from_f32(obs_format, &self.obs),
            truncation: truncation_obs,
        });
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_common::model::{Activation, ModelSpec};
    use shoal_common::normalize::{NormalizeSettings, Normalizer};
    use shoal_common::rollout::Rollout as R;

    fn settings() -> ActorSettings {
        let model = ModelSpec::mlp(4, ActionHead::Categorical(2), vec![8], Activation::Tanh);
        ActorSettings {
            actor_id: 2,
            env: shoal_common::env::EnvSpec::new("CartPole-v1"),
            num_envs: 3,
            n_steps: 40,
            seed: 5,
            algorithm: shoal_common::settings::AlgorithmSettings::Ppo,
            param_wait_ms: 10,
            deterministic: false,
            normalize: NormalizeSettings::off(),
            model_fingerprint: model.layout().fingerprint(),
            engine: shoal_common::config::EngineChoice::Auto,
            model,
        }
    }

    #[test]
    fn rollouts_are_consistent_valid_and_reproducible() {
        let s = settings();
        let off = Normalizer::new(s.normalize, &NormStats::new(4));
        let policy = Policy::new(&s.model, &s.model.init_params(1), 7, off);
        let mut a = Worker::new(&s).unwrap();
        let mut b = Worker::new(&s).unwrap();
        let ra = a.collect(&policy).unwrap();
        assert_eq!(ra, b.collect(&policy).unwrap());
        assert_eq!(ra.version, 7);
        assert_eq!(ra.obs.len(), 40 * 3 * 4);
        // A random policy ends CartPole episodes within 40 steps: episodes are reported, and
        // each ended step is flagged.
        assert!(!ra.episode_returns.is_empty());
        // The wire check accepts what the worker makes.
        assert_eq!(R::from_proto(&ra.to_proto("x"), ra.shape).unwrap(), ra);
        // The next rollout continues the episodes (different data).
        assert_ne!(a.collect(&policy).unwrap().obs, ra.obs);
    }

    #[test]
    fn pendulum_rollouts_use_the_version_statistics_and_report_raw_moments() {
        let mut s = settings();
        s.env = shoal_common::env::EnvSpec::new("Pendulum-v1");
        s.num_envs = 2;
        s.n_steps = 200;
        s.model = ModelSpec::mlp(3, ActionHead::Gaussian(1), vec![8], Activation::Tanh);
        s.model_fingerprint = s.model.layout().fingerprint();
        s.normalize = NormalizeSettings {
            observations: true,
            rewards: true,
            clip_observations: 100.0,
            clip_rewards: 100.0,
            gamma: 0.9,
            epsilon: 1e-8,
        };
        // Observation mean (0.5, 0.5, 2), variance (0.25, 0.25, 4); return variance 100.
        let mut stats = NormStats::new(3);
        stats.observations.push(&[0.0, 0.0, 0.0]);
        stats.observations.push(&[1.0, 1.0, 4.0]);
        stats.returns.push(&[-10.0]);
        stats.returns.push(&[10.0]);
        let (mean, sd) = ([0.5f64, 0.5, 2.0], [0.5f64, 0.5, 2.0]);
        let norm = Normalizer::new(s.normalize, &stats);
        let policy = Policy::new(&s.model, &s.model.init_params(3), 1, norm);
        let r = Worker::new(&s).unwrap().collect(&policy).unwrap();
        assert_eq!(R::from_proto(&r.to_proto("x"), r.shape).unwrap(), r);
        // The observations sent are the raw ones normalised: undoing the normalisation gives
        // back data whose moments are those reported.
        let mut raw = NormStats::new(3);
        for row in r.obs.to_f32().chunks(3) {
            let x: Vec<f32> = (0..3)
                .map(|d| (row[d] as f64 * sd[d] + mean[d]) as f32)
                .collect();
            raw.observations.push(&x);
        }
        assert_eq!(r.moments.observations.count, 400.0);
        for d in 0..3 {
            assert!((raw.observations.mean[d] - r.moments.observations.mean[d]).abs() < 1e-4);
        }
        // Rewards are divided by 10; the raw episode returns add up to ten times their sum
        // (both episodes last exactly the 200 steps of the rollout).
        assert_eq!(r.episode_returns.len(), 2);
        for i in 0..2 {
            let scaled: f64 = (0..200).map(|t| r.rewards[t * 2 + i] as f64).sum();
            assert!((scaled * 10.0 - r.episode_returns[i] as f64).abs() < 1e-2);
        }
        assert_eq!(r.moments.returns.count, 400.0);
        // Actions are recorded unclipped: a unit-variance Gaussian leaves [-2, 2] sometimes.
        assert!(r.actions.iter().any(|a| a.abs() > 2.0));
    }
}
