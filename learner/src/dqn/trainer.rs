//! The DQN trainer: online and target Q-networks, Adam, the replay buffer, and greedy
//! evaluation. Only the trainer thread touches it.
//!
//! The Q-network is the policy network of the shared [`ActorCritic`] (its outputs are read as
//! Q-values); DQN leaves the value network unused.

use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData, Transaction};
use shoal_common::config::RunConfig;
use shoal_common::dqn::{TransitionBatch, argmax};
use shoal_common::env::VecEnv;
use shoal_common::model::{ActorCritic, ModelSpec, action_rows};
use shoal_common::rng::Rng;

use super::huber;
use super::replay::{Prioritized, ReplayBuffer, Transition};
use crate::trainer::clip_global_norm;

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
            replay: ReplayBuffer::new(d.buffer_size, spec.obs_dim, prioritized),
            optimizer: AdamConfig::new().init(),
            config: d.clone(),
            spec,
            device,
            base,
            rng: Rng::new(seed),
        }
    }

    /// Adds a batch of transitions to the replay buffer.
    pub fn insert(&mut self, batch: &TransitionBatch) {
        let o = self.spec.obs_dim;
        for i in 0..batch.len() {
            self.replay.push(&Transition {
                obs: &batch.obs[i * o..(i + 1) * o],
                action: batch.actions[i],
                reward: batch.rewards[i],
                discount: batch.discounts[i],
                next_obs: &batch.next_obs[i * o..(i + 1) * o],
            });
        }
    }

    /// Copies the online network into the target network.
    pub fn sync_target(&mut self) {
        self.target = self.spec.build(&self.params(), &self.base);
    }

    /// Current online parameters in layout order.
    pub fn params(&self) -> Vec<f32> {
        self.online
            .as_ref()
            .expect("online network present")
            .to_flat()
    }

    /// Writes the optimizer state (burnpack) to `path`.
    pub fn save_optimizer(&self, path: &std::path::Path) -> Result<(), String> {
        self.optimizer.save(path).map_err(|e| format!("{e:?}"))
    }

    /// One double-DQN update on a sampled batch (importance weights `beta` when prioritised).
    pub fn update(&mut self, beta: f64) -> DqnStats {
        let b = self.config.batch_size;
        let o = self.spec.obs_dim;
        let a = self.spec.action.outputs();
        let s = self.replay.sample(b, beta, &mut self.rng);
        let d = &self.device;
        let t2 =
            |v: Vec<f32>, cols: usize| Tensor::<2>::from_data(TensorData::new(v, [b, cols]), d);
        let t1 = |v: Vec<f32>| Tensor::<1>::from_data(TensorData::new(v, [b]), d);
        let actions: Vec<f32> = s.actions.iter().map(|&x| x as f32).collect();
        let one_hot = t2(action_rows(self.spec.action, &actions), a);
        let obs = t2(s.obs, o);
        let next = t2(s.next_obs, o);
        let online = self.online.take().expect("online network present");
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
        let _ = clip_global_norm(&online, &mut grads, self.config.max_grad_norm);
        self.online = Some(
            self.optimizer
                .step(self.config.learning_rate, online, grads),
        );
        let [td, q, loss] = Transaction::default()
            .register(td.inner())
            .register(q.inner())
            .register(loss.inner())
            .execute()
            .try_into()
            .expect("three tensors read");
        let td = td.convert::<f32>().try_into_vec::<f32>().expect("f32");
        let q = q.convert::<f32>().try_into_vec::<f32>().expect("f32");
        self.replay.update_priorities(&s.indices, &td);
        DqnStats {
            loss: loss.convert::<f32>().as_slice::<f32>().expect("f32")[0] as f64,
            q_mean: q.iter().map(|&x| x as f64).sum::<f64>() / b as f64,
            td_abs_mean: td.iter().map(|&x| x.abs() as f64).sum::<f64>() / b as f64,
        }
    }
}

/// Greedy evaluation: `episodes` episodes of `env_id` (one per environment copy, seeded from
/// `seed`) with `params`, acting on the argmax of the network's outputs. Returns their returns.
pub fn evaluate_greedy(
    spec: &ModelSpec,
    params: &[f32],
    env_id: &str,
    episodes: usize,
    seed: u64,
) -> Vec<f64> {
    let device = Device::flex();
    let model = spec.build(params, &device);
    let mut venv = VecEnv::new(env_id, episodes, seed).expect("the run's environment exists");
    let (o, a) = (spec.obs_dim, spec.action.outputs());
    let mut returns: Vec<Option<f64>> = vec![None; episodes];
    let mut step = shoal_common::env::VecStep::default();
    while returns.iter().any(Option::is_none) {
        let obs = Tensor::<2>::from_data(
            TensorData::new(venv.observations().to_vec(), [episodes, o]),
            &device,
        );
        let q = model
            .logits(obs)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32");
        let actions: Vec<usize> = q.chunks_exact(a).map(argmax).collect();
        venv.step_discrete(&actions, &mut step);
        for ep in &step.finished {
            returns[ep.env_index].get_or_insert(ep.episode_return);
        }
    }
    returns
        .into_iter()
        .map(|r| r.expect("every copy finished"))
        .collect()
}
