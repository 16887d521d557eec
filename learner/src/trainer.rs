//! The PPO trainer: owns the model and optimizer on the training device and turns a batch of
//! rollouts into one update (epochs × minibatches). Only the trainer thread touches it.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData, Transaction};
use shoal_common::config::{PpoConfig, RunConfig};
use shoal_common::model::{ActorCritic, ModelSpec, action_rows};
use shoal_common::rng::Rng;
use shoal_common::rollout::Rollout;

use crate::ppo::{LossCoefs, explained_variance, gae, normalize, ppo_loss};

/// Statistics of one update (means over its minibatches).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UpdateStats {
    /// Clipped surrogate loss.
    pub policy_loss: f64,
    /// Value loss.
    pub value_loss: f64,
    /// Policy entropy.
    pub entropy: f64,
    /// Approximate KL between behaviour and updated policy.
    pub approx_kl: f64,
    /// Fraction of clipped ratios.
    pub clipfrac: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Explained variance of the behaviour values.
    pub explained_variance: f64,
    /// Learning rate used.
    pub learning_rate: f64,
    /// Samples in the batch.
    pub batch_size: usize,
}

/// A flattened PPO batch in host memory.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// `[B, O]`.
    pub obs: Vec<f32>,
    /// `[B]` action indices (categorical) or `[B, A]` actions (Gaussian).
    pub actions: Vec<f32>,
    /// `[B]`.
    pub log_probs: Vec<f32>,
    /// `[B]`.
    pub advantages: Vec<f32>,
    /// `[B]`.
    pub returns: Vec<f32>,
    /// `[B]` behaviour values.
    pub values: Vec<f32>,
}

impl Batch {
    /// Computes GAE per environment of every rollout and flattens them into one batch.
    pub fn from_rollouts(rollouts: &[Rollout], gamma: f64, lambda: f64) -> Self {
        let mut batch = Batch::default();
        for r in rollouts {
            let (t_len, n) = (r.shape.n_steps, r.shape.num_envs);
            let o = r.shape.obs_dim;
            let mut advantages = vec![0.0f32; t_len * n];
            // Column n of the [T, N] arrays, gathered into time order.
            for env in 0..n {
                let col = |v: &[f32]| (0..t_len).map(|t| v[t * n + env]).collect::<Vec<_>>();
                let rewards = col(&r.rewards);
                let values = col(&r.values);
                let terminated: Vec<bool> = (0..t_len).map(|t| r.terminated[t * n + env]).collect();
                let truncated: Vec<bool> = (0..t_len).map(|t| r.truncated[t * n + env]).collect();
                let ends: Vec<bool> = terminated
                    .iter()
                    .zip(&truncated)
                    .map(|(a, b)| *a || *b)
                    .collect();
                let next_values: Vec<f32> = (0..t_len)
                    .map(|t| {
                        if truncated[t] {
                            r.truncation_values[t * n + env]
                        } else if t + 1 < t_len {
                            values[t + 1]
                        } else {
                            r.bootstrap_values[env]
                        }
                    })
                    .collect();
                let adv = gae(
                    &rewards,
                    &values,
                    &next_values,
                    &terminated,
                    &ends,
                    gamma,
                    lambda,
                );
                for t in 0..t_len {
                    advantages[t * n + env] = adv[t];
                }
            }
            batch.obs.extend_from_slice(&r.obs[..t_len * n * o]);
            batch.actions.extend_from_slice(&r.actions);
            batch.log_probs.extend_from_slice(&r.log_probs);
            batch.values.extend_from_slice(&r.values);
            batch
                .returns
                .extend(advantages.iter().zip(&r.values).map(|(a, v)| a + v));
            batch.advantages.extend(advantages);
        }
        batch
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.log_probs.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.log_probs.is_empty()
    }
}

/// Owns the network and its optimizer.
pub struct PpoTrainer {
    spec: ModelSpec,
    ppo: PpoConfig,
    total_steps: u64,
    device: Device,
    model: Option<ActorCritic>,
    optimizer: ModuleOptimizer,
    rng: Rng,
}

impl PpoTrainer {
    /// A trainer on `device` (autodiff is enabled here) starting from `initial` parameters;
    /// `shuffle_seed` fixes the minibatch order.
    pub fn new(
        config: &RunConfig,
        spec: ModelSpec,
        initial: &[f32],
        device: Device,
        shuffle_seed: u64,
    ) -> Self {
        let device = device.autodiff();
        let model = spec.build(initial, &device);
        let optimizer = AdamConfig::new()
            .with_epsilon(config.ppo.adam_eps as f32)
            .init();
        Self {
            spec,
            ppo: config.ppo.clone(),
            total_steps: config.total_steps,
            device,
            model: Some(model),
            optimizer,
            rng: Rng::new(shuffle_seed),
        }
    }

