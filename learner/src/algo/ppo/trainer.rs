//! The PPO trainer: owns the network (on the run's compute engine) and turns a batch into one
//! update (epochs × minibatches). The loss's gradient at the heads is
//! [`shoal_common::objective::head_grads`]; the engine does the rest. Only the trainer thread
//! touches it.

use shoal_common::config::{PpoConfig, RunConfig};
use shoal_common::model::{ActionHead, ModelSpec};
use shoal_common::objective::{LossCoefs, LossSums, Minibatch, head_grads};
use shoal_common::obs::Observations;
use shoal_common::rng::Rng;
use shoal_compute::{Engine, HeadGrads, Heads, Optimizer, Rows, Snapshot, Training, Want};

use super::batch::Batch;
use super::loss::{explained_variance, normalize};
use crate::checkpoint::CheckpointError;

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

/// The sums of an update's minibatch statistics (PPO and IMPALA).
#[derive(Default)]
pub(crate) struct StepStats {
    sums: [f64; 6],
    steps: usize,
}

impl StepStats {
    /// Records one step's loss sums over its `rows` (their means are recorded) and its
    /// gradient norm.
    pub(crate) fn record(&mut self, s: &LossSums, rows: usize, grad_norm: f64) {
        let n = rows.max(1) as f64;
        let means = [s.policy, s.value, s.entropy, s.approx_kl, s.clipped].map(|v| v / n);
        for (sum, v) in self
            .sums
            .iter_mut()
            .zip(means.into_iter().chain([grad_norm]))
        {
            *sum += v;
        }
        self.steps += 1;
    }

    /// The update's means.
    pub(crate) fn finish(
        self,
        explained_variance: f64,
        learning_rate: f64,
        batch_size: usize,
    ) -> UpdateStats {
        let mean = |k: usize| self.sums[k] / self.steps.max(1) as f64;
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

/// The rest of one training step of `model` after its forward pass gave `heads` for the
/// minibatch `mb`: the loss's gradient at the heads, backward, clip and Adam. Returns the loss
/// sums and the gradient norm (PPO and IMPALA).
pub(crate) fn loss_step(
    model: &mut dyn Training,
    head: ActionHead,
    heads: &Heads,
    mb: &Minibatch<'_>,
    coefs: LossCoefs,
    lr: f64,
    max_grad_norm: f64,
) -> (LossSums, f64) {
    let m = mb.len();
    let log_std = model.log_std();
    let mut d_out = vec![0.0f32; heads.policy.len()];
    let mut d_values = vec![0.0f32; m];
    let mut d_log_std = vec![0.0f32; log_std.len()];
    let sums = head_grads(
        head,
        &heads.policy,
        &heads.values,
        &log_std,
        mb,
        m,
        coefs,
        &mut d_out,
        &mut d_values,
        &mut d_log_std,
    );
    model.backward(HeadGrads {
        policy: Some(&d_out),
        values: Some(&d_values),
        log_std: (!d_log_std.is_empty()).then_some(&d_log_std[..]),
    });
    (sums, model.step(lr, max_grad_norm))
}

/// Owns the network and its optimizer.
pub struct PpoTrainer {
    spec: ModelSpec,
    ppo: PpoConfig,
    total_steps: u64,
    model: Box<dyn Training>,
    rng: Rng,
}

impl PpoTrainer {
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
            epsilon: config.ppo.adam_eps,
        };
        Self {
            model: engine.training(&spec, initial, optimizer),
            spec,
            ppo: config.ppo.clone(),
            total_steps: config.total_steps,
            rng: Rng::new(shuffle_seed),
        }
    }

    /// The model spec.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Current parameters, flattened in layout order.
    pub fn params(&self) -> Vec<f32> {
        self.model.params()
    }

    /// Writes the optimizer state into the checkpoint directory `dir` (burn's file format
    /// whichever engine trains).
    pub fn save_optimizer(&self, dir: &std::path::Path) -> Result<(), CheckpointError> {
        Ok(self.model.save_optimizer(dir)?)
    }

    /// The model and optimizer as they are now, to return to with [`PpoTrainer::rollback`].
    pub fn snapshot(&self) -> Snapshot {
        self.model.snapshot()
    }

    /// Returns to a [`PpoTrainer::snapshot`].
    pub fn rollback(&mut self, snapshot: Snapshot) {
        self.model.restore(snapshot);
    }

