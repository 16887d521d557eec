//! The actor-critic objectives of PPO, APPO, IMPALA and A3C on host arrays, and their
//! gradients at the network's heads, as pure functions: the policy term (PPO's clipped
//! surrogate, or the plain policy gradient `−log π·A`), the value loss `(v − R)²` and the
//! entropy bonus, differentiated by hand for categorical and diagonal Gaussian policies. The
//! compute engine back-propagates what [`head_grads`] returns through the network.

use crate::model::{ActionHead, LN_SQRT_2PI};

/// Coefficients of the objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossCoefs {
    /// The surrogate's clipping ε (PPO, APPO); `None`: the plain policy gradient (IMPALA, A3C).
    pub clip_coef: Option<f64>,
    /// Value loss weight.
    pub vf_coef: f64,
    /// Entropy bonus weight.
    pub ent_coef: f64,
}

/// One minibatch's targets, row-major host arrays (advantages already normalised if wanted).
#[derive(Debug, Clone, Copy)]
pub struct Minibatch<'a> {
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
    /// Rows.
    pub fn len(&self) -> usize {
        self.old_log_probs.len()
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Sums over a minibatch's rows of the loss parts (divided by the rows, the means).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossSums {
    /// The policy term: `max(−A·r, −A·clip(r))`, or `−A·log π`.
    pub policy: f64,
    /// `(v − R)²`.
    pub value: f64,
    /// Entropy.
    pub entropy: f64,
    /// `(r − 1) − log r`, r the ratio to the behaviour policy.
    pub approx_kl: f64,
    /// Rows with `|r − 1| > ε` (0 without clipping).
    pub clipped: f64,
}

/// `log π(a | ·)` and the entropy of one row of the policy head's output `z` (logits, or a
/// Gaussian's mean with `log_std`) at the action `action` (an index, or a vector), with the
/// row's log-softmax in `logs` (categorical; resized).
fn policy_terms(
    head: ActionHead,
    z: &[f32],
    log_std: &[f32],
    action: &[f32],
    logs: &mut Vec<f64>,
) -> (f64, f64) {
    match head {
        ActionHead::Categorical(_) => {
            let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
            let lse = max + z.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
            logs.clear();
            let mut h = 0.0;
            for &v in z {
                let l = v as f64 - lse;
                logs.push(l);
                h -= l.exp() * l;
            }
            (z[action[0] as usize] as f64 - lse, h)
        }
        ActionHead::Gaussian(a) => {
            let mut lp = 0.0;
            for j in 0..a {
                let zj = (action[j] as f64 - z[j] as f64) * (-(log_std[j] as f64)).exp();
                lp += -0.5 * zj * zj - log_std[j] as f64;
            }
            let h = log_std.iter().map(|&v| v as f64).sum::<f64>() + a as f64 * (0.5 + LN_SQRT_2PI);
            (lp - a as f64 * LN_SQRT_2PI, h)
        }
    }
}

/// `log π(a_i | s_i)` of each row's action under the policy head's output `out` (`[rows, A]`)
/// and `log_std` (Gaussian; empty otherwise).
pub fn log_probs(head: ActionHead, out: &[f32], log_std: &[f32], actions: &[f32]) -> Vec<f32> {
    let (a, w) = (head.outputs(), head.action_width());
    let mut logs = Vec::new();
    out.chunks_exact(a)
        .zip(actions.chunks_exact(w))
        .map(|(z, act)| policy_terms(head, z, log_std, act, &mut logs).0 as f32)
        .collect()
}

/// d loss / d (policy head output, values, `log_std`) for the rows `mb` of a minibatch of `n`
/// rows, where loss = mean(policy term) + vf_coef · mean((v − R)²) − ent_coef · mean(H).
/// `out` is the policy head's output (`[rows, A]`: logits, or a Gaussian's mean with
/// `log_std`), `values` `[rows]`. Writes `d_out` and `d_values`, adds to `d_log_std`, and
/// returns the rows' loss sums.
///
/// Categorical, per row with p = softmax(z), l = log p, taken action a and H = −Σ p·l:
/// ∂ log π(a)/∂z_k = δ_ak − p_k and ∂H/∂z_k = −p_k (l_k + H). Gaussian with z = (a − μ)/σ:
/// ∂ log π/∂μ_j = z_j/σ_j, ∂ log π/∂log σ_j = z_j² − 1, ∂H/∂log σ_j = 1. The clipped surrogate
/// passes −A·r · ∂ log π where its unclipped term is the larger, nothing where the clipped one
/// is; the plain policy gradient passes −A · ∂ log π.
#[allow(clippy::too_many_arguments)]
pub fn head_grads(
    head: ActionHead,
    out: &[f32],
    values: &[f32],
    log_std: &[f32],
    mb: &Minibatch<'_>,
    n: usize,
    coefs: LossCoefs,
    d_out: &mut [f32],
    d_values: &mut [f32],
    d_log_std: &mut [f32],
) -> LossSums {
    let rows = mb.len();
    let (a, w) = (head.outputs(), head.action_width());
    let inv_n = 1.0 / n as f64;
    let mut sums = LossSums::default();
    let mut logs = Vec::with_capacity(a);
    for i in 0..rows {
        let z = &out[i * a..(i + 1) * a];
        let act = &mb.actions[i * w..(i + 1) * w];
        let d = &mut d_out[i * a..(i + 1) * a];
        let (log_prob, entropy) = policy_terms(head, z, log_std, act, &mut logs);
        let log_ratio = log_prob - mb.old_log_probs[i] as f64;
        let ratio = log_ratio.exp();
        let adv = mb.advantages[i] as f64;
        sums.approx_kl += (ratio - 1.0) - log_ratio;
        sums.entropy += entropy;
        // d loss / d log π(a_i | s_i).
        let g = match coefs.clip_coef {
            Some(eps) => {
                let unclipped = -adv * ratio;
                let clipped = -adv * ratio.clamp(1.0 - eps, 1.0 + eps);
                sums.policy += unclipped.max(clipped);
                sums.clipped += f64::from((ratio - 1.0).abs() > eps);
                if unclipped >= clipped {
                    unclipped * inv_n
                } else {
                    0.0
                }
            }
            None => {
                sums.policy += -adv * log_prob;
                -adv * inv_n
            }
        };
        let ent = coefs.ent_coef * inv_n;
        match head {
            ActionHead::Categorical(_) => {
                let taken = act[0] as usize;
                for (k, (dk, &l)) in d.iter_mut().zip(&logs).enumerate() {
                    let p = l.exp();
                    let onehot = f64::from(k == taken);
                    *dk = (g * (onehot - p) + ent * p * (l + entropy)) as f32;
                }
            }
            ActionHead::Gaussian(_) => {
                for j in 0..a {
                    let inv_sigma = (-(log_std[j] as f64)).exp();
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
