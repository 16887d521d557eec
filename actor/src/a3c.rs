//! A3C on the actor: n-step returns and the gradient of the actor-critic loss, computed on the
//! actor's local copy with burn's autodiff on flex.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData, Transaction};
use shoal_common::model::{ActorCritic, ModelSpec, action_rows};
use shoal_common::rollout::Rollout;
use shoal_common::settings::A3cLoss;

/// n-step returns for one environment's `T` steps, in time order (Mnih et al. 2016, Algorithm
/// S3), computed backwards:
///
/// R_t = r_t                                   if the episode terminated after step t
/// R_t = r_t + γ V(final observation)          if it was truncated after step t
/// R_t = r_t + γ R_{t+1}                       otherwise, with R_T = V(s_T) (`bootstrap`)
pub fn n_step_returns(
    rewards: &[f32],
    terminated: &[bool],
    truncated: &[bool],
    truncation_values: &[f32],
    bootstrap: f32,
    gamma: f64,
) -> Vec<f32> {
    let mut out = vec![0.0f32; rewards.len()];
    let mut next = bootstrap as f64;
    for t in (0..rewards.len()).rev() {
        let r = rewards[t] as f64;
        next = if terminated[t] {
            r
        } else if truncated[t] {
            r + gamma * truncation_values[t] as f64
        } else {
            r + gamma * next
        };
        out[t] = next as f32;
    }
    out
}

/// n-step returns for every step of a rollout, `[T, N]` like its arrays.
pub fn rollout_returns(r: &Rollout, gamma: f64) -> Vec<f32> {
    let (t_len, n) = (r.shape.n_steps, r.shape.num_envs);
    let mut out = vec![0.0f32; t_len * n];
    for env in 0..n {
        let col = |v: &[f32]| (0..t_len).map(|t| v[t * n + env]).collect::<Vec<_>>();
        let flags = |v: &[bool]| (0..t_len).map(|t| v[t * n + env]).collect::<Vec<_>>();
        let ret = n_step_returns(
            &col(&r.rewards),
            &flags(&r.terminated),
            &flags(&r.truncated),
            &col(&r.truncation_values),
            r.bootstrap_values[env],
            gamma,
        );
        for t in 0..t_len {
            out[t * n + env] = ret[t];
        }
    }
    out
}

/// A gradient and the loss parts it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LossGradient {
    /// d loss / d parameters in layout order.
    pub grad: Vec<f32>,
    /// Policy loss.
    pub policy_loss: f32,
    /// Value loss.
    pub value_loss: f32,
    /// Mean entropy.
    pub entropy: f32,
}

/// Computes A3C gradients on a local autodiff copy of the network (rebuilt once per version).
pub struct GradientComputer {
    spec: ModelSpec,
    loss: A3cLoss,
    device: Device,
    model: Option<(u64, ActorCritic)>,
}

impl GradientComputer {
    /// For the network `spec` and the run's loss.
    pub fn new(spec: &ModelSpec, loss: A3cLoss) -> Self {
        Self {
            spec: spec.clone(),
            loss,
            device: Device::flex().autodiff(),
            model: None,
        }
    }

    /// The gradient of A3C's loss on `rollout`, at parameters `params` (version `version`):
    /// policy `−mean(log π(a|s) · (R − V(s)))` with the advantage held constant, value
    /// `mean((R − V(s))²)`, minus `ent_coef` times the mean entropy.
    pub fn compute(&mut self, version: u64, params: &[f32], rollout: &Rollout) -> LossGradient {
        if self.model.as_ref().is_none_or(|(v, _)| *v != version) {
            self.model = Some((version, self.spec.build(params, &self.device)));
        }
        let (_, model) = self.model.as_ref().expect("model built");
        let b = rollout.log_probs.len();
        let head = self.spec.action;
        let d = &self.device;
        let obs = Tensor::<2>::from_data(
            TensorData::new(rollout.obs.clone(), [b, self.spec.obs_dim]),
            d,
        );
        let actions = Tensor::<2>::from_data(
            TensorData::new(action_rows(head, &rollout.actions), [b, head.outputs()]),
            d,
        );
        let returns = Tensor::<1>::from_data(
            TensorData::new(rollout_returns(rollout, self.loss.gamma), [b]),
            d,
        );
        let values = model.values(obs.clone());
        let eval = model.evaluate(obs, actions);
        let advantages = returns.clone() - values.clone().detach();
        let policy = (eval.log_probs * advantages).mean().neg();
        let value = (returns - values).square().mean();
        let total = policy.clone() + value.clone().mul_scalar(self.loss.vf_coef)
            - eval.entropy.clone().mul_scalar(self.loss.ent_coef);
        let grads = GradientsParams::from_grads(total.backward(), model);
        let (grad, [policy_loss, value_loss, entropy]) = flatten(
            model,
            &grads,
            [policy.inner(), value.inner(), eval.entropy.inner()],
        );
        LossGradient {
            grad,
            policy_loss,
            value_loss,
            entropy,
        }
    }
}

