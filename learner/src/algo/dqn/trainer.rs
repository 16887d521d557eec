//! The DQN trainer: online and target Q-networks, Adam and the replay buffer.
//! Only the trainer thread touches it.
//!
//! The Q-network is the policy network of the shared [`ActorCritic`] (its outputs are read as
//! Q-values); DQN leaves the value network unused.

use std::io::Write;
use std::path::Path;

use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData, Transaction};
use shoal_common::codec::encode_f32;
use shoal_common::config::RunConfig;
use shoal_common::model::{ActorCritic, ModelSpec, action_rows};
use shoal_common::rng::Rng;
use shoal_common::transition::TransitionBatch;

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

/// Owns the Q-networks, the optimizer and the replay buffer.
pub struct DqnTrainer {
    spec: ModelSpec,
    config: shoal_common::config::DqnConfig,
    /// The autodiff device the online network trains on.
    device: Device,
    /// The same device without autodiff: the target side of the loss builds no graph.
    base: Device,
    online: Option<ActorCritic>,
    target: ActorCritic,
    /// The target network's parameters in layout order (Polyak averaging mixes into them).
    target_params: Vec<f32>,
    optimizer: ModuleOptimizer,
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
        let base = device.clone();
        let device = device.autodiff();
        let d = &config.dqn;
        let prioritized = d.prioritized.then_some(Prioritized {
            alpha: d.priority_alpha,
            epsilon: 1e-6,
        });
        Self {
            online: Some(spec.build(initial, &device)),
            target: spec.build(initial, &base),
            target_params: initial.to_vec(),
            replay: ReplayBuffer::new(
                d.buffer_size,
                (spec.obs_dim, spec.obs_format()),
                prioritized,
            ),
            optimizer: AdamConfig::new().with_epsilon(d.adam_eps as f32).init(),
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
        self.target = self.spec.build(&self.target_params, &self.base);
    }

    /// Current online parameters in layout order.
    pub fn params(&self) -> Vec<f32> {
        self.online
            .as_ref()
            .expect("online network present")
            .to_flat()
    }

    /// Writes the optimizer state, the target network (`target.bin`) and, when the config
    /// asks for it, the replay buffer (`replay.bin`) into the checkpoint directory `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), CheckpointError> {
        crate::checkpoint::save_optimizer(&self.optimizer, dir)?;
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
        crate::checkpoint::load_optimizer(&mut self.optimizer, dir)?;
        let path = dir.join("target.bin");
        let bytes = std::fs::read(&path).map_err(CheckpointError::io(&path))?;
        let target = self
            .spec
            .layout()
            .decode(&bytes)
            .map_err(|e| CheckpointError::state(dir, format!("target.bin: {e}")))?;
        self.target = self.spec.build(&target, &self.base);
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
        let a = self.spec.action.outputs();
        let s = self.replay.sample(b, beta, &mut self.rng);
        let d = &self.device;
        let t2 =
            |v: Vec<f32>, cols: usize| Tensor::<2>::from_data(TensorData::new(v, [b, cols]), d);
        let t1 = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [b]), d);
        let actions: Vec<f32> = s.actions.iter().map(|&x| x as f32).collect();
        let one_hot = t2(action_rows(self.spec.action, &actions), a);
        let obs = s.obs.into_tensor(b, d);
        let next = s.next_obs.into_tensor(b, d);
        let online = self.online.take().expect("online network present");
        let before = (online.clone(), self.optimizer.clone());
        let q: Tensor<1> = (online.logits(obs) * one_hot).sum_dim(1).squeeze_dim(1);
        // y = r + γ^m Q_target(s', argmax_a Q_online(s', a)), outside the graph.
        let best: Tensor<2, Int> = online.logits(next.clone()).detach().argmax(1);
        let q_next: Tensor<1> = self
            .target
            .logits(next)
            .detach()
            .gather(1, best)
            .squeeze_dim(1);
        let y = t1(s.rewards) + t1(s.discounts) * q_next;
        let td = q.clone() - y.detach();
        let loss = (huber(td.clone()) * t1(s.weights)).mean();
        let grads = loss.backward();
        let mut grads = GradientsParams::from_grads(grads, &online);
        let grad_norm = clip_global_norm(&online, &mut grads, self.config.max_grad_norm);
        self.online = Some(
            self.optimizer
                .step(self.config.learning_rate, online, grads),
        );
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
            let (online, optimizer) = before;
            self.online = Some(online);
            self.optimizer = optimizer;
            return None;
        }
        let td = td.convert::<f32>().try_into_vec::<f32>().expect("f32");
        let q = q.convert::<f32>().try_into_vec::<f32>().expect("f32");
        self.replay.update_priorities(&s.indices, &td);
        Some(DqnStats {
            loss: loss as f64,
            q_mean: q.iter().map(|&x| x as f64).sum::<f64>() / b as f64,
            td_abs_mean: td.iter().map(|&x| x.abs() as f64).sum::<f64>() / b as f64,
        })
    }
}
