//! Distributed DQN on the actor: ε-greedy steps with the local Q-network, n-step transitions
//! assembled per environment and pushed in batches; each ack brings newer parameters when the
//! learner has them, and the actor's ε.

use shoal_common::env::{EnvError, VecEnv, VecStep};
use shoal_common::model::argmax;
use shoal_common::obs::{ObsFormat, Observations};
use shoal_common::proto;
use shoal_common::returns::{column, n_step_returns};
use shoal_common::rng::{Rng, derive_seed};
use shoal_common::settings::{ActorSettings, DqnActor};
use shoal_common::stats::InferenceClock;
use shoal_common::transition::TransitionBatch;

use super::seam::{ActorAlgorithm, Link, Session, SessionResult};
use crate::connection::{FULL_QUEUE_BACKOFF, first_parameters, retry_while_full};
use crate::error::{ActorError, SessionEnd, SessionError};
use crate::policy::Policy;

/// Environments and exploration state of one DQN actor.
pub struct DqnWorker {
    venv: VecEnv,
    rng: Rng,
    settings: DqnActor,
    n_steps: usize,
    num_actions: usize,
    obs_format: ObsFormat,
    actor_id: u32,
    step: VecStep,
    /// Time in batched policy forward passes.
    pub inference: InferenceClock,
}

impl DqnWorker {
    /// For `settings` (a DQN run).
    pub fn new(settings: &ActorSettings, dqn: DqnActor) -> Result<Self, EnvError> {
        let venv = settings.open_envs()?;
        Ok(Self {
            rng: Rng::new(derive_seed(settings.seed, u64::MAX)),
            settings: dqn,
            n_steps: settings.n_steps,
            num_actions: settings.model.action.outputs(),
            obs_format: settings.model.obs_format(),
            actor_id: settings.actor_id,
            venv,
            step: VecStep::default(),
            inference: InferenceClock::default(),
        })
    }

    /// Updates the id after a re-registration gave another one.
    pub fn set_actor_id(&mut self, actor_id: u32) {
        self.actor_id = actor_id;
    }

    /// Explores with `epsilon` from now on (the learner's schedule); values outside [0, 1] are
    /// ignored.
    pub fn set_epsilon(&mut self, epsilon: f64) {
        if (0.0..=1.0).contains(&epsilon) {
            self.settings.epsilon = epsilon;
        }
    }

    /// This actor's current ε.
    pub fn epsilon(&self) -> f64 {
        self.settings.epsilon
    }

