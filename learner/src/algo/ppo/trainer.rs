//! The PPO trainer: owns the model and optimizer and turns a batch into one update (epochs ×
//! minibatches). `mlp` models on the CPU train on the host ([`super::dense`]), every other model
//! through burn's autodiff on the training device. Only the trainer thread touches it.

use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData, Transaction};
use shoal_common::config::{PpoConfig, RunConfig};
use shoal_common::model::{ActorCritic, ModelSpec, action_rows};
use shoal_common::obs::Observations;
use shoal_common::rng::Rng;

use super::batch::Batch;
use super::dense::DensePpo;
use super::head_grads::Minibatch;
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
    /// The same six sums for steps taken on the host ([`StepStats::record_host`]).
    host: [f64; 6],
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

    /// Records one host step's loss sums (divided by its rows: the means) and gradient norm.
    pub(crate) fn record_host(&mut self, r: &super::dense::StepReport) {
        let n = r.rows.max(1) as f64;
        let s = &r.sums;
        let means = [s.policy, s.value, s.entropy, s.approx_kl, s.clipped].map(|v| v / n);
        for (sum, v) in self
            .host
            .iter_mut()
            .zip(means.into_iter().chain([r.grad_norm]))
        {
            *sum += v;
        }
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
        let mut sums = self.host;
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

/// Where the model and its optimizer live.
#[expect(
    clippy::large_enum_variant,
    reason = "one per trainer (or per update), moved rarely: boxing saves nothing that matters"
)]
enum Engine {
    /// burn's autodiff on the training device.
    Burn {
        model: Option<ActorCritic>,
        optimizer: ModuleOptimizer,
    },
    /// The host step for `mlp` models.
    Dense(Box<DensePpo>),
}

/// The model and optimizer as they were, to return to ([`PpoTrainer::snapshot`]).
#[expect(
    clippy::large_enum_variant,
    reason = "one per trainer (or per update), moved rarely: boxing saves nothing that matters"
)]
pub enum Snapshot {
    /// burn's (tensors shared, not copied).
    Burn(ActorCritic, ModuleOptimizer),
    /// The host step's parameters and Adam state (copied: three vectors).
    Dense(Vec<f32>, crate::dense::FlatAdam),
}