    /// Reads the optimizer state [`PpoTrainer::save_optimizer`] wrote.
    pub fn load_optimizer(&mut self, dir: &std::path::Path) -> Result<(), CheckpointError> {
        Ok(self.model.load_optimizer(dir)?)
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
            clip_coef: Some(clip_coef),
            vf_coef: self.ppo.vf_coef,
            ent_coef: self.ppo.ent_coef,
        };
        let b = batch.len();
        let obs_dim = self.spec.obs_dim;
        let head = self.spec.action;
        let width = head.action_width();
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
                let mb = Minibatch {
                    actions: &actions,
                    old_log_probs: &old_lp,
                    advantages: &adv,
                    returns: &ret,
                };
                let heads = self.model.forward(Rows::from(&obs), Want::BOTH);
                let (sums, norm) = loss_step(
                    self.model.as_mut(),
                    head,
                    &heads,
                    &mb,
                    coefs,
                    lr,
                    self.ppo.max_grad_norm,
                );
                stats.record(&sums, m, norm);
            }
        }
        stats.finish(explained_variance(&batch.values, &batch.returns), lr, b)
    }
}

#[cfg(test)]
mod tests {
    use super::super::loss::ppo_loss;
    use super::*;
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::{Device, Tensor, TensorData};
    use shoal_common::model::action_rows;
    use shoal_common::obs::ObsFormat;
    use shoal_compute::burn_engine::clip_global_norm;
    use shoal_compute::testing::{observations, params, specs};

    /// A seeded batch of `rows` samples for `spec`.
    fn seeded_batch(spec: &ModelSpec, rows: usize, seed: u64) -> Batch {
        let mut rng = Rng::new(seed);
        let (bytes, floats) = observations(spec, rows, &mut rng);
        let mut normals =
            |n: usize, s: f64| -> Vec<f32> { (0..n).map(|_| (rng.normal() * s) as f32).collect() };
        let actions = match spec.action {
            ActionHead::Categorical(n) => (0..rows).map(|i| (i * 7 % n) as f32).collect(),
            ActionHead::Gaussian(a) => normals(rows * a, 1.0),
        };
        let obs = if bytes.is_empty() {
            Observations::from_f32(ObsFormat::F32, &floats)
        } else {
            Observations::U8(bytes)
        };
        Batch {
            obs,
            actions,
            log_probs: normals(rows, 0.2).iter().map(|v| v - 0.7).collect(),
            advantages: normals(rows, 1.0),
            returns: normals(rows, 3.0),
            values: normals(rows, 3.0),
        }
    }

