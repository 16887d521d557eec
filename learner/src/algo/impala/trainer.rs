//! The IMPALA trainer: owns the model and optimizer on the training device and turns a batch of
//! trajectories into one update. Each minibatch (whole trajectories) is evaluated by the
//! current network, V-trace runs on the host from those values and log-probabilities, and the
//! loss is differentiated on the same forward pass.

use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData, Transaction};
use shoal_common::config::{ImpalaConfig, RunConfig};
use shoal_common::model::{ActorCritic, ModelSpec, action_rows};
use shoal_common::obs::Observations;
use shoal_common::returns::next_values;
use shoal_common::rng::Rng;
use shoal_common::vtrace::{VTraceClip, vtrace};

use super::batch::TrajectoryBatch;
use super::loss::{ImpalaCoefs, impala_loss};
use crate::algo::ppo::UpdateStats;
use crate::algo::ppo::loss::{explained_variance, normalize};
use crate::algo::ppo::trainer::StepStats;
use crate::checkpoint::CheckpointError;
use crate::grad_clip::clip_global_norm;

/// One minibatch gathered from the batch: its trajectories' steps and the observations their
/// values bootstrap from.
#[derive(Default)]
struct Minibatch {
    obs: Observations,
    actions: Vec<f32>,
    behaviour_log_probs: Vec<f32>,
    /// The bootstrap observation of each trajectory, then every truncated step's final one.
    final_obs: Observations,
}

/// Owns the network and its optimizer.
pub struct ImpalaTrainer {
    spec: ModelSpec,
    config: ImpalaConfig,
    total_steps: u64,
    device: Device,
    model: Option<ActorCritic>,
    optimizer: ModuleOptimizer,
    rng: Rng,
}

