//! The IMPALA trainer: owns the network on the run's compute engine and turns a batch of
//! trajectories into one update. Each minibatch (whole trajectories) is evaluated by the
//! current network, V-trace runs on the host from those values and log-probabilities, and the
//! loss's gradient at the heads ([`shoal_common::objective::head_grads`]) goes back through the
//! same forward pass.

use shoal_common::config::{ImpalaConfig, RunConfig};
use shoal_common::model::ModelSpec;
use shoal_common::objective::{LossCoefs, Minibatch as LossRows, log_probs};
use shoal_common::obs::Observations;
use shoal_common::returns::next_values;
use shoal_common::rng::Rng;
use shoal_common::vtrace::{VTraceClip, vtrace};
use shoal_compute::{Engine, Optimizer, Rows, Snapshot, Training, Want};

use super::batch::TrajectoryBatch;
use crate::algo::ppo::UpdateStats;
use crate::algo::ppo::loss::{explained_variance, normalize};
use crate::algo::ppo::trainer::{StepStats, loss_step};
use crate::checkpoint::CheckpointError;

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
    model: Box<dyn Training>,
    rng: Rng,
}

impl ImpalaTrainer {
    /// A trainer on `engine` starting from `initial` parameters; `shuffle_seed` fixes the
    /// minibatch order.
    pub fn new(
        config: &RunConfig,
        spec: ModelSpec,
        initial: &[f32],
        engine: &Engine,
        shuffle_seed: u64,
    ) -> Self {
        let optimizer = Optimizer::Adam {
            epsilon: config.impala.adam_eps,
        };
        Self {
            model: engine.training(&spec, initial, optimizer),
            spec,
            config: config.impala.clone(),
            total_steps: config.total_steps,
            rng: Rng::new(shuffle_seed),
        }
    }

    /// Current parameters, flattened in layout order.
    pub fn params(&self) -> Vec<f32> {
        self.model.params()
    }

    /// Writes the optimizer state into the checkpoint directory `dir`.
    pub fn save_optimizer(&self, dir: &std::path::Path) -> Result<(), CheckpointError> {
        Ok(self.model.save_optimizer(dir)?)
    }

    /// Reads the optimizer state [`ImpalaTrainer::save_optimizer`] wrote.
    pub fn load_optimizer(&mut self, dir: &std::path::Path) -> Result<(), CheckpointError> {
        Ok(self.model.load_optimizer(dir)?)
    }

    /// The model and optimizer as they are now.
    pub fn snapshot(&self) -> Snapshot {
        self.model.snapshot()
    }

    /// Returns to a [`ImpalaTrainer::snapshot`].
    pub fn rollback(&mut self, snapshot: Snapshot) {
        self.model.restore(snapshot);
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
        let coefs = LossCoefs {
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
        let head = self.spec.action;
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
                // The current network's view of the minibatch, for V-trace.
                let heads = self.model.forward(Rows::from(&mb.obs), Want::BOTH);
                let finals = self
                    .model
                    .infer(Rows::from(&mb.final_obs), Want::VALUE)
                    .values;
                let log_std = self.model.log_std();
                let log_probs = log_probs(head, &heads.policy, &log_std, &mb.actions);
                let current_values = &heads.values;
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
                let rows_mb = LossRows {
                    actions: &mb.actions,
                    old_log_probs: &mb.behaviour_log_probs,
                    advantages: &advantages,
                    returns: &vs,
                };
                let (sums, norm) = loss_step(
                    self.model.as_mut(),
                    head,
                    &heads,
                    &rows_mb,
                    coefs,
                    lr,
                    max_grad_norm,
                );
                stats.record(&sums, rows, norm);
            }
        }
        stats.finish(
            explained_variance(&ev_values, &ev_targets),
            lr,
            kept.len() * t_len,
        )
    }
}