    /// One update as burn's autodiff computes it from the tensor loss ([`ppo_loss`]): the
    /// reference both engines' head gradients are held to. Minibatches in `order`, no
    /// advantage normalisation.
    fn autodiff_update(
        config: &RunConfig,
        spec: &ModelSpec,
        initial: &[f32],
        batch: &Batch,
        order: &[Vec<usize>],
    ) -> Vec<f32> {
        let device = Device::flex().autodiff();
        let mut model = spec.build(initial, &device);
        let mut adam = AdamConfig::new()
            .with_epsilon(config.ppo.adam_eps as f32)
            .init();
        let p = &config.ppo;
        let coefs = LossCoefs {
            clip_coef: Some(p.clip_coef),
            vf_coef: p.vf_coef,
            ent_coef: p.ent_coef,
        };
        let (head, d) = (spec.action, spec.obs_dim);
        for chunk in order {
            let m = chunk.len();
            let mut obs = Observations::with_capacity(batch.obs.format(), m * d);
            let pick = |v: &[f32], w: usize| -> Vec<f32> {
                chunk
                    .iter()
                    .flat_map(|&i| v[i * w..(i + 1) * w].to_vec())
                    .collect()
            };
            for &i in chunk {
                obs.extend_from(&batch.obs, i * d..(i + 1) * d);
            }
            let t1 = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [m]), &device);
            let actions = Tensor::<2>::from_data(
                TensorData::new(
                    action_rows(head, &pick(&batch.actions, head.action_width())),
                    [m, head.outputs()],
                ),
                &device,
            );
            let (policy, values) = model.evaluate_with_values(obs.into_tensor(m, &device), actions);
            let loss = ppo_loss(
                policy,
                values,
                t1(pick(&batch.log_probs, 1)),
                t1(pick(&batch.advantages, 1)),
                t1(pick(&batch.returns, 1)),
                coefs,
            );
            let mut grads = GradientsParams::from_grads(loss.total.backward(), &model);
            clip_global_norm(&model, &mut grads, p.max_grad_norm);
            model = adam.step(p.learning_rate, model, grads);
        }
        model.to_flat()
    }

    #[test]
    fn one_update_equals_burns_autodiff_of_the_loss_on_both_engines_for_every_encoder() {
        let mut config = RunConfig::default();
        config.ppo.update_epochs = 2;
        config.ppo.num_minibatches = 2;
        config.ppo.ent_coef = 0.01;
        config.ppo.norm_adv = false;
        config.ppo.anneal_lr = false;
        config.ppo.anneal_clip_coef = false;
        // A small rate: after several Adam steps, differences of rounding stay small.
        config.ppo.learning_rate = 1e-4;
        for (name, spec) in specs() {
            let rows = if spec.obs_dim > 10_000 { 8 } else { 64 };
            let initial = params(&spec, 3);
            let batch = seeded_batch(&spec, rows, 4);
            // The order the trainers shuffle into (the same seed).
            let mut rng = Rng::new(7);
            let mut indices: Vec<usize> = (0..rows).collect();
            let mut order = Vec::new();
            for _ in 0..config.ppo.update_epochs {
                rng.shuffle(&mut indices);
                order.extend(indices.chunks(rows / 2).map(<[usize]>::to_vec));
            }
            let want = autodiff_update(&config, &spec, &initial, &batch, &order);
            let moved = max_abs_diff(&want, &initial);
            assert!(
                moved > 1e-5,
                "{name}: the update moved the parameters ({moved})"
            );
            for engine in [
                Engine::Burn {
                    device: Device::flex(),
                },
                Engine::Host { threads: 1 },
                Engine::Host { threads: 2 },
            ] {
                let mut trainer = PpoTrainer::new(&config, spec.clone(), &initial, &engine, 7);
                let stats = trainer.update(&batch, 0);
                assert!(
                    stats.grad_norm.is_finite() && stats.entropy > 0.0,
                    "{name}: {stats:?}"
                );
                let worst = max_abs_diff(&trainer.params(), &want);
                assert!(
                    worst <= 1e-5 * moved.max(1.0),
                    "{name} on {engine:?}: parameters differ by up to {worst} (moved {moved})"
                );
            }
        }
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn a_rollback_returns_to_the_snapshot() {
        let config = RunConfig::default();
        let (_, spec) = specs().remove(0);
        let initial = params(&spec, 1);
        let batch = seeded_batch(&spec, 128, 2);
        let mut trainer = PpoTrainer::new(&config, spec, &initial, &Engine::Host { threads: 1 }, 7);
        let snapshot = trainer.snapshot();
        trainer.update(&batch, 0);
        assert_ne!(trainer.params(), initial);
        trainer.rollback(snapshot);
        assert_eq!(trainer.params(), initial);
    }

    /// The optimizer files of the committed format-2 checkpoints (written by burn's Adam) load
    /// on both engines and step alike: moments and step count are read.
    #[test]
    fn burns_files_in_the_committed_checkpoints_load_on_both_engines() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/checkpoints");
        for run in ["v2-ppo", "v2-dqn"] {
            let config = RunConfig::load(&root.join(run).join("config.toml")).unwrap();
            let spec = crate::model_spec(&config).unwrap();
            let dir = root.join(run).join("checkpoints/final");
            let initial = crate::checkpoint::load_params(&dir, &spec.layout()).unwrap();
            let batch = seeded_batch(&spec, 16, 3);
            let stepped = |engine: &Engine, load: bool| {
                let adam = Optimizer::Adam { epsilon: 1e-5 };
                let mut t = engine.training(&spec, &initial, adam);
                if load {
                    t.load_optimizer(&dir).unwrap();
                }
                let heads = t.forward(Rows::from(&batch.obs), Want::BOTH);
                // DQN trains the policy head only: its file has no state for the value network.
                let dqn = run.ends_with("dqn");
                t.backward(HeadGrads {
                    policy: Some(&heads.policy),
                    values: (!dqn).then_some(&heads.values[..]),
                    log_std: None,
                });
                t.step(1e-3, 1e9);
                t.params()
            };
            let burn = Engine::Burn {
                device: Device::flex(),
            };
            let want = stepped(&burn, true);
            let host = stepped(&Engine::Host { threads: 1 }, true);
            assert!(max_abs_diff(&host, &want) < 1e-6, "{run}");
            let fresh = stepped(&burn, false);
            assert!(
                max_abs_diff(&fresh, &want) > 1e-5,
                "{run}: the file's state changes the step"
            );
        }
    }
}
