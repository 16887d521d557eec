//! The network's description ([`ModelSpec`]): its parameter layout, its initialisation and
//! how it builds the network.
//!
//! Both sides build the network from a [`ModelSpec`] and a flat parameter vector in
//! [`ParamLayout`] order, so the learner's initial weights (drawn on the host from the run seed)
//! and every later version reach actors bit-for-bit. Parameters are identified by path and
//! position; [`ModelSpec::build`] gives each the `ParamId` of its position (burn's own ids are
//! random per process), so optimizer state saved by one learner process loads in the next.

use burn::module::{Param, ParamId};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};

use super::network::{Activation, ActorCritic, Mlp};
use super::policy::ActionHead;
use crate::codec::{ParamEntry, ParamLayout};
use crate::rng::Rng;

/// Everything needed to build the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Observation size.
    pub obs_dim: usize,
    /// The action distribution.
    pub action: ActionHead,
    /// Hidden layer widths (the actor and the critic each get their own stack).
    pub hidden: Vec<usize>,
    /// Hidden-layer non-linearity.
    pub activation: Activation,
}

impl ModelSpec {
    fn stack(&self, out: usize) -> Vec<(usize, usize)> {
        let mut dims = vec![self.obs_dim];
        dims.extend(&self.hidden);
        dims.push(out);
        dims.windows(2).map(|w| (w[0], w[1])).collect()
    }

    /// The parameter layout of the network this spec builds, in transfer order.
    pub fn layout(&self) -> ParamLayout {
        let mut entries = Vec::new();
        for (head, out) in [("actor", self.action.outputs()), ("critic", 1)] {
            for (i, (d_in, d_out)) in self.stack(out).into_iter().enumerate() {
                entries.push(ParamEntry::new(
                    format!("{head}.layers.{i}.weight"),
                    vec![d_in, d_out],
                ));
                entries.push(ParamEntry::new(
                    format!("{head}.layers.{i}.bias"),
                    vec![d_out],
                ));
            }
        }
        if let ActionHead::Gaussian(dim) = self.action {
            entries.push(ParamEntry::new("log_std".to_string(), vec![dim]));
        }
        ParamLayout::new(entries)
    }

    /// Initial parameters drawn from `seed`: orthogonal weights with gain √2 in hidden layers,
    /// 0.01 on the policy output and 1 on the value output, zero biases (the PPO
    /// implementation details of Huang et al. 2022, as in Stable-Baselines3); a Gaussian
    /// policy's `log_std` starts at 0 (standard deviation 1), as in Stable-Baselines3 and CleanRL.
    pub fn init_params(&self, seed: u64) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let mut flat = Vec::with_capacity(self.layout().num_floats());
        for (out, out_gain) in [(self.action.outputs(), 0.01), (1, 1.0)] {
            let layers = self.stack(out);
            let last = layers.len() - 1;
            for (i, (d_in, d_out)) in layers.into_iter().enumerate() {
                let gain = if i == last {
                    out_gain
                } else {
                    std::f64::consts::SQRT_2
                };
                flat.extend(orthogonal(d_in, d_out, gain, &mut rng));
                flat.extend(std::iter::repeat_n(0.0, d_out));
            }
        }
        if let ActionHead::Gaussian(dim) = self.action {
            flat.extend(std::iter::repeat_n(0.0, dim));
        }
        flat
    }

    /// Builds the network on `device` from `flat` parameters in [`ModelSpec::layout`] order.
    ///
    /// # Panics
    /// When `flat` does not have `layout().num_floats()` values; callers decode parameters with
    /// [`ParamLayout::decode`], which checks that first.
    pub fn build(&self, flat: &[f32], device: &Device) -> ActorCritic {
        assert_eq!(flat.len(), self.layout().num_floats(), "parameter count");
        let mut offset = 0;
        let mut position = 0u64;
        // The next `n` values in layout order, with the id of their parameter's position.
        let mut take = |n: usize| {
            let values = flat[offset..offset + n].to_vec();
            offset += n;
            position += 1;
            (values, ParamId::from(position))
        };
        let mut mlp = |out: usize| Mlp {
            layers: self
                .stack(out)
                .into_iter()
                .map(|(d_in, d_out)| {
                    let (w, w_id) = take(d_in * d_out);
                    let (b, b_id) = take(d_out);
                    Linear {
                        weight: param(TensorData::new(w, [d_in, d_out]), w_id, device),
                        bias: Some(param(TensorData::new(b, [d_out]), b_id, device)),
                    }
                })
                .collect(),
            activation: self.activation,
        };
        let actor = mlp(self.action.outputs());
        let critic = mlp(1);
        let log_std = match self.action {
            ActionHead::Categorical(_) => None,
            ActionHead::Gaussian(dim) => {
                let (v, id) = take(dim);
                Some(param(TensorData::new(v, [dim]), id, device))
            }
        };
        ActorCritic {
            actor,
            critic,
            log_std,
        }
    }
}

