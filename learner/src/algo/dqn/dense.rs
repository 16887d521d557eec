//! DQN's update on the host for `mlp` Q-networks (issue 19): the online network on `s` and `s'`
//! and the target network on `s'` ([`crate::dense::DenseMlp`]), the double-DQN targets
//! ([`double_dqn_target`]), the weighted Huber loss's gradient at the chosen actions' Q-values
//! ([`huber_grad`]), one backward pass, global-norm clipping and Adam on the flat parameters.
//! The same update as the burn path to float tolerance (tested), without its per-operation cost.

use shoal_common::model::{ActionHead, ModelSpec};

use super::loss::{double_dqn_target, huber_value};
use super::replay::SampledBatch;
use super::trainer::DqnStats;
use crate::dense::model::vector_mlp;
use crate::dense::{DenseMlp, HostModel, Trace};
use crate::grad_clip::clip_flat_global_norm;

/// `d/dx` of the Huber loss (δ = 1): `x` inside `[−1, 1]`, its sign beyond.
pub fn huber_grad(x: f32) -> f32 {
    x.clamp(-1.0, 1.0)
}

/// The Q-network (the policy head), its Adam and the buffers of the host update.
#[derive(Debug, Clone)]
pub struct DenseDqn {
    q: DenseMlp,
    model: HostModel,
    online: Trace,
    online_next: Trace,
    target_next: Trace,
    d_out: Vec<f32>,
    scratch: Vec<f32>,
    grad: Vec<f32>,
}

impl DenseDqn {
    /// The host update for `spec` when it is an `mlp` model on vectors with discrete actions
    /// (`None` otherwise), from `initial`.
    pub fn new(spec: &ModelSpec, initial: &[f32], adam_eps: f64) -> Option<Self> {
        if !vector_mlp(spec) || !matches!(spec.action, ActionHead::Categorical(_)) {
            return None;
        }
        let layout = spec.layout();
        let q = DenseMlp::locate(&layout, "actor", spec.activation)?;
        let len = layout.num_floats();
        Some(Self {
            q,
            model: HostModel::new(layout, initial, adam_eps),
            online: Trace::default(),
            online_next: Trace::default(),
            target_next: Trace::default(),
            d_out: Vec::new(),
            scratch: Vec::new(),
            // The value network's part stays zero: DQN does not train it.
            grad: vec![0.0; len],
        })
    }

    /// The online network: parameters and Adam state.
    pub fn model(&self) -> &HostModel {
        &self.model
    }

    /// The online network, to load into.
    pub fn model_mut(&mut self) -> &mut HostModel {
        &mut self.model
    }

    /// One double-DQN update on `sample` with the target network's `target` parameters; the
    /// statistics and each transition's TD error, or `None` (nothing changed) when the loss or
    /// the gradient is not finite.
    pub fn update(
        &mut self,
        sample: &SampledBatch,
        target: &[f32],
        learning_rate: f64,
        max_grad_norm: f64,
    ) -> Option<(DqnStats, Vec<f32>)> {
        let b = sample.actions.len();
        let a = self.q.outputs();
        let obs = sample.obs.to_f32();
        let next = sample.next_obs.to_f32();
        self.q
            .forward(self.model.params(), &obs, b, &mut self.online);
        self.q
            .forward(self.model.params(), &next, b, &mut self.online_next);
        self.q.forward(target, &next, b, &mut self.target_next);
        let (q_all, q_next, q_target) = (
            self.online.output(),
            self.online_next.output(),
            self.target_next.output(),
        );
        self.d_out.clear();
        self.d_out.resize(b * a, 0.0);
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
            self.d_out[i * a + action] = w * huber_grad(delta) / b as f32;
            td.push(delta);
        }
        let loss = loss / b as f64;
        self.q.backward(
            self.model.params(),
            &obs,
            &self.online,
            &mut self.d_out,
            &mut self.grad,
            &mut self.scratch,
        );
        let norm = clip_flat_global_norm(&mut self.grad, max_grad_norm);
        if !(loss.is_finite() && norm.is_finite()) {
            return None;
        }
        self.model.step(learning_rate, &self.grad);
        let stats = DqnStats {
            loss,
            q_mean: q_sum / b as f64,
            td_abs_mean: td.iter().map(|&x| x.abs() as f64).sum::<f64>() / b as f64,
        };
        Some((stats, td))
    }
}