    /// Runs `n_steps` ε-greedy steps in every copy and returns one n-step transition per step.
    /// A transition's return stops at an episode end or at the end of this batch (then with
    /// fewer than n steps, bootstrapping from the observation reached).
    ///
    /// # Errors
    /// A served environment failed (nothing of this batch may be pushed).
    pub fn collect(&mut self, policy: &Policy) -> Result<TransitionBatch, EnvError> {
        let (t_len, n, o) = (self.n_steps, self.venv.num_envs(), self.venv.obs_dim());
        let mut obs = Vec::with_capacity((t_len + 1) * n * o);
        let mut actions = Vec::with_capacity(t_len * n);
        let mut rewards = Vec::with_capacity(t_len * n);
        let mut terminated = Vec::with_capacity(t_len * n);
        let mut truncated = Vec::with_capacity(t_len * n);
        let mut finals = vec![0.0f32; t_len * n * o];
        let mut batch = TransitionBatch {
            actor_id: self.actor_id,
            version: policy.version(),
            obs: Observations::with_capacity(self.obs_format, t_len * n * o),
            next_obs: Observations::with_capacity(self.obs_format, t_len * n * o),
            ..TransitionBatch::default()
        };
        let mut chosen = vec![0usize; n];
        for t in 0..t_len {
            obs.extend_from_slice(self.venv.observations());
            let q = self
                .inference
                .time(|| policy.outputs(self.venv.observations()));
            for (i, a) in chosen.iter_mut().enumerate() {
                *a = if self.rng.next_f64() < self.settings.epsilon {
                    self.rng.below(self.num_actions)
                } else {
                    argmax(&q[i * self.num_actions..(i + 1) * self.num_actions])
                };
            }
            self.venv.step_discrete(&chosen, &mut self.step)?;
            actions.extend(chosen.iter().map(|&a| a as u32));
            rewards.extend(&self.step.rewards);
            terminated.extend(&self.step.terminated);
            truncated.extend(&self.step.truncated);
            for i in 0..n {
                if self.step.terminated[i] || self.step.truncated[i] {
                    finals[(t * n + i) * o..(t * n + i + 1) * o]
                        .copy_from_slice(&self.step.final_obs[i * o..(i + 1) * o]);
                }
            }
            for ep in &self.step.finished {
                batch.episode_returns.push(ep.episode_return as f32);
                batch.episode_lengths.push(ep.length);
            }
        }
        obs.extend_from_slice(self.venv.observations());
        // Transitions in the same [T, N] order as the steps.
        let per_env: Vec<_> = (0..n)
            .map(|env| {
                n_step_returns(
                    &column(&rewards, n, env),
                    &column(&terminated, n, env),
                    &column(&truncated, n, env),
                    self.settings.gamma,
                    self.settings.n_step,
                )
            })
            .collect();
        for t in 0..t_len {
            for (env, returns) in per_env.iter().enumerate() {
                let r = returns[t];
                let last = t + r.steps - 1;
                let k = last * n + env;
                let next = if terminated[k] || truncated[k] {
                    &finals[k * o..(k + 1) * o]
                } else {
                    // The observation after step `last`: row last + 1 of obs (row T is the
                    // observation reached after the batch).
                    let row = (last + 1) * n + env;
                    &obs[row * o..(row + 1) * o]
                };
                batch
                    .obs
                    .extend_from_f32(&obs[(t * n + env) * o..(t * n + env + 1) * o]);
                batch.actions.push(actions[t * n + env]);
                batch.rewards.push(r.reward);
                batch.discounts.push(r.discount);
                batch.next_obs.extend_from_f32(next);
            }
        }
        Ok(batch)
    }
}

impl ActorAlgorithm for DqnWorker {
    fn set_actor_id(&mut self, actor_id: u32) {
        DqnWorker::set_actor_id(self, actor_id);
    }

    fn session<'a>(&'a mut self, link: Link<'a>) -> Session<'a> {
        Box::pin(session(self, link))
    }
}

/// One connection's worth of DQN: fetch the parameters, then collect ε-greedy transitions and
/// push them; each ack brings newer parameters when the learner has them, and the actor's ε.
async fn session(worker: &mut DqnWorker, link: Link<'_>) -> SessionResult {
    let Link {
        client,
        settings,
        summary,
        shutdown,
    } = link;
    let mut policy =
        Policy::from_parameters(settings, &first_parameters(client, settings).await?)?.1;
    // A deterministic run: each batch is made with the version that follows the previous
    // batch's, which the parameter stream brings once the learner has closed the round.
    let mut versions = if settings.deterministic {
        let request = proto::SubscribeRequest {
            actor_id: settings.actor_id,
            model_fingerprint: settings.model_fingerprint.clone(),
        };
        Some(client.subscribe_parameters(request).await?.into_inner())
    } else {
        None
    };
    loop {
        if shutdown.is_cancelled() {
            return Ok(SessionEnd::Cancelled);
        }
        let batch = worker.collect(&policy).map_err(ActorError::from)?;
        let mut msg = batch.to_proto(&settings.model_fingerprint);
        msg.actor_stats = Some(summary.report(
            batch.len() as u64,
            batch.episode_returns.len() as u64,
            worker.inference.take_mean(),
        ));
        let Some(ack) = retry_while_full(shutdown, FULL_QUEUE_BACKOFF, async || {
            client.push_transitions(msg.clone()).await
        })
        .await?
        else {
            return Ok(SessionEnd::Cancelled);
        };
        summary.rollouts += 1;
        if let Some(f) = ack.finished {
            return Ok(SessionEnd::Finished(f.reason));
        }
        if let Some(epsilon) = ack.epsilon {
            worker.set_epsilon(epsilon);
        }
        if let Some(stream) = versions.as_mut() {
            let used = policy.version();
            let next = tokio::select! {
                next = next_version(stream, used) => next?,
                _ = shutdown.cancelled() => return Ok(SessionEnd::Cancelled),
            };
            match next {
                Ok(p) => policy = Policy::from_parameters(settings, &p)?.1,
                Err(reason) => return Ok(SessionEnd::Finished(reason)),
            }
        } else if let Some(p) = ack.parameters {
            policy = Policy::from_parameters(settings, &p)?.1;
        }
    }
}