/// A trainable parameter from `data` on `device` with the fixed `id`.
fn param<const D: usize>(data: TensorData, id: ParamId, device: &Device) -> Param<Tensor<D>> {
    let mut p = Param::from_data(data, device);
    p.id = id;
    p
}

/// Orthogonal initialisation as `torch.nn.init.orthogonal_` does it for a weight of
/// shape `[d_out, d_in]`, returned transposed in burn's `[d_in, d_out]` row-major order.
fn orthogonal(d_in: usize, d_out: usize, gain: f64, rng: &mut Rng) -> Vec<f32> {
    let (rows, cols) = (d_in.max(d_out), d_in.min(d_out));
    // `cols` column vectors of length `rows`, orthonormalised by modified Gram–Schmidt.
    let mut q: Vec<Vec<f64>> = (0..cols)
        .map(|_| (0..rows).map(|_| rng.normal()).collect())
        .collect();
    for j in 0..cols {
        let (done, rest) = q.split_at_mut(j);
        let v = &mut rest[0];
        for u in done.iter() {
            let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            for (a, b) in v.iter_mut().zip(u) {
                *a -= dot * b;
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
    // W (torch's [d_out, d_in]) has orthonormal columns when d_out >= d_in, rows otherwise.
    let w = |o: usize, i: usize| if d_out >= d_in { q[i][o] } else { q[o][i] };
    let mut out = Vec::with_capacity(d_in * d_out);
    for i in 0..d_in {
        for o in 0..d_out {
            out.push((gain * w(o, i)) as f32);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ModelSpec {
        ModelSpec {
            obs_dim: 4,
            action: ActionHead::Categorical(2),
            hidden: vec![64, 64],
            activation: Activation::Tanh,
        }
    }

    #[test]
    fn built_module_has_the_spec_layout_and_round_trips() {
        let spec = spec();
        let flat = spec.init_params(5);
        let model = spec.build(&flat, &Device::flex());
        assert_eq!(model.layout(), spec.layout());
        assert_eq!(model.to_flat(), flat);
        assert_eq!(
            spec.layout().num_floats(),
            2 * (4 * 64 + 64 + 64 * 64 + 64) + 64 * 2 + 2 + 65
        );
    }

    #[test]
    fn gaussian_spec_adds_a_log_std_parameter_last() {
        let spec = ModelSpec {
            obs_dim: 3,
            action: ActionHead::Gaussian(2),
            hidden: vec![8],
            activation: Activation::Tanh,
        };
        let flat = spec.init_params(1);
        let model = spec.build(&flat, &Device::flex());
        assert_eq!(model.layout(), spec.layout());
        let last = spec.layout().entries().last().unwrap().clone();
        assert_eq!((last.path.as_str(), last.shape), ("log_std", vec![2]));
        assert_eq!(&flat[flat.len() - 2..], &[0.0, 0.0]);
        assert_eq!(model.to_flat(), flat);
        assert_eq!(model.log_std().unwrap().dims(), [2]);
        let categorical = ModelSpec {
            action: ActionHead::Categorical(2),
            ..spec
        };
        let model = categorical.build(&categorical.init_params(1), &Device::flex());
        assert!(model.log_std().is_none());
    }

    #[test]
    fn orthogonal_init_is_orthogonal_with_gain() {
        let mut rng = Rng::new(0);
        // d_in=4, d_out=64: torch weight [64, 4] has orthonormal columns, so W^T W = g^2 I.
        let w = orthogonal(4, 64, 2.0, &mut rng);
        for a in 0..4 {
            for b in 0..4 {
                let dot: f64 = (0..64)
                    .map(|o| w[a * 64 + o] as f64 * w[b * 64 + o] as f64)
                    .sum();
                let want = if a == b { 4.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-4, "({a},{b}) {dot}");
            }
        }
        // d_in=64, d_out=2: torch weight [2, 64] has orthonormal rows.
        let w = orthogonal(64, 2, 1.0, &mut rng);
        let dot: f64 = (0..64).map(|i| w[i * 2] as f64 * w[i * 2 + 1] as f64).sum();
        let n0: f64 = (0..64).map(|i| (w[i * 2] as f64).powi(2)).sum();
        assert!(dot.abs() < 1e-5 && (n0 - 1.0).abs() < 1e-5);
    }
}