/// Owns the network and its optimizer.
pub struct PpoTrainer {
    spec: ModelSpec,
    ppo: PpoConfig,
    total_steps: u64,
    device: Device,
    engine: Engine,
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
        // No more threads than the process may run at once (a worker polling for a core the
        // trainer thread needs would only slow it).
        let threads = config
            .learner
            .compute_threads
            .min(std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get));
        let dense = crate::dense::model::enabled(config, &device)
            .then(|| DensePpo::new(&spec, initial, config.ppo.adam_eps, threads))
            .flatten();
        let device = device.autodiff();
        if dense.is_some() {
            tracing::info!(threads, "PPO trains on the host path (learner.dense_mlp)");
        }
        let engine = match dense {
            Some(dense) => Engine::Dense(Box::new(dense)),
            None => Engine::Burn {
                model: Some(spec.build(initial, &device)),
                optimizer: AdamConfig::new()
                    .with_epsilon(config.ppo.adam_eps as f32)
                    .init(),
            },
        };
        Self {
            spec,
            ppo: config.ppo.clone(),
            total_steps: config.total_steps,
            device,
            engine,
            rng: Rng::new(shuffle_seed),
        }
    }

    /// Whether the host step trains this model (else burn's autodiff).
    pub fn is_dense(&self) -> bool {
        matches!(self.engine, Engine::Dense(_))
    }

    /// The model spec.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Current parameters, flattened in layout order.
    pub fn params(&self) -> Vec<f32> {
        match &self.engine {
            Engine::Burn { model, .. } => model
                .as_ref()
                .expect("model is only taken during a step")
                .to_flat(),
            Engine::Dense(dense) => dense.model().params().to_vec(),
        }
    }

    /// Writes the optimizer state into the checkpoint directory `dir` (burn's file format
    /// either way).
    pub fn save_optimizer(&self, dir: &std::path::Path) -> Result<(), CheckpointError> {
        match &self.engine {
            Engine::Burn { optimizer, .. } => crate::checkpoint::save_optimizer(optimizer, dir),
            Engine::Dense(dense) => dense.model().save_optimizer(dir),
        }
    }

    /// The model and optimizer as they are now, to return to with [`PpoTrainer::rollback`].
    pub fn snapshot(&self) -> Snapshot {
        match &self.engine {
            Engine::Burn { model, optimizer } => Snapshot::Burn(
                model.clone().expect("model is only taken during a step"),
                optimizer.clone(),
            ),
            Engine::Dense(dense) => {
                let (params, adam) = dense.model().state();
                Snapshot::Dense(params, adam)
            }
        }
    }

    /// Returns to a [`PpoTrainer::snapshot`].
    pub fn rollback(&mut self, snapshot: Snapshot) {
        match (&mut self.engine, snapshot) {
            (Engine::Dense(dense), Snapshot::Dense(params, adam)) => {
                dense.model_mut().restore((params, adam));
            }
            (engine, Snapshot::Burn(model, optimizer)) => {
                *engine = Engine::Burn {
                    model: Some(model),
                    optimizer,
                };
            }
            (Engine::Burn { .. }, Snapshot::Dense(..)) => {
                unreachable!("a snapshot of this trainer's engine")
            }
        }
    }

    /// Reads the optimizer state [`PpoTrainer::save_optimizer`] wrote.
    pub fn load_optimizer(&mut self, dir: &std::path::Path) -> Result<(), CheckpointError> {
        match &mut self.engine {
            Engine::Burn { optimizer, .. } => crate::checkpoint::load_optimizer(optimizer, dir),
            Engine::Dense(dense) => dense.model_mut().load_optimizer(dir),
        }
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
                match &mut self.engine {
                    Engine::Dense(dense) => {
                        let obs = obs.to_f32();
                        let mb = Minibatch {
                            obs: &obs,
                            actions: &actions,
                            old_log_probs: &old_lp,
                            advantages: &adv,
                            returns: &ret,
                        };
                        let report = dense.step(&mb, coefs, lr, self.ppo.max_grad_norm);
                        stats.record_host(&report);
                    }
                    Engine::Burn { model, optimizer } => {
                        let d = &self.device;
                        let t2 = |v: Vec<f32>, cols: usize| {
                            Tensor::<2>::from_data(TensorData::new(v, [m, cols]), d)
                        };
                        let t1 = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [m]), d);
                        let obs = obs.into_tensor(m, d);
                        let taken = model.take().expect("model present");
                        let (policy, values) = taken
                            .evaluate_with_values(obs, t2(action_rows(head, &actions), outputs));
                        let loss = ppo_loss(policy, values, t1(old_lp), t1(adv), t1(ret), coefs);
                        let grads = loss.total.clone().backward();
                        let mut grads = GradientsParams::from_grads(grads, &taken);
                        let grad_norm =
                            clip_global_norm(&taken, &mut grads, self.ppo.max_grad_norm);
                        *model = Some(optimizer.step(lr, taken, grads));
                        stats.record(loss, grad_norm);
                    }
                }
            }
        }
        stats.finish(explained_variance(&batch.values, &batch.returns), lr, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_common::model::{ActionHead, Activation};
    use shoal_common::obs::ObsFormat;

    /// A seeded batch of `rows` samples for `spec`.
    fn seeded_batch(spec: &ModelSpec, rows: usize, seed: u64) -> Batch {
        let mut rng = Rng::new(seed);
        let mut normals =
            |n: usize, s: f64| -> Vec<f32> { (0..n).map(|_| (rng.normal() * s) as f32).collect() };
        let obs = normals(rows * spec.obs_dim, 1.0);
        let actions = match spec.action {
            ActionHead::Categorical(n) => (0..rows).map(|i| (i % n) as f32).collect(),
            ActionHead::Gaussian(a) => normals(rows * a, 1.0),
        };
        Batch {
            obs: Observations::from_f32(ObsFormat::F32, &obs),
            actions,
            log_probs: normals(rows, 0.2).iter().map(|v| v - 0.7).collect(),
            advantages: normals(rows, 1.0),
            returns: normals(rows, 3.0),
            values: normals(rows, 3.0),
        }
    }

    #[test]
    fn one_update_gives_the_same_parameters_on_the_host_as_through_burn() {
        let mut config = RunConfig::default();
        // 512-row minibatches: the CartPole network's split over 2 threads.
        config.ppo.update_epochs = 4;
        config.ppo.num_minibatches = 2;
        config.ppo.ent_coef = 0.01;
        for spec in [
            ModelSpec::mlp(
                4,
                ActionHead::Categorical(2),
                vec![64, 64],
                Activation::Tanh,
            ),
            ModelSpec::mlp(3, ActionHead::Gaussian(2), vec![32, 32], Activation::Relu),
        ] {
            let initial = spec.init_params(3);
            let batch = seeded_batch(&spec, 1024, 4);
            config.learner.dense_mlp = false;
            let mut burn = PpoTrainer::new(&config, spec.clone(), &initial, Device::flex(), 7);
            assert!(!burn.is_dense());
            let want_stats = burn.update(&batch, 0);
            let want = burn.params();
            for threads in [1, 2] {
                config.learner.dense_mlp = true;
                config.learner.compute_threads = threads;
                let mut host = PpoTrainer::new(&config, spec.clone(), &initial, Device::flex(), 7);
                assert!(host.is_dense());
                let stats = host.update(&batch, 0);
                let got = host.params();
                let moved = crate::dense::max_abs_diff(&want, &initial);
                let worst = crate::dense::max_abs_diff(&got, &want);
                assert!(moved > 1e-3, "the update moved the parameters ({moved})");
                assert!(
                    worst < 1e-5,
                    "{} threads {threads}: parameters differ by up to {worst} (moved {moved})",
                    spec.input()
                );
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-4 * (1.0 + b.abs());
                assert!(
                    close(stats.policy_loss, want_stats.policy_loss),
                    "{stats:?} vs {want_stats:?}"
                );
                assert!(close(stats.value_loss, want_stats.value_loss));
                assert!(close(stats.entropy, want_stats.entropy));
                assert!(close(stats.approx_kl, want_stats.approx_kl));
                assert!(close(stats.clipfrac, want_stats.clipfrac));
                assert!(close(stats.grad_norm, want_stats.grad_norm));
            }
        }
    }
}
