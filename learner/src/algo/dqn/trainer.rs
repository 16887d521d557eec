//! The DQN trainer: online and target Q-networks, Adam and the replay buffer.
//! Only the trainer thread touches it.
//!
//! The Q-network is the policy network of the shared actor-critic (its outputs are read as
//! Q-values); DQN leaves the value network unused. Both networks live on the run's compute
//! engine: the online one trains from the weighted Huber loss's gradient at the chosen actions'
//! Q-values ([`q_step`]), the target one only infers.

use std::io::Write;
use std::path::Path;

use shoal_common::codec::encode_f32;
use shoal_common::config::RunConfig;
use shoal_common::model::ModelSpec;
use shoal_common::rng::Rng;
use shoal_common::transition::TransitionBatch;
use shoal_compute::{Engine, HeadGrads, Inference, Optimizer, Rows, Training, Want};

use super::loss::{double_dqn_target, huber_grad, huber_value, polyak_update};
use super::replay::{Prioritized, ReplayBuffer, SampledBatch, Transition};
use crate::checkpoint::CheckpointError;

/// Statistics of one update.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DqnStats {
    /// Weighted Huber loss.
    pub loss: f64,
    /// Mean Q(s, a) of the sampled transitions.
    pub q_mean: f64,
    /// Mean |TD error|.
    pub td_abs_mean: f64,
}

/// Owns the Q-networks, the optimizer and the replay buffer.
pub struct DqnTrainer {
    spec: ModelSpec,
    config: shoal_common::config::DqnConfig,
    /// The online network and its optimizer.
    online: Box<dyn Training>,
    /// The target network (built from `target_params`).
    target: Box<dyn Inference>,
    /// The target network's parameters in layout order (Polyak averaging mixes into them).
    target_params: Vec<f32>,
    /// The replay buffer.
    pub replay: ReplayBuffer,
    rng: Rng,
}

impl DqnTrainer {
    /// A trainer on `engine` from `initial` parameters; `seed` drives replay sampling.
    pub fn new(
        config: &RunConfig,
        spec: ModelSpec,
        initial: &[f32],
        engine: &Engine,
        seed: u64,
    ) -> Self {
        let d = &config.dqn;
        let prioritized = d.prioritized.then_some(Prioritized {
            alpha: d.priority_alpha,
            epsilon: 1e-6,
        });
        let optimizer = Optimizer::Adam {
            epsilon: d.adam_eps,
        };
        Self {
            online: engine.training(&spec, initial, optimizer),
            target: engine.inference(&spec, initial),
            target_params: initial.to_vec(),
            replay: ReplayBuffer::new(
                d.buffer_size,
                (spec.obs_dim, spec.obs_format()),
                prioritized,
            ),
            config: d.clone(),
            spec,
            rng: Rng::new(seed),
        }
    }

    /// Adds a batch of transitions to the replay buffer.
    pub fn insert(&mut self, batch: &TransitionBatch) {
        for i in 0..batch.len() {
            self.replay.push(&Transition {
                row: i,
                obs: &batch.obs,
                action: batch.actions[i],
                reward: batch.rewards[i],
                discount: batch.discounts[i],
                next_obs: &batch.next_obs,
            });
        }
    }

    /// Moves the target network towards the online one: `θ' ← τ·θ + (1 − τ)·θ'` (a copy when
    /// `τ = 1`).
    pub fn sync_target(&mut self) {
        let online = self.params();
        polyak_update(&mut self.target_params, &online, self.config.tau);
        self.target.load(&self.target_params);
    }

    /// The online network's Q-values `[rows, A]` for the rows `obs`.
    pub fn q_values(&mut self, obs: &[f32]) -> Vec<f32> {
        self.online.infer(Rows::F32(obs), Want::POLICY).policy
    }

    /// Current online parameters in layout order.
    pub fn params(&self) -> Vec<f32> {
        self.online.params()
    }