    /// The model spec.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Current parameters, flattened in layout order.
    pub fn params(&self) -> Vec<f32> {
        self.model().to_flat()
    }

    /// Writes the optimizer state (burnpack) to `path`.
    pub fn save_optimizer(&self, path: &std::path::Path) -> Result<(), String> {
        self.optimizer.save(path).map_err(|e| format!("{e:?}"))
    }

    /// The model and optimizer as they are now, to return to with [`PpoTrainer::rollback`]
    /// (cheap: tensors are shared, not copied).
    pub fn snapshot(&self) -> (ActorCritic, ModuleOptimizer) {
        (self.model().clone(), self.optimizer.clone())
    }

    /// Returns to a [`PpoTrainer::snapshot`].
    pub fn rollback(&mut self, (model, optimizer): (ActorCritic, ModuleOptimizer)) {
        self.model = Some(model);
        self.optimizer = optimizer;
    }

    /// Reads the optimizer state [`PpoTrainer::save_optimizer`] wrote.
    pub fn load_optimizer(&mut self, path: &std::path::Path) -> Result<(), String> {
        self.optimizer = self
            .optimizer
            .clone()
            .load(path)
            .map_err(|e| format!("{}: {e:?}", path.display()))?;
        Ok(())
    }

    fn model(&self) -> &ActorCritic {
        self.model
            .as_ref()
            .expect("model is only taken during a step")
    }

    /// Linear annealing factor for the update starting at `env_steps`.
    fn progress_remaining(&self, env_steps: u64) -> f64 {
        (1.0 - env_steps as f64 / self.total_steps.max(1) as f64).max(0.0)
    }

    /// One PPO update on `batch`; `env_steps` (steps so far) drives the annealing.
    pub fn update(&mut self, batch: &Batch, env_steps: u64) -> UpdateStats {
        let frac = self.progress_remaining(env_steps);
        let lr = if self.ppo.anneal_lr {
            self.ppo.learning_rate * frac
        } else {
            self.ppo.learning_rate
        };
        let clip_coef = if self.ppo.anneal_clip_coef {
            self.ppo.clip_coef * frac
        } else {
            self.ppo.clip_coef
        }
        .max(1e-8);
        let coefs = LossCoefs {
            clip_coef,
            vf_coef: self.ppo.vf_coef,
            ent_coef: self.ppo.ent_coef,
        };
        let b = batch.len();
        let obs_dim = self.spec.obs_dim;
        let head = self.spec.action;
        let (outputs, width) = (head.outputs(), head.action_width());
        let minibatch = b.div_ceil(self.ppo.num_minibatches);
        let mut indices: Vec<usize> = (0..b).collect();
        let mut stats_tensors: Vec<Tensor<1>> = Vec::new();
        let mut num_minibatches = 0usize;
        for _epoch in 0..self.ppo.update_epochs {
            self.rng.shuffle(&mut indices);
            for chunk in indices.chunks(minibatch) {
                let m = chunk.len();
                let mut obs = Vec::with_capacity(m * obs_dim);
                let mut actions = Vec::with_capacity(m * width);
                let mut old_lp = Vec::with_capacity(m);
                let mut adv = Vec::with_capacity(m);
                let mut ret = Vec::with_capacity(m);
                for &i in chunk {
                    obs.extend_from_slice(&batch.obs[i * obs_dim..(i + 1) * obs_dim]);
                    actions.extend_from_slice(&batch.actions[i * width..(i + 1) * width]);
                    old_lp.push(batch.log_probs[i]);
                    adv.push(batch.advantages[i]);
                    ret.push(batch.returns[i]);
                }
                if self.ppo.norm_adv {
                    normalize(&mut adv);
                }
                let d = &self.device;
                let t2 = |v: Vec<f32>, cols: usize| {
                    Tensor::<2>::from_data(TensorData::new(v, [m, cols]), d)
                };
                let t1 = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [m]), d);
                let obs = t2(obs, obs_dim);
                let model = self.model.take().expect("model present");
                let policy = model.evaluate(obs.clone(), t2(action_rows(head, &actions), outputs));
                let loss = ppo_loss(
                    policy,
                    model.values(obs),
                    t1(old_lp),
                    t1(adv),
                    t1(ret),
                    coefs,
                );
                let grads = loss.total.backward();
                let mut grads = GradientsParams::from_grads(grads, &model);
                let grad_norm = clip_global_norm(&model, &mut grads, self.ppo.max_grad_norm);
                self.model = Some(self.optimizer.step(lr, model, grads));
                // Statistics leave the autodiff graph (the gradient norm is already outside it).
                stats_tensors.extend([
                    loss.policy.inner(),
                    loss.value.inner(),
                    loss.entropy.inner(),
                    loss.approx_kl.inner(),
                    loss.clipfrac.inner(),
                    grad_norm,
                ]);
                num_minibatches += 1;
            }
        }
        // One read-back for all statistics of the update.
        let mut sums = [0.0f64; 6];
        let mut tx = Transaction::default();
        for t in stats_tensors {
            tx = tx.register(t);
        }
        for (k, data) in tx.execute().into_iter().enumerate() {
            sums[k % 6] += data.convert::<f32>().as_slice::<f32>().expect("f32")[0] as f64;
        }
        let mean = |k: usize| sums[k] / num_minibatches.max(1) as f64;
        UpdateStats {
            policy_loss: mean(0),
            value_loss: mean(1),
            entropy: mean(2),
            approx_kl: mean(3),
            clipfrac: mean(4),
            grad_norm: mean(5),
            explained_variance: explained_variance(&batch.values, &batch.returns),
            learning_rate: lr,
            batch_size: b,
        }
    }
}

