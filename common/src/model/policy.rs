//! The policy's action distributions evaluated on a batch: categorical and diagonal Gaussian
//! log-probabilities and entropies, the policy head's input for a batch of actions, and the
//! greedy action of a row of outputs.

use burn::tensor::Tensor;
use burn::tensor::activation::log_softmax;

/// The policy's action distribution, chosen from the environment's action space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionHead {
    /// `Discrete(n)`: a categorical distribution over `n` actions; the policy outputs logits.
    Categorical(usize),
    /// `Box` of this many dimensions: a diagonal Gaussian whose mean the policy outputs and
    /// whose log standard deviation is a state-independent parameter (`log_std`).
    Gaussian(usize),
}

impl ActionHead {
    /// Width of the policy network's output layer.
    pub fn outputs(self) -> usize {
        match self {
            ActionHead::Categorical(n) | ActionHead::Gaussian(n) => n,
        }
    }

    /// `f32` values one action takes in a rollout: the index for categorical actions, the
    /// vector for Gaussian ones.
    pub fn action_width(self) -> usize {
        match self {
            ActionHead::Categorical(_) => 1,
            ActionHead::Gaussian(n) => n,
        }
    }
}

/// `ln √(2π)`, the constant of the Gaussian log-density.
pub const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// The current policy's log-probabilities of the batch's actions `[B]` and its mean entropy
/// (one element).
#[derive(Debug, Clone)]
pub struct PolicyEval {
    /// `log π(a_i | s_i)`, `[B]`.
    pub log_probs: Tensor<1>,
    /// Mean entropy over the batch.
    pub entropy: Tensor<1>,
}

/// A categorical policy: `logits` `[B, A]`, the taken actions one-hot `[B, A]`.
pub fn categorical_eval(logits: Tensor<2>, actions_one_hot: Tensor<2>) -> PolicyEval {
    let log_probs_all = log_softmax(logits, 1);
    let log_probs = (log_probs_all.clone() * actions_one_hot)
        .sum_dim(1)
        .squeeze_dim(1);
    let entropy = (log_probs_all.clone().exp() * log_probs_all)
        .sum_dim(1)
        .neg()
        .mean();
    PolicyEval { log_probs, entropy }
}

/// A diagonal Gaussian policy with mean `mean` `[B, A]` and state-independent `log_std` `[A]`,
/// evaluated at the (unclipped) actions `[B, A]`:
///
/// log π(a|s) = Σ_j [ −(a_j − μ_j)² / (2σ_j²) − log σ_j − ln √(2π) ]
/// H = Σ_j [ ½ + ln √(2π) + log σ_j ]
pub fn gaussian_eval(mean: Tensor<2>, log_std: Tensor<1>, actions: Tensor<2>) -> PolicyEval {
    let [b, a] = mean.dims();
    let log_std_row: Tensor<2> = log_std.clone().reshape([1, a]);
    let z = (actions - mean) * log_std_row.clone().neg().exp();
    let log_probs = (z.square().mul_scalar(-0.5) - log_std_row)
        .sum_dim(1)
        .squeeze_dim::<1>(1)
        .sub_scalar(a as f64 * LN_SQRT_2PI);
    let entropy = log_std.sum().add_scalar(a as f64 * (0.5 + LN_SQRT_2PI));
    debug_assert_eq!(log_probs.dims(), [b]);
    PolicyEval { log_probs, entropy }
}

/// The policy head's input for a batch of `m` actions from a rollout: one-hot rows `[m, n]` for
/// a categorical policy (from action indices), the actions themselves `[m, A]` for a Gaussian one.
pub fn action_rows(head: ActionHead, actions: &[f32]) -> Vec<f32> {
    match head {
        ActionHead::Categorical(n) => {
            let mut one_hot = vec![0.0f32; actions.len() * n];
            for (row, &a) in actions.iter().enumerate() {
                one_hot[row * n + a as usize] = 1.0;
            }
            one_hot
        }
        ActionHead::Gaussian(_) => actions.to_vec(),
    }
}

/// Index of the largest value (the first on ties): the greedy action of a row of logits or
/// Q-values.
pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bq), (i, &q)| {
            if q > bq { (i, q) } else { (bi, bq) }
        })
        .0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use burn::tensor::{Device, TensorData};

    /// The Gaussian log-density and entropy, one sample and one dimension at a time.
    fn gaussian_reference(mean: &[f32], log_std: &[f32], actions: &[f32]) -> (Vec<f64>, f64) {
        let a = log_std.len();
        let lp = mean
            .chunks(a)
            .zip(actions.chunks(a))
            .map(|(mu, x)| {
                let mut total = 0.0;
                for j in 0..a {
                    let sigma = (log_std[j] as f64).exp();
                    let d = x[j] as f64 - mu[j] as f64;
                    total += -d * d / (2.0 * sigma * sigma)
                        - sigma.ln()
                        - (2.0 * std::f64::consts::PI).sqrt().ln();
                }
                total
            })
            .collect();
        let h = (0..a)
            .map(|j| 0.5 + 0.5 * (2.0 * std::f64::consts::PI).ln() + log_std[j] as f64)
            .sum();
        (lp, h)
    }

    #[test]
    fn gaussian_eval_matches_the_plain_loop_reference_on_seeded_data() {
        let mut rng = Rng::new(11);
        let device = Device::flex();
        for (b, a) in [(1, 1), (7, 1), (16, 3)] {
            let mean: Vec<f32> = (0..b * a).map(|_| rng.normal() as f32).collect();
            let log_std: Vec<f32> = (0..a).map(|_| (rng.normal() * 0.5) as f32).collect();
            let actions: Vec<f32> = (0..b * a).map(|_| (rng.normal() * 2.0) as f32).collect();
            let t2 =
                |v: &[f32]| Tensor::<2>::from_data(TensorData::new(v.to_vec(), [b, a]), &device);
            let eval = gaussian_eval(
                t2(&mean),
                Tensor::<1>::from_data(TensorData::new(log_std.clone(), [a]), &device),
                t2(&actions),
            );
            let got = eval.log_probs.into_data().convert::<f32>();
            let (want, h) = gaussian_reference(&mean, &log_std, &actions);
            for (g, w) in got.as_slice::<f32>().unwrap().iter().zip(&want) {
                assert!((*g as f64 - w).abs() < 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
            }
            assert!(
                (eval
                    .entropy
                    .into_data()
                    .convert::<f32>()
                    .as_slice::<f32>()
                    .unwrap()[0] as f64
                    - h)
                    .abs()
                    < 1e-5
            );
        }
    }

    #[test]
    fn argmax_takes_the_first_of_ties() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7, -1.0]), 1);
        assert_eq!(argmax(&[-3.0]), 0);
    }
}