    /// Writes the optimizer state (burn's file format either way).
    fn save_optimizer(&self, dir: &Path) -> Result<(), CheckpointError> {
        Ok(self.online.save_optimizer(dir)?)
    }

    /// Reads what [`DqnTrainer::save_optimizer`] wrote.
    fn load_optimizer(&mut self, dir: &Path) -> Result<(), CheckpointError> {
        Ok(self.online.load_optimizer(dir)?)
    }

    /// Writes the optimizer state, the target network (`target.bin`) and, when the config
    /// asks for it, the replay buffer (`replay.bin`) into the checkpoint directory `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), CheckpointError> {
        self.save_optimizer(dir)?;
        let target = dir.join("target.bin");
        std::fs::write(&target, encode_f32(&self.target_params))
            .map_err(CheckpointError::io(&target))?;
        if self.config.checkpoint_replay {
            let path = dir.join("replay.bin");
            let io = CheckpointError::io(&path);
            let write = || -> std::io::Result<()> {
                let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
                self.replay.write_to(&mut w)?;
                w.flush()
            };
            write().map_err(io)?;
        }
        Ok(())
    }

    /// Restores what [`DqnTrainer::save`] wrote (a missing `replay.bin` leaves the buffer
    /// empty: it refills before learning resumes).
    pub fn restore(&mut self, dir: &Path) -> Result<(), CheckpointError> {
        self.load_optimizer(dir)?;
        let path = dir.join("target.bin");
        let bytes = std::fs::read(&path).map_err(CheckpointError::io(&path))?;
        let target = self
            .spec
            .layout()
            .decode(&bytes)
            .map_err(|e| CheckpointError::state(dir, format!("target.bin: {e}")))?;
        self.target.load(&target);
        self.target_params = target;
        let path = dir.join("replay.bin");
        if self.config.checkpoint_replay && path.exists() {
            let file = std::fs::File::open(&path).map_err(CheckpointError::io(&path))?;
            self.replay
                .read_from(&mut std::io::BufReader::new(file))
                .map_err(|e| CheckpointError::state(dir, format!("replay.bin: {e}")))?;
        }
        Ok(())
    }

    /// One double-DQN update on a sampled batch (importance weights `beta` when prioritised).
    /// An update whose loss or gradient is not finite is undone (the network and optimizer go
    /// back to where they were) and reported as `None`: the model never takes a NaN.
    pub fn update(&mut self, beta: f64) -> Option<DqnStats> {
        let b = self.config.batch_size;
        let mut s = self.replay.sample(b, beta, &mut self.rng);
        let indices = std::mem::take(&mut s.indices);
        let (stats, td) = q_step(
            self.online.as_mut(),
            self.target.as_mut(),
            &s,
            self.config.learning_rate,
            self.config.max_grad_norm,
        )?;
        self.replay.update_priorities(&indices, &td);
        Some(stats)
    }
}