/// The first version newer than `used` on the parameter stream, or the run's end reason.
async fn next_version(
    stream: &mut tonic::Streaming<proto::ParameterUpdate>,
    used: u64,
) -> Result<Result<proto::Parameters, String>, SessionError> {
    use proto::parameter_update::Update;
    loop {
        match stream.message().await?.and_then(|u| u.update) {
            Some(Update::Parameters(p)) if p.version > used => return Ok(Ok(p)),
            Some(Update::Finished(f)) => return Ok(Err(f.reason)),
            Some(Update::Parameters(_)) => {}
            None => {
                return Err(SessionError::Lost(tonic::Status::unavailable(
                    "parameter stream ended",
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_common::model::{ActionHead, Activation, ModelSpec};
    use shoal_common::normalize::{NormalizeSettings, Normalizer};
    use shoal_common::settings::AlgorithmSettings;

    #[test]
    fn transitions_follow_the_steps_taken() {
        let model = ModelSpec::mlp(4, ActionHead::Categorical(2), vec![8], Activation::Tanh);
        let dqn = DqnActor {
            epsilon: 1.0,
            n_step: 3,
            gamma: 0.9,
        };
        let settings = ActorSettings {
            actor_id: 1,
            env: shoal_common::env::EnvSpec::new("CartPole-v1"),
            num_envs: 2,
            n_steps: 40,
            seed: 3,
            algorithm: AlgorithmSettings::Dqn(dqn),
            param_wait_ms: 0,
            deterministic: false,
            normalize: NormalizeSettings::off(),
            model_fingerprint: model.layout().fingerprint(),
            engine: shoal_common::config::EngineChoice::Auto,
            model: model.clone(),
        };
        let policy = Policy::new(&model, &model.init_params(1), 1, Normalizer::off(4));
        let b = DqnWorker::new(&settings, dqn)
            .unwrap()
            .collect(&policy)
            .unwrap();
        assert_eq!(b.len(), 80);
        // Random play ends CartPole episodes within 40 steps: terminal transitions have
        // discount 0 and reward < 3; others 0.9^m with the matching sum of ones.
        assert!(b.discounts.contains(&0.0));
        for k in 0..80 {
            let d = b.discounts[k];
            let r = b.rewards[k];
            if d > 0.0 {
                let m = (d.ln() / 0.9f32.ln()).round() as i32;
                let want: f32 = (0..m).map(|j| 0.9f32.powi(j)).sum();
                assert!((r - want).abs() < 1e-5, "{r} vs {want} (m {m})");
            }
        }
        // Without an episode end, the next observation of step t (n = 3) is the observation of
        // step t + 3.
        let o = 4;
        let (obs, next_obs) = (b.obs.to_f32(), b.next_obs.to_f32());
        for t in 0..30 {
            let k = t * 2;
            if (b.discounts[k] - 0.729).abs() < 1e-6 {
                assert_eq!(
                    &next_obs[k * o..(k + 1) * o],
                    &obs[(k + 6) * o..(k + 7) * o]
                );
            }
        }
        // The wire check accepts what the worker makes.
        assert_eq!(
            TransitionBatch::from_proto(&b.to_proto("x"), 80, (4, ObsFormat::F32), 2).unwrap(),
            b
        );
    }
}