/// Scales all gradients together so that their global L2 norm is at most `max_norm`
/// (burn's own clipping is per tensor). Stays on the device: no read-back. Returns the norm
/// before clipping.
pub fn clip_global_norm<M: Module>(
    model: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> Tensor<1> {
    struct SumSquares<'a> {
        grads: &'a GradientsParams,
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for SumSquares<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let s = g.square().sum();
                self.total = Some(match self.total.take() {
                    Some(t) => t + s,
                    None => s,
                });
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        scale: Tensor<1>,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                let scale: Tensor<D> = self.scale.clone().reshape([1usize; D]);
                self.grads.register(param.id, g * scale);
            }
        }
    }
    let mut sum = SumSquares { grads, total: None };
    model.visit(&mut sum);
    let Some(total) = sum.total else {
        return Tensor::zeros([1], &model.devices()[0]);
    };
    let norm = total.sqrt();
    let scale = norm
        .clone()
        .add_scalar(1e-6)
        .recip()
        .mul_scalar(max_norm)
        .clamp_max(1.0);
    model.visit(&mut Scale { grads, scale });
    norm
}

/// Synchronous PPO on the trainer thread: collects rollouts made with the current version until
/// `rollouts_per_update` have arrived (or the actor timeout has passed with at least one), then
/// updates and publishes the next version.
pub(crate) struct PpoRun {
    trainer: PpoTrainer,
    config: RunConfig,
    batch: Vec<Rollout>,
    /// Since the current version was published.
    waiting_since: std::time::Instant,
    /// When the current version's first rollout arrived: from then on the trainer waits for
    /// the other actors (a stall when one is missing).
    first_arrival: Option<std::time::Instant>,
    update_secs: f64,
    /// The statistics of every rollout trained on; each version ships them as they were when
    /// it was published.
    normalization: shoal_common::normalize::NormStats,
}

impl PpoRun {
    pub(crate) fn new(
        config: &RunConfig,
        spec: ModelSpec,
        initial: &[f32],
        device: Device,
        seed: u64,
        normalization: shoal_common::normalize::NormStats,
    ) -> Self {
        Self {
            trainer: PpoTrainer::new(config, spec, initial, device, seed),
            config: config.clone(),
            batch: Vec::with_capacity(config.ppo.rollouts_per_update),
            waiting_since: std::time::Instant::now(),
            first_arrival: None,
            update_secs: 0.0,
            normalization,
        }
    }

    /// One update on the rollouts gathered, then the next version.
    fn update(&mut self, shared: &crate::service::Shared, progress: &mut crate::status::Progress) {
        let waited = self.waiting_since.elapsed().as_secs_f64();
        progress.longest_wait_secs = progress.longest_wait_secs.max(waited);
        let stalled = self
            .first_arrival
            .take()
            .map_or(0.0, |t| t.elapsed().as_secs_f64());
        progress.longest_stall_secs = progress.longest_stall_secs.max(stalled);
        let update_start = std::time::Instant::now();
        tracing::debug!(version = progress.version, "update starts");
        // Arrival order varies from run to run; actor order does not.
        self.batch.sort_by_key(|r| r.actor_id);
        let data = Batch::from_rollouts(
            &self.batch,
            self.config.ppo.gamma,
            self.config.ppo.gae_lambda,
        );
        let before = self.trainer.snapshot();
        let stats = self.trainer.update(&data, progress.env_steps);
        let params = self.trainer.params();
        self.waiting_since = std::time::Instant::now();
        if let Some(index) = params.iter().position(|x| !x.is_finite()) {
            // Validated input can still be extreme enough to overflow: the model never keeps
            // (or publishes) a non-finite value. Actors collect again with this version.
            self.trainer.rollback(before);
            self.first_arrival = None;
            progress.nonfinite_updates += 1;
            tracing::warn!(
                version = progress.version,
                index,
                "update discarded: it made a parameter non-finite"
            );
            self.batch.clear();
            return;
        }
        progress.rollouts_used += self.batch.len() as u64;
        self.batch.clear();
        progress.updates += 1;
        progress.last_update = Some(stats);
        let next_version = progress.version + 1;
        shared.begin_version(next_version);
        progress.version = shared.store.publish(
            shoal_common::codec::encode_f32(&params),
            self.normalization.clone(),
        );
        debug_assert_eq!(progress.version, next_version);
        tracing::debug!(version = progress.version, "published");
        self.update_secs += update_start.elapsed().as_secs_f64();
    }
}

