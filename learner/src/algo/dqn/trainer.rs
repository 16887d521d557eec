//! The DQN trainer: online and target Q-networks, Adam and the replay buffer.
//! Only the trainer thread touches it.
//!
//! The Q-network is the policy network of the shared [`ActorCritic`] (its outputs are read as
//! Q-values); DQN leaves the value network unused. `mlp` Q-networks on the CPU train on the host
//! ([`super::dense`]), every other one through burn's autodiff.

use std::io::Write;
use std::path::Path;

use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData, Transaction};
use shoal_common::codec::encode_f32;
use shoal_common::config::RunConfig;
use shoal_common::model::{ActorCritic, ModelSpec, action_rows};
use shoal_common::rng::Rng;
use shoal_common::transition::TransitionBatch;

use super::dense::DenseDqn;
use super::loss::{huber, polyak_update};
use super::replay::{Prioritized, ReplayBuffer, Transition};
use crate::checkpoint::CheckpointError;
use crate::grad_clip::clip_global_norm;

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

/// Where the Q-networks and the optimizer live.
#[expect(
    clippy::large_enum_variant,
    reason = "one per trainer (or per update), moved rarely: boxing saves nothing that matters"
)]
enum Engine {
    /// burn's autodiff on the training device.
    Burn {
        online: Option<ActorCritic>,
        /// Built from `target_params` (on the device without autodiff).
        target: ActorCritic,
        optimizer: ModuleOptimizer,
    },
    /// The host update for `mlp` Q-networks (it reads `target_params` directly).
    Dense(Box<DenseDqn>),
}

/// Owns the Q-networks, the optimizer and the replay buffer.
pub struct DqnTrainer {
    spec: ModelSpec,
    config: shoal_common::config::DqnConfig,
    /// The autodiff device the online network trains on.
    device: Device,
    /// The same device without autodiff: the target side of the loss builds no graph.
    base: Device,
    engine: Engine,
    /// The target network's parameters in layout order (Polyak averaging mixes into them).
    target_params: Vec<f32>,
    /// The replay buffer.
    pub replay: ReplayBuffer,
    rng: Rng,
}