/// One double-DQN step of `online` on `sample`, bootstrapping from `target`: Q(s, ·) on the
/// online network (kept for the backward pass), the double-DQN targets
/// ([`double_dqn_target`]), the weighted Huber loss's gradient at the chosen actions'
/// Q-values ([`huber_grad`]), backward, global-norm clipping and Adam. The statistics and each
/// transition's TD error, or `None` (nothing changed) when the loss or the gradient is not
/// finite.
pub fn q_step(
    online: &mut dyn Training,
    target: &mut dyn Inference,
    sample: &SampledBatch,
    learning_rate: f64,
    max_grad_norm: f64,
) -> Option<(DqnStats, Vec<f32>)> {
    let b = sample.actions.len();
    let q_all = online.forward(Rows::from(&sample.obs), Want::POLICY).policy;
    let q_next = online
        .infer(Rows::from(&sample.next_obs), Want::POLICY)
        .policy;
    let q_target = target
        .infer(Rows::from(&sample.next_obs), Want::POLICY)
        .policy;
    let a = q_all.len() / b.max(1);
    let mut d_out = vec![0.0f32; b * a];
    let mut td = Vec::with_capacity(b);
    let (mut loss, mut q_sum) = (0.0f64, 0.0f64);
    for i in 0..b {
        let row = i * a..(i + 1) * a;
        let y = double_dqn_target(
            sample.rewards[i],
            sample.discounts[i],
            &q_next[row.clone()],
            &q_target[row],
        );
        let action = sample.actions[i] as usize;
        let q = q_all[i * a + action];
        let delta = q - y;
        let w = sample.weights[i];
        loss += huber_value(delta as f64) * w as f64;
        q_sum += q as f64;
        d_out[i * a + action] = w * huber_grad(delta) / b as f32;
        td.push(delta);
    }
    let loss = loss / b as f64;
    if !loss.is_finite() {
        return None;
    }
    online.backward(HeadGrads {
        policy: Some(&d_out),
        ..HeadGrads::default()
    });
    // A norm that is not finite steps nothing.
    let norm = online.step(learning_rate, max_grad_norm);
    if !norm.is_finite() {
        return None;
    }
    let stats = DqnStats {
        loss,
        q_mean: q_sum / b as f64,
        td_abs_mean: td.iter().map(|&x| x.abs() as f64).sum::<f64>() / b as f64,
    };
    Some((stats, td))
}

#[cfg(test)]
mod tests {
    use super::super::loss::huber;
    use super::*;
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::{Device, Int, Tensor, TensorData};
    use shoal_common::model::{ActionHead, action_rows};
    use shoal_common::obs::{ObsFormat, Observations};
    use shoal_compute::burn_engine::clip_global_norm;
    use shoal_compute::testing::{observations, params, specs};

    /// `rows` seeded transitions for `spec` (categorical actions).
    fn transitions(spec: &ModelSpec, rows: usize, seed: u64) -> TransitionBatch {
        let mut rng = Rng::new(seed);
        let mut obs = || {
            let (bytes, floats) = observations(spec, rows, &mut rng);
            if bytes.is_empty() {
                Observations::from_f32(ObsFormat::F32, &floats)
            } else {
                Observations::U8(bytes)
            }
        };
        let (obs, next_obs) = (obs(), obs());
        let a = spec.action.outputs();
        TransitionBatch {
            obs,
            next_obs,
            actions: (0..rows).map(|i| (i * 5 % a) as u32).collect(),
            rewards: (0..rows).map(|_| (rng.normal() * 2.0) as f32).collect(),
            discounts: (0..rows)
                .map(|i| if i % 7 == 0 { 0.0 } else { 0.99 })
                .collect(),
            ..TransitionBatch::default()
        }
    }