/// The gradients of `model`'s parameters flattened in layout order, and three scalars, read in
/// one transaction.
fn flatten(
    model: &ActorCritic,
    grads: &GradientsParams,
    scalars: [Tensor<1>; 3],
) -> (Vec<f32>, [f32; 3]) {
    struct Gather<'a> {
        grads: &'a GradientsParams,
        tensors: Vec<Tensor<1>>,
        sizes: Vec<usize>,
    }
    impl ModuleVisitor for Gather<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let n = param.lazy_shape().num_elements();
            self.sizes.push(n);
            if let Some(g) = self.grads.get::<D>(param.id) {
                self.tensors.push(g.reshape([n]));
            } else {
                // A parameter the loss does not reach (none in this network) has zero gradient.
                self.tensors.push(Tensor::zeros([n], &param.val().device()));
            }
        }
    }
    let mut gather = Gather {
        grads,
        tensors: Vec::new(),
        sizes: Vec::new(),
    };
    model.visit(&mut gather);
    let mut tx = Transaction::default();
    for t in gather.tensors.into_iter().chain(scalars) {
        tx = tx.register(t);
    }
    let mut data = tx.execute();
    let tail = data.split_off(data.len() - 3);
    let mut flat = Vec::with_capacity(gather.sizes.iter().sum());
    for d in data {
        flat.extend_from_slice(d.convert::<f32>().as_slice::<f32>().expect("f32"));
    }
    let scalar = |i: usize| {
        tail[i]
            .clone()
            .convert::<f32>()
            .as_slice::<f32>()
            .expect("f32")[0]
    };
    (flat, [scalar(0), scalar(1), scalar(2)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_common::rng::Rng;

    /// n-step returns the slow way: for each t, sum discounted rewards forward until the episode
    /// ends (adding the truncation value if it was cut) or the rollout does (adding the bootstrap).
    fn reference(
        r: &[f32],
        term: &[bool],
        trunc: &[bool],
        tv: &[f32],
        boot: f32,
        g: f64,
    ) -> Vec<f32> {
        (0..r.len())
            .map(|t| {
                let mut total = 0.0f64;
                let mut discount = 1.0f64;
                let mut k = t;
                loop {
                    total += discount * r[k] as f64;
                    discount *= g;
                    if term[k] {
                        break;
                    }
                    if trunc[k] {
                        total += discount * tv[k] as f64;
                        break;
                    }
                    k += 1;
                    if k == r.len() {
                        total += discount * boot as f64;
                        break;
                    }
                }
                total as f32
            })
            .collect()
    }

    #[test]
    fn n_step_returns_match_the_plain_loop_reference_on_seeded_data() {
        let mut rng = Rng::new(99);
        for _ in 0..100 {
            let t_len = 1 + rng.below(20);
            let r: Vec<f32> = (0..t_len).map(|_| rng.normal() as f32).collect();
            let term: Vec<bool> = (0..t_len).map(|_| rng.next_f64() < 0.15).collect();
            let trunc: Vec<bool> = term.iter().map(|&d| !d && rng.next_f64() < 0.1).collect();
            let tv: Vec<f32> = (0..t_len).map(|_| rng.normal() as f32 * 5.0).collect();
            let boot = rng.normal() as f32;
            let g = 0.5 + 0.5 * rng.next_f64();
            let got = n_step_returns(&r, &term, &trunc, &tv, boot, g);
            let want = reference(&r, &term, &trunc, &tv, boot, g);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }
}