impl ImpalaTrainer {
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
            .with_epsilon(config.impala.adam_eps as f32)
            .init();
        Self {
            spec,
            config: config.impala.clone(),
            total_steps: config.total_steps,
            device,
            model: Some(model),
            optimizer,
            rng: Rng::new(shuffle_seed),
        }
    }

    /// Current parameters, flattened in layout order.
    pub fn params(&self) -> Vec<f32> {
        self.model().to_flat()
    }

    /// Writes the optimizer state into the checkpoint directory `dir`.
    pub fn save_optimizer(&self, dir: &std::path::Path) -> Result<(), CheckpointError> {
        crate::checkpoint::save_optimizer(&self.optimizer, dir)
    }

    /// Reads the optimizer state [`ImpalaTrainer::save_optimizer`] wrote.
    pub fn load_optimizer(&mut self, dir: &std::path::Path) -> Result<(), CheckpointError> {
        crate::checkpoint::load_optimizer(&mut self.optimizer, dir)
    }

    /// The model and optimizer as they are now (cheap: tensors are shared, not copied).
    pub fn snapshot(&self) -> (ActorCritic, ModuleOptimizer) {
        (self.model().clone(), self.optimizer.clone())
    }

    /// Returns to a [`ImpalaTrainer::snapshot`].
    pub fn rollback(&mut self, (model, optimizer): (ActorCritic, ModuleOptimizer)) {
        self.model = Some(model);
        self.optimizer = optimizer;
    }

    fn model(&self) -> &ActorCritic {
        self.model
            .as_ref()
            .expect("model is only taken during a step")
    }

    /// Gathers trajectories `chunk` of `batch`; `first_cut[c]` is the index of trajectory
    /// `c`'s first truncation row.
    fn gather(&self, batch: &TrajectoryBatch, chunk: &[usize], first_cut: &[usize]) -> Minibatch {
        let (t_len, o, w) = (batch.t_len, batch.obs_dim, batch.action_width);
        let format = batch.obs.format();
        let mut mb = Minibatch {
            obs: Observations::with_capacity(format, chunk.len() * t_len * o),
            final_obs: Observations::with_capacity(format, chunk.len() * o),
            ..Minibatch::default()
        };
        for &c in chunk {
            let steps = c * t_len..(c + 1) * t_len;
            mb.obs
                .extend_from(&batch.obs, steps.start * o..steps.end * o);
            mb.actions
                .extend_from_slice(&batch.actions[steps.start * w..steps.end * w]);
            mb.behaviour_log_probs
                .extend_from_slice(&batch.behaviour_log_probs[steps]);
            mb.final_obs
                .extend_from(&batch.bootstrap_obs, c * o..(c + 1) * o);
        }
        for &c in chunk {
            let (from, to) = (first_cut[c], first_cut[c + 1]);
            mb.final_obs
                .extend_from(&batch.truncation_obs, from * o..to * o);
        }
        mb
    }

    /// One update on the trajectories `kept` of `batch` (the others are masked out);
    /// `env_steps` (steps so far) drives the annealing.
    pub fn update(
        &mut self,
        batch: &TrajectoryBatch,
        kept: &[usize],
        env_steps: u64,
    ) -> UpdateStats {
        let cfg = &self.config;
        let lr = if cfg.anneal_lr {
            cfg.learning_rate * (1.0 - env_steps as f64 / self.total_steps.max(1) as f64).max(0.0)
        } else {
            cfg.learning_rate
        };
        let coefs = ImpalaCoefs {
            clip_coef: cfg.clip_coef,
            vf_coef: cfg.vf_coef,
            ent_coef: cfg.ent_coef,
        };
        let clip = VTraceClip {
            rho_bar: cfg.rho_bar,
            c_bar: cfg.c_bar,
            rho_bar_pg: cfg.rho_bar_pg,
            lambda: cfg.lambda,
        };
        let (gamma, epochs, norm_adv, max_grad_norm) = (
            cfg.gamma as f32,
            cfg.update_epochs,
            cfg.norm_adv,
            cfg.max_grad_norm,
        );
        let t_len = batch.t_len;
        let o = self.spec.obs_dim;
        let head = self.spec.action;
        let outputs = head.outputs();
        // Where each trajectory's truncation rows begin (and the last one's end).
        let mut first_cut = Vec::with_capacity(batch.trajectories() + 1);
        first_cut.push(0);
        for c in 0..batch.trajectories() {
            let cuts = batch.truncated[c * t_len..(c + 1) * t_len]
                .iter()
                .filter(|&&x| x)
                .count();
            first_cut.push(first_cut[c] + cuts);
        }
        let per_minibatch = kept.len().div_ceil(cfg.num_minibatches).max(1);
        let mut order = kept.to_vec();
        let mut stats = StepStats::default();
        let (mut ev_values, mut ev_targets) = (Vec::new(), Vec::new());
        for epoch in 0..epochs {
            self.rng.shuffle(&mut order);
            for chunk in order.chunks(per_minibatch) {
                let rows = chunk.len() * t_len;
                let mb = self.gather(batch, chunk, &first_cut);
                let d = &self.device;
                let t2 = |v: Vec<f32>, cols: usize| {
                    let n = v.len() / cols;
                    Tensor::<2>::from_data(TensorData::new(v, [n, cols]), d)
                };
                let t1 = |v: Vec<f32>| {
                    let n = v.len();
                    Tensor::<1>::from_data(TensorData::new(v, [n]), d)
                };
                let model = self.model.take().expect("model present");
                let obs = mb.obs.into_tensor(rows, d);
                let (policy, values) =
                    model.evaluate_with_values(obs, t2(action_rows(head, &mb.actions), outputs));
                let final_rows = mb.final_obs.len() / o;
                let final_values = model.values(mb.final_obs.into_tensor(final_rows, d));
                // The current network's view of the minibatch, read back once for V-trace.
                let read = Transaction::default()
                    .register(policy.log_probs.clone().inner())
                    .register(values.clone().inner())
                    .register(final_values.inner())
                    .execute();
                let host: Vec<Vec<f32>> = read
                    .into_iter()
                    .map(|d| d.convert::<f32>().try_into_vec::<f32>().expect("f32"))
                    .collect();
                let (log_probs, current_values, finals) = (&host[0], &host[1], &host[2]);
                let mut vs = Vec::with_capacity(rows);
                let mut advantages = Vec::with_capacity(rows);
                let mut cut_row = chunk.len();
                for (j, &c) in chunk.iter().enumerate() {
                    let steps = j * t_len..(j + 1) * t_len;
                    let global = c * t_len..(c + 1) * t_len;
                    let truncated = &batch.truncated[global.clone()];
                    let terminated = &batch.terminated[global.clone()];
                    let mut truncation_values = vec![0.0f32; t_len];
                    for (t, &cut) in truncated.iter().enumerate() {
                        if cut {
                            truncation_values[t] = finals[cut_row];
                            cut_row += 1;
                        }
                    }
                    let v = &current_values[steps.clone()];
                    let next = next_values(v, truncated, &truncation_values, finals[j]);
                    let log_rhos: Vec<f32> = log_probs[steps.clone()]
                        .iter()
                        .zip(&mb.behaviour_log_probs[steps])
                        .map(|(p, b)| p - b)
                        .collect();
                    let discounts: Vec<f32> = terminated
                        .iter()
                        .map(|&d| if d { 0.0 } else { gamma })
                        .collect();
                    let ends: Vec<bool> = terminated
                        .iter()
                        .zip(truncated)
                        .map(|(a, b)| a | b)
                        .collect();
                    let out = vtrace(
                        &log_rhos,
                        &batch.rewards[global],
                        v,
                        &next,
                        &discounts,
                        &ends,
                        clip,
                    );
                    vs.extend(out.vs);
                    advantages.extend(out.pg_advantages);
                }
                if epoch == 0 {
                    ev_values.extend_from_slice(current_values);
                    ev_targets.extend_from_slice(&vs);
                }
                if norm_adv {
                    normalize(&mut advantages);
                }
                let loss = impala_loss(
                    policy,
                    values,
                    t1(mb.behaviour_log_probs),
                    t1(advantages),
                    t1(vs),
                    coefs,
                );
                let grads = loss.total.clone().backward();
                let mut grads = GradientsParams::from_grads(grads, &model);
                let grad_norm = clip_global_norm(&model, &mut grads, max_grad_norm);
                self.model = Some(self.optimizer.step(lr, model, grads));
                stats.record(loss, grad_norm);
            }
        }
        stats.finish(
            explained_variance(&ev_values, &ev_targets),
            lr,
            kept.len() * t_len,
        )
    }
}
