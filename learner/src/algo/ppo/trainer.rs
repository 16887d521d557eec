//! The PPO trainer: owns the model and optimizer on the training device and turns a batch
//! into one update (epochs × minibatches). Only the trainer thread touches it.

use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData, Transaction};
use shoal_common::config::{PpoConfig, RunConfig};
use shoal_common::model::{ActorCritic, ModelSpec, action_rows};
use shoal_common::obs::Observations;
use shoal_common::rng::Rng;

use super::batch::Batch;
use super::loss::{LossCoefs, PpoLoss, explained_variance, normalize, ppo_loss};
use crate::checkpoint::CheckpointError;
use crate::grad_clip::clip_global_norm;

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

/// The statistics of an update's minibatch steps, kept on the device until one read-back at
/// the end of the update (PPO and IMPALA).
#[derive(Default)]
pub(crate) struct StepStats {
    tensors: Vec<Tensor<1>>,
    steps: usize,
}

impl StepStats {
    /// Records one step's loss parts and gradient norm; they leave the autodiff graph here (the
    /// gradient norm is already outside it).
    pub(crate) fn record(&mut self, loss: PpoLoss, grad_norm: Tensor<1>) {
        self.tensors.extend([
            loss.policy.inner(),
            loss.value.inner(),
            loss.entropy.inner(),
            loss.approx_kl.inner(),
            loss.clipfrac.inner(),
            grad_norm,
        ]);
        self.steps += 1;
    }

    /// Reads every statistic back at once; the update's means, with the quantities measured
    /// on the host.
    pub(crate) fn finish(
        self,
        explained_variance: f64,
        learning_rate: f64,
        batch_size: usize,
    ) -> UpdateStats {
        let mut sums = [0.0f64; 6];
        let mut tx = Transaction::default();
        for t in self.tensors {
            tx = tx.register(t);
        }
        for (k, data) in tx.execute().into_iter().enumerate() {
            sums[k % 6] += data.convert::<f32>().as_slice::<f32>().expect("f32")[0] as f64;
        }
        let mean = |k: usize| sums[k] / self.steps.max(1) as f64;
        UpdateStats {
            policy_loss: mean(0),
            value_loss: mean(1),
            entropy: mean(2),
            approx_kl: mean(3),
            clipfrac: mean(4),
            grad_norm: mean(5),
            explained_variance,
            learning_rate,
            batch_size,
        }
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

    /// Writes the optimizer state into the checkpoint directory `dir`.
    pub fn save_optimizer(&self, dir: &std::path::Path) -> Result<(), CheckpointError> {
        crate::checkpoint::save_optimizer(&self.optimizer, dir)
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
    pub fn load_optimizer(&mut self, dir: &std::path::Path) -> Result<(), CheckpointError> {
        crate::checkpoint::load_optimizer(&mut self.optimizer, dir)
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
        let mut stats = StepStats::default();
        for _epoch in 0..self.ppo.update_epochs {
            self.rng.shuffle(&mut indices);
            for chunk in indices.chunks(minibatch) {
                let m = chunk.len();
                let mut obs = Observations::with_capacity(batch.obs.format(), m * obs_dim);
                let mut actions = Vec::with_capacity(m * width);
                let mut old_lp = Vec::with_capacity(m);
                let mut adv = Vec::with_capacity(m);
                let mut ret = Vec::with_capacity(m);
                for &i in chunk {
                    obs.extend_from(&batch.obs, i * obs_dim..(i + 1) * obs_dim);
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
                let obs = obs.into_tensor(m, d);
                let model = self.model.take().expect("model present");
                let (policy, values) =
                    model.evaluate_with_values(obs, t2(action_rows(head, &actions), outputs));
                let loss = ppo_loss(policy, values, t1(old_lp), t1(adv), t1(ret), coefs);
                let grads = loss.total.clone().backward();
                let mut grads = GradientsParams::from_grads(grads, &model);
                let grad_norm = clip_global_norm(&model, &mut grads, self.ppo.max_grad_norm);
                self.model = Some(self.optimizer.step(lr, model, grads));
                stats.record(loss, grad_norm);
            }
        }
        stats.finish(explained_variance(&batch.values, &batch.returns), lr, b)
    }
}