impl DqnTrainer {
    /// A trainer on `device` from `initial` parameters; `seed` drives replay sampling.
    pub fn new(
        config: &RunConfig,
        spec: ModelSpec,
        initial: &[f32],
        device: Device,
        seed: u64,
    ) -> Self {
        let dense = crate::dense::model::enabled(config, &device)
            .then(|| DenseDqn::new(&spec, initial, config.dqn.adam_eps))
            .flatten();
        let base = device.clone();
        let device = device.autodiff();
        let d = &config.dqn;
        if dense.is_some() {
            tracing::info!("DQN trains on the host path (learner.dense_mlp)");
        }
        let engine = match dense {
            Some(dense) => Engine::Dense(Box::new(dense)),
            None => Engine::Burn {
                online: Some(spec.build(initial, &device)),
                target: spec.build(initial, &base),
                optimizer: AdamConfig::new().with_epsilon(d.adam_eps as f32).init(),
            },
        };
        let prioritized = d.prioritized.then_some(Prioritized {
            alpha: d.priority_alpha,
            epsilon: 1e-6,
        });
        Self {
            engine,
            target_params: initial.to_vec(),
            replay: ReplayBuffer::new(
                d.buffer_size,
                (spec.obs_dim, spec.obs_format()),
                prioritized,
            ),
            config: d.clone(),
            spec,
            device,
            base,
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
        if let Engine::Burn { target, .. } = &mut self.engine {
            *target = self.spec.build(&self.target_params, &self.base);
        }
    }

    /// Whether the host update trains this Q-network (else burn's autodiff).
    pub fn is_dense(&self) -> bool {
        matches!(self.engine, Engine::Dense(_))
    }

    /// Current online parameters in layout order.
    pub fn params(&self) -> Vec<f32> {
        match &self.engine {
            Engine::Burn { online, .. } => {
                online.as_ref().expect("online network present").to_flat()
            }
            Engine::Dense(dense) => dense.model().params().to_vec(),
        }
    }

    /// Writes the optimizer state (burn's file format either way).
    fn save_optimizer(&self, dir: &Path) -> Result<(), CheckpointError> {
        match &self.engine {
            Engine::Burn { optimizer, .. } => crate::checkpoint::save_optimizer(optimizer, dir),
            Engine::Dense(dense) => dense.model().save_optimizer(dir),
        }
    }

    /// Reads what [`DqnTrainer::save_optimizer`] wrote.
    fn load_optimizer(&mut self, dir: &Path) -> Result<(), CheckpointError> {
        match &mut self.engine {
            Engine::Burn { optimizer, .. } => crate::checkpoint::load_optimizer(optimizer, dir),
            Engine::Dense(dense) => dense.model_mut().load_optimizer(dir),
        }
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
        if let Engine::Burn { target: t, .. } = &mut self.engine {
            *t = self.spec.build(&target, &self.base);
        }
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
        let (stats, td) = match &mut self.engine {
            Engine::Dense(dense) => dense.update(
                &s,
                &self.target_params,
                self.config.learning_rate,
                self.config.max_grad_norm,
            )?,
            Engine::Burn {
                online,
                target,
                optimizer,
            } => burn_update(
                &self.spec,
                &self.config,
                &self.device,
                online,
                target,
                optimizer,
                s,
            )?,
        };
        self.replay.update_priorities(&indices, &td);
        Some(stats)
    }
}

/// The update through burn's autodiff (any Q-network), as [`DqnTrainer::update`] describes it;
/// the statistics and the TD errors.
fn burn_update(
    spec: &ModelSpec,
    config: &shoal_common::config::DqnConfig,
    d: &Device,
    online_slot: &mut Option<ActorCritic>,
    target: &ActorCritic,
    optimizer: &mut ModuleOptimizer,
    s: super::replay::SampledBatch,
) -> Option<(DqnStats, Vec<f32>)> {
    let b = s.actions.len();
    let a = spec.action.outputs();
    let t2 = |v: Vec<f32>, cols: usize| Tensor::<2>::from_data(TensorData::new(v, [b, cols]), d);
    let t1 = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [b]), d);
    let actions: Vec<f32> = s.actions.iter().map(|&x| x as f32).collect();
    let one_hot = t2(action_rows(spec.action, &actions), a);
    let obs = s.obs.into_tensor(b, d);
    let next = s.next_obs.into_tensor(b, d);
    let online = online_slot.take().expect("online network present");
    let before = (online.clone(), optimizer.clone());
    let q: Tensor<1> = (online.logits(obs) * one_hot).sum_dim(1).squeeze_dim(1);
    // y = r + γ^m Q_target(s', argmax_a Q_online(s', a)), outside the graph.
    let best: Tensor<2, Int> = online.logits(next.clone()).detach().argmax(1);
    let q_next: Tensor<1> = target.logits(next).detach().gather(1, best).squeeze_dim(1);
    let y = t1(s.rewards) + t1(s.discounts) * q_next;
    let td = q.clone() - y.detach();
    let loss = (huber(td.clone()) * t1(s.weights)).mean();
    let grads = loss.backward();
    let mut grads = GradientsParams::from_grads(grads, &online);
    let grad_norm = clip_global_norm(&online, &mut grads, config.max_grad_norm);
    *online_slot = Some(optimizer.step(config.learning_rate, online, grads));
    let [td, q, loss, grad_norm] = Transaction::default()
        .register(td.inner())
        .register(q.inner())
        .register(loss.inner())
        .register(grad_norm)
        .execute()
        .try_into()
        .expect("four tensors read");
    let scalar = |t: TensorData| t.convert::<f32>().as_slice::<f32>().expect("f32")[0];
    let (loss, grad_norm) = (scalar(loss), scalar(grad_norm));
    if !(loss.is_finite() && grad_norm.is_finite()) {
        let (online, previous) = before;
        *online_slot = Some(online);
        *optimizer = previous;
        return None;
    }
    let td = td.convert::<f32>().try_into_vec::<f32>().expect("f32");
    let q = q.convert::<f32>().try_into_vec::<f32>().expect("f32");
    Some((
        DqnStats {
            loss: loss as f64,
            q_mean: q.iter().map(|&x| x as f64).sum::<f64>() / b as f64,
            td_abs_mean: td.iter().map(|&x| x.abs() as f64).sum::<f64>() / b as f64,
        },
        td,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_common::obs::{ObsFormat, Observations};

    #[test]
    fn host_updates_give_the_same_parameters_as_burns() {
        let mut config = RunConfig::default();
        config.dqn.batch_size = 64;
        config.dqn.prioritized = true;
        config.dqn.max_grad_norm = 10.0;
        config.dqn.learning_rate = 1e-3;
        let spec = ModelSpec::mlp(
            4,
            shoal_common::model::ActionHead::Categorical(3),
            vec![32, 32],
            shoal_common::model::Activation::Relu,
        );
        let mut rng = Rng::new(5);
        let n = 500;
        let mut normals = |k: usize| -> Vec<f32> { (0..k).map(|_| rng.normal() as f32).collect() };
        let batch = TransitionBatch {
            obs: Observations::from_f32(ObsFormat::F32, &normals(n * 4)),
            next_obs: Observations::from_f32(ObsFormat::F32, &normals(n * 4)),
            actions: (0..n).map(|i| (i % 3) as u32).collect(),
            rewards: normals(n).iter().map(|r| r * 2.0).collect(),
            discounts: (0..n)
                .map(|i| if i % 7 == 0 { 0.0 } else { 0.99 })
                .collect(),
            ..TransitionBatch::default()
        };
        let initial = spec.init_params(2);
        let mut trained = |dense: bool| {
            config.learner.dense_mlp = dense;
            let mut t = DqnTrainer::new(&config, spec.clone(), &initial, Device::flex(), 3);
            assert_eq!(t.is_dense(), dense);
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
        let (want, want_stats) = trained(false);
        let (got, got_stats) = trained(true);
        let moved = crate::dense::max_abs_diff(&want, &initial);
        let worst = crate::dense::max_abs_diff(&got, &want);
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
