//! The PPO objective's gradient at the two heads' outputs, as a pure function ([`head_grads`]),
//! for the learner's host step ([`super::dense`]): the clipped surrogate, the value loss and the
//! entropy bonus of `super::loss::ppo_loss`, differentiated by hand for categorical and diagonal
//! Gaussian policies; and the minibatch it reads ([`Minibatch`]).

use shoal_common::model::{ActionHead, LN_SQRT_2PI};

use super::loss::LossCoefs;

/// One minibatch, row-major host arrays (advantages already normalised if wanted).
#[derive(Debug, Clone, Copy)]
pub struct Minibatch<'a> {
    /// `[m, O]` observations.
    pub obs: &'a [f32],
    /// `[m]` action indices (categorical) or `[m, A]` actions (Gaussian).
    pub actions: &'a [f32],
    /// `[m]` behaviour log-probabilities.
    pub old_log_probs: &'a [f32],
    /// `[m]`.
    pub advantages: &'a [f32],
    /// `[m]` value targets.
    pub returns: &'a [f32],
}

impl Minibatch<'_> {
    pub(crate) fn len(&self) -> usize {
        self.old_log_probs.len()
    }

    /// Rows `start..end`.
    pub(crate) fn rows(&self, start: usize, end: usize, obs_dim: usize, width: usize) -> Self {
        Minibatch {
            obs: &self.obs[start * obs_dim..end * obs_dim],
            actions: &self.actions[start * width..end * width],
            old_log_probs: &self.old_log_probs[start..end],
            advantages: &self.advantages[start..end],
            returns: &self.returns[start..end],
        }
    }
}

/// Sums over a minibatch's rows of the loss parts (divided by the minibatch size `n` they are
/// the means the burn path reports).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossSums {
    /// Clipped surrogate `max(−A·r, −A·clip(r))`.
    pub policy: f64,
    /// `(v − R)²`.
    pub value: f64,
    /// Entropy.
    pub entropy: f64,
    /// `(r − 1) − log r`.
    pub approx_kl: f64,
    /// Rows with `|r − 1| > ε`.
    pub clipped: f64,
}

impl LossSums {
    pub(crate) fn add(&mut self, o: &LossSums) {
        self.policy += o.policy;
        self.value += o.value;
        self.entropy += o.entropy;
        self.approx_kl += o.approx_kl;
        self.clipped += o.clipped;
    }
}

/// d loss / d (policy head output, values, `log_std`) for `rows` of a minibatch of `n` rows,
/// where loss = mean(clipped surrogate) + vf_coef · mean((v − R)²) − ent_coef · mean(H), the
/// objective `ppo_loss` differentiates. `out` is the policy head's output (`[rows, A]`: logits,
/// or a Gaussian's mean with `log_std`), `values` `[rows]`. Writes `d_out` and `d_values`, adds
/// to `d_log_std`, and returns the rows' loss sums.
///
/// Categorical, per row with p = softmax(z), l = log p, taken action a and H = −Σ p·l:
/// ∂ log π(a)/∂z_k = δ_ak − p_k and ∂H/∂z_k = −p_k (l_k + H). Gaussian with z = (a − μ)/σ:
/// ∂ log π/∂μ_j = z_j/σ_j, ∂ log π/∂log σ_j = z_j² − 1, ∂H/∂log σ_j = 1. The surrogate passes
/// −A·r · ∂ log π where its unclipped term is the larger, nothing where the clipped one is.
#[allow(clippy::too_many_arguments)]
pub fn head_grads(
    head: ActionHead,
    out: &[f32],
    values: &[f32],
    log_std: Option<&[f32]>,
    mb: &Minibatch<'_>,
    n: usize,
    coefs: LossCoefs,
    d_out: &mut [f32],
    d_values: &mut [f32],
    d_log_std: &mut [f32],
) -> LossSums {
    let rows = mb.len();
    let a = head.outputs();
    let inv_n = 1.0 / n as f64;
    let eps = coefs.clip_coef;
    let mut sums = LossSums::default();
    let mut probs = vec![0.0f64; a];
    let mut logs = vec![0.0f64; a];
    for i in 0..rows {
        let z = &out[i * a..(i + 1) * a];
        let d = &mut d_out[i * a..(i + 1) * a];
        // log π(a_i | s_i) and the entropy.
        let (log_prob, entropy) = match head {
            ActionHead::Categorical(_) => {
                let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
                let lse = max + z.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
                let mut h = 0.0;
                for ((p, l), &v) in probs.iter_mut().zip(&mut logs).zip(z) {
                    *l = v as f64 - lse;
                    *p = l.exp();
                    h -= *p * *l;
                }
                (z[mb.actions[i] as usize] as f64 - lse, h)
            }
            ActionHead::Gaussian(_) => {
                let s = log_std.expect("a Gaussian head has log_std");
                let act = &mb.actions[i * a..(i + 1) * a];
                let mut lp = 0.0;
                for j in 0..a {
                    let zj = (act[j] as f64 - z[j] as f64) * (-(s[j] as f64)).exp();
                    lp += -0.5 * zj * zj - s[j] as f64;
                }
                let h = s.iter().map(|&v| v as f64).sum::<f64>() + a as f64 * (0.5 + LN_SQRT_2PI);
                (lp - a as f64 * LN_SQRT_2PI, h)
            }
        };
        let log_ratio = log_prob - mb.old_log_probs[i] as f64;
        let ratio = log_ratio.exp();
        let adv = mb.advantages[i] as f64;
        let unclipped = -adv * ratio;
        let clipped = -adv * ratio.clamp(1.0 - eps, 1.0 + eps);
        sums.policy += unclipped.max(clipped);
        sums.approx_kl += (ratio - 1.0) - log_ratio;
        sums.clipped += f64::from((ratio - 1.0).abs() > eps);
        sums.entropy += entropy;
        // d loss / d log π(a_i | s_i).
        let g = if unclipped >= clipped {
            unclipped * inv_n
        } else {
            0.0
        };
        let ent = coefs.ent_coef * inv_n;
        match head {
            ActionHead::Categorical(_) => {
                let taken = mb.actions[i] as usize;
                for (k, ((dk, &p), &l)) in d.iter_mut().zip(&probs).zip(&logs).enumerate() {
                    let onehot = f64::from(k == taken);
                    *dk = (g * (onehot - p) + ent * p * (l + entropy)) as f32;
                }
            }
            ActionHead::Gaussian(_) => {
                let s = log_std.expect("a Gaussian head has log_std");
                let act = &mb.actions[i * a..(i + 1) * a];
                for j in 0..a {
                    let inv_sigma = (-(s[j] as f64)).exp();
                    let zj = (act[j] as f64 - z[j] as f64) * inv_sigma;
                    d[j] = (g * zj * inv_sigma) as f32;
                    d_log_std[j] += (g * (zj * zj - 1.0) - ent) as f32;
                }
            }
        }
        let diff = values[i] as f64 - mb.returns[i] as f64;
        sums.value += diff * diff;
        d_values[i] = (coefs.vf_coef * 2.0 * diff * inv_n) as f32;
    }
    sums
}