impl crate::driver::Algorithm for PpoRun {
    fn handle(
        &mut self,
        first: crate::service::Experience,
        _rx: &crossbeam_channel::Receiver<crate::service::Experience>,
        shared: &crate::service::Shared,
        progress: &mut crate::status::Progress,
    ) -> Option<crate::driver::Stop> {
        let crate::service::Experience::Rollout(rollout) = first else {
            unreachable!("the service refuses gradients and transitions in PPO runs")
        };
        let rollout = *rollout;
        tracing::debug!(
            actor_id = rollout.actor_id,
            version = rollout.version,
            "rollout received"
        );
        progress.env_steps += rollout.env_steps() as u64;
        for (&r, &l) in rollout.episode_returns.iter().zip(&rollout.episode_lengths) {
            progress.episodes.push(r, l);
        }
        progress
            .lag
            .record(progress.version.saturating_sub(rollout.version));
        if rollout.version == progress.version
            && self.batch.len() < self.config.ppo.rollouts_per_update
        {
            self.normalization.merge(&rollout.moments);
            self.batch.push(rollout);
            self.first_arrival
                .get_or_insert_with(std::time::Instant::now);
        } else {
            progress.rollouts_stale += 1;
        }
        if self.batch.len() == self.config.ppo.rollouts_per_update {
            self.update(shared, progress);
        }
        crate::driver::stop_reason(&self.config, progress)
    }

    fn poll(
        &mut self,
        shared: &crate::service::Shared,
        progress: &mut crate::status::Progress,
    ) -> Option<crate::driver::Stop> {
        // Some rollouts of this version are in, the rest have not come within the actor
        // timeout: their actors are gone or cut off. Train on what arrived.
        let first = self.first_arrival?;
        if first.elapsed() < shared.actor_timeout {
            return None;
        }
        tracing::warn!(
            rollouts = self.batch.len(),
            wanted = self.config.ppo.rollouts_per_update,
            waited_s = format_args!("{:.2}", first.elapsed().as_secs_f64()),
            version = progress.version,
            "actors missing: updating on the rollouts that arrived"
        );
        progress.partial_updates += 1;
        self.update(shared, progress);
        crate::driver::stop_reason(&self.config, progress)
    }

    fn params(&self) -> Vec<f32> {
        self.trainer.params()
    }

    fn normalization(&self) -> shoal_common::normalize::NormStats {
        self.normalization.clone()
    }

    fn update_secs(&self) -> f64 {
        self.update_secs
    }

    fn save(&self, dir: &std::path::Path) -> Result<serde_json::Value, String> {
        self.trainer.save_optimizer(&dir.join("optimizer.bpk"))?;
        Ok(serde_json::Value::Null)
    }

    fn restore(&mut self, dir: &std::path::Path, _state: &serde_json::Value) -> Result<(), String> {
        self.trainer.load_optimizer(&dir.join("optimizer.bpk"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_common::model::Activation;

    #[test]
    fn global_clipping_scales_all_gradients_together() {
        let spec = ModelSpec {
            obs_dim: 2,
            action: shoal_common::model::ActionHead::Categorical(2),
            hidden: vec![3],
            activation: Activation::Tanh,
        };
        let device = Device::flex().autodiff();
        let model = spec.build(&spec.init_params(3), &device);
        let obs = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, -2.0, 0.5, 3.0], [2, 2]),
            &device,
        );
        let loss = (model.logits(obs.clone()).sum() + model.values(obs).sum()).mul_scalar(100.0);
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        let norm_before = clip_global_norm(&model, &mut grads, 1e9);
        let before = norm_before
            .into_data()
            .convert::<f32>()
            .as_slice::<f32>()
            .unwrap()[0];
        assert!(before > 1.0);
        let _ = clip_global_norm(&model, &mut grads, 0.5);
        let after = clip_global_norm(&model, &mut grads, 1e9);
        let after = after
            .into_data()
            .convert::<f32>()
            .as_slice::<f32>()
            .unwrap()[0];
        assert!((after - 0.5).abs() < 1e-4, "norm after clipping {after}");
    }
}