    /// [`q_step`] as burn's autodiff computes it from the tensor loss ([`huber`]): the
    /// reference the gradient at the Q-values is held to. The online parameters after one step.
    fn autodiff_step(
        spec: &ModelSpec,
        online: &[f32],
        target: &[f32],
        s: &SampledBatch,
        lr: f64,
        max_norm: f64,
    ) -> Vec<f32> {
        let d = &Device::flex().autodiff();
        let online = spec.build(online, d);
        let target = spec.build(target, d);
        let b = s.actions.len();
        let a = spec.action.outputs();
        let t1 = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [b]), d);
        let actions: Vec<f32> = s.actions.iter().map(|&x| x as f32).collect();
        let one_hot = Tensor::<2>::from_data(
            TensorData::new(action_rows(spec.action, &actions), [b, a]),
            d,
        );
        let obs = s.obs.clone().into_tensor(b, d);
        let next = s.next_obs.clone().into_tensor(b, d);
        let q: Tensor<1> = (online.logits(obs) * one_hot).sum_dim(1).squeeze_dim(1);
        let best: Tensor<2, Int> = online.logits(next.clone()).detach().argmax(1);
        let q_next: Tensor<1> = target.logits(next).detach().gather(1, best).squeeze_dim(1);
        let y = t1(s.rewards.clone()) + t1(s.discounts.clone()) * q_next;
        let loss = (huber(q - y.detach()) * t1(s.weights.clone())).mean();
        let mut grads = GradientsParams::from_grads(loss.backward(), &online);
        clip_global_norm(&online, &mut grads, max_norm);
        let mut adam = AdamConfig::new().with_epsilon(1e-8).init();
        adam.step(lr, online, grads).to_flat()
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn a_step_equals_burns_autodiff_of_the_loss_on_both_engines_for_every_encoder() {
        for (name, spec) in specs() {
            if !matches!(spec.action, ActionHead::Categorical(_)) {
                continue;
            }
            let rows = if spec.obs_dim > 10_000 { 6 } else { 48 };
            let batch = transitions(&spec, rows, 9);
            let mut config = RunConfig::default();
            config.dqn.prioritized = true;
            let replay_only = Engine::Host { threads: 1 };
            let mut t = DqnTrainer::new(&config, spec.clone(), &params(&spec, 1), &replay_only, 1);
            t.insert(&batch);
            let sample = t.replay.sample(rows, 0.4, &mut Rng::new(2));
            let (online, target) = (params(&spec, 1), params(&spec, 2));
            // A small rate: Adam divides each gradient by its own size, so float differences in a
            // near-zero one move its parameter by up to the rate.
            let want = autodiff_step(&spec, &online, &target, &sample, 1e-4, 0.5);
            let moved = max_abs_diff(&want, &online);
            assert!(
                moved > 1e-5,
                "{name}: the step moved the parameters ({moved})"
            );
            for engine in [
                Engine::Burn {
                    device: Device::flex(),
                },
                Engine::Host { threads: 2 },
            ] {
                let mut net = engine.training(&spec, &online, Optimizer::Adam { epsilon: 1e-8 });
                let mut tgt = engine.inference(&spec, &target);
                q_step(net.as_mut(), tgt.as_mut(), &sample, 1e-4, 0.5).expect("finite");
                let worst = max_abs_diff(&net.params(), &want);
                assert!(
                    worst <= 1e-5,
                    "{name} on {}: parameters differ by up to {worst}",
                    engine.name()
                );
            }
        }
    }

    #[test]
    fn updates_on_the_host_give_the_same_parameters_as_on_burn() {
        let mut config = RunConfig::default();
        config.dqn.batch_size = 64;
        config.dqn.prioritized = true;
        config.dqn.max_grad_norm = 10.0;
        config.dqn.learning_rate = 1e-3;
        let (_, spec) = specs().remove(1);
        let batch = transitions(&spec, 500, 5);
        let initial = spec.init_params(2);
        let trained = |engine: Engine| {
            let mut t = DqnTrainer::new(&config, spec.clone(), &initial, &engine, 3);
            t.insert(&batch);
            let mut stats = Vec::new();
            for k in 0..20 {
                stats.push(t.update(0.4).expect("finite"));
                if k % 5 == 4 {
                    t.sync_target();
                }
            }
            (t.params(), stats)
        };
        let (want, want_stats) = trained(Engine::Burn {
            device: Device::flex(),
        });
        let (got, got_stats) = trained(Engine::Host { threads: 1 });
        let moved = max_abs_diff(&want, &initial);
        let worst = max_abs_diff(&got, &want);
        assert!(moved > 1e-3, "the updates moved the parameters ({moved})");
        assert!(
            worst < 1e-5,
            "parameters differ by up to {worst} (moved {moved})"
        );
        for (g, w) in got_stats.iter().zip(&want_stats) {
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-4 * (1.0 + b.abs());
            assert!(
                close(g.loss, w.loss) && close(g.q_mean, w.q_mean),
                "{g:?} vs {w:?}"
            );
            assert!(close(g.td_abs_mean, w.td_abs_mean));
        }
    }
}
