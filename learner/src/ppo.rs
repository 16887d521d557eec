//! PPO's math as small pure functions, named as in the papers (Schulman et al. 2016, 2017) and
//! CleanRL: generalised advantage estimation on the host, and the clipped-surrogate loss on
//! tensors.

use burn::tensor::Tensor;
pub use shoal_common::model::{PolicyEval, categorical_eval, gaussian_eval};

/// Generalised advantage estimation for one environment's `T` steps, in time order.
///
/// `next_values[t]` is the value of the state after step `t`: `V(s_{t+1})` within an episode,
/// the value of the final observation when the episode was truncated after step `t`, and the
/// bootstrap value at the end of the rollout. A terminated step does not bootstrap
/// (`terminated[t]`), and no advantage flows back across any episode end (`episode_end[t]`,
/// terminated or truncated):
///
/// δ_t = r_t + γ V_next(t) (1 − terminated_t) − V(s_t)
/// A_t = δ_t + γ λ (1 − episode_end_t) A_{t+1}
///
/// Returns the advantages; the value targets are `A_t + V(s_t)`.
pub fn gae(
    rewards: &[f32],
    values: &[f32],
    next_values: &[f32],
    terminated: &[bool],
    episode_end: &[bool],
    gamma: f64,
    lambda: f64,
) -> Vec<f32> {
    let t_len = rewards.len();
    let mut advantages = vec![0.0f32; t_len];
    let mut last = 0.0f64;
    for t in (0..t_len).rev() {
        let not_terminal = if terminated[t] { 0.0 } else { 1.0 };
        let not_end = if episode_end[t] { 0.0 } else { 1.0 };
        let delta =
            rewards[t] as f64 + gamma * next_values[t] as f64 * not_terminal - values[t] as f64;
        last = delta + gamma * lambda * not_end * last;
        advantages[t] = last as f32;
    }
    advantages
}

/// The parts of the PPO objective for one minibatch (each a one-element tensor).
#[derive(Debug, Clone)]
pub struct PpoLoss {
    /// `policy + vf_coef · value − ent_coef · entropy`: what is differentiated.
    pub total: Tensor<1>,
    /// Clipped surrogate loss (to minimise).
    pub policy: Tensor<1>,
    /// Value loss: mean squared error to the returns (Stable-Baselines3's convention).
    pub value: Tensor<1>,
    /// Mean policy entropy.
    pub entropy: Tensor<1>,
    /// `mean((r − 1) − log r)`, the low-variance KL estimator (detached).
    pub approx_kl: Tensor<1>,
    /// Fraction of samples whose ratio left `[1 − ε, 1 + ε]` (detached).
    pub clipfrac: Tensor<1>,
}

/// Coefficients of the PPO objective.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossCoefs {
    /// Surrogate clipping ε.
    pub clip_coef: f64,
    /// Value loss weight.
    pub vf_coef: f64,
    /// Entropy bonus weight.
    pub ent_coef: f64,
}

/// The PPO loss for a minibatch.
///
/// `policy` is the current policy evaluated on the batch's actions and `values` `[B]` the
/// current value estimates; `old_log_probs`, `advantages` (already normalised if wanted) and
/// `returns` `[B]` come from the batch.
pub fn ppo_loss(
    policy: PolicyEval,
    values: Tensor<1>,
    old_log_probs: Tensor<1>,
    advantages: Tensor<1>,
    returns: Tensor<1>,
    coefs: LossCoefs,
) -> PpoLoss {
    let PolicyEval {
        log_probs: new_log_probs,
        entropy,
    } = policy;
    let log_ratio = new_log_probs - old_log_probs;
    let ratio = log_ratio.clone().exp();
    let eps = coefs.clip_coef;
    let pg_loss1 = advantages.clone().neg() * ratio.clone();
    let pg_loss2 = advantages.neg() * ratio.clone().clamp(1.0 - eps, 1.0 + eps);
    let policy = pg_loss1.max_pair(pg_loss2).mean();

    let value = (values - returns).square().mean();

    let total = policy.clone() + value.clone().mul_scalar(coefs.vf_coef)
        - entropy.clone().mul_scalar(coefs.ent_coef);

    let ratio_d = ratio.detach();
    let log_ratio_d = log_ratio.detach();
    let approx_kl = (ratio_d.clone().sub_scalar(1.0) - log_ratio_d).mean();
    let clipfrac = ratio_d
        .sub_scalar(1.0)
        .abs()
        .greater_elem(eps)
        .float()
        .mean();
    PpoLoss {
        total,
        policy,
        value,
        entropy,
        approx_kl,
        clipfrac,
    }
}

/// `1 − Var(returns − values) / Var(returns)`: how much of the return variance the value
/// function explains (NaN when the returns are constant).
pub fn explained_variance(values: &[f32], returns: &[f32]) -> f64 {
    let var = |xs: &mut dyn Iterator<Item = f64>| {
        let v: Vec<f64> = xs.collect();
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n
    };
    let var_y = var(&mut returns.iter().map(|&r| r as f64));
    let var_diff = var(&mut returns.iter().zip(values).map(|(&r, &v)| (r - v) as f64));
    if var_y == 0.0 {
        f64::NAN
    } else {
        1.0 - var_diff / var_y
    }
}

/// Normalises `x` to zero mean and unit variance (with CleanRL's 1e-8 guard; sample std as
/// PyTorch's `std()`).
pub fn normalize(x: &mut [f32]) {
    let n = x.len();
    if n < 2 {
        return;
    }
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    for v in x {
        *v = ((*v as f64 - mean) / (std + 1e-8)) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use shoal_common::rng::Rng;

    /// GAE the slow way: for every t, sum the discounted TD errors forward until the episode
    /// ends or the rollout does.
    fn gae_reference(
        r: &[f32],
        v: &[f32],
        nv: &[f32],
        term: &[bool],
        end: &[bool],
        gamma: f64,
        lambda: f64,
    ) -> Vec<f32> {
        let t_len = r.len();
        (0..t_len)
            .map(|t| {
                let mut total = 0.0f64;
                let mut weight = 1.0f64;
                for k in t..t_len {
                    let boot = if term[k] { 0.0 } else { nv[k] as f64 };
                    let delta = r[k] as f64 + gamma * boot - v[k] as f64;
                    total += weight * delta;
                    if end[k] {
                        break;
                    }
                    weight *= gamma * lambda;
                }
                total as f32
            })
            .collect()
    }

    #[test]
    fn gae_matches_the_plain_loop_reference_on_seeded_data() {
        let mut rng = Rng::new(2024);
        for _case in 0..50 {
            let t_len = 1 + rng.below(64);
            let r: Vec<f32> = (0..t_len).map(|_| rng.normal() as f32).collect();
            let v: Vec<f32> = (0..t_len).map(|_| rng.normal() as f32).collect();
            let term: Vec<bool> = (0..t_len).map(|_| rng.next_f64() < 0.1).collect();
            let trunc: Vec<bool> = term.iter().map(|&d| !d && rng.next_f64() < 0.05).collect();
            let end: Vec<bool> = term.iter().zip(&trunc).map(|(a, b)| *a || *b).collect();
            // next values: V(s_{t+1}) inside episodes, a separate final-observation value at
            // truncations, a bootstrap value at the end.
            let bootstrap = rng.normal() as f32;
            let nv: Vec<f32> = (0..t_len)
                .map(|t| {
                    if trunc[t] {
                        10.0 + rng.normal() as f32
                    } else if t + 1 < t_len {
                        v[t + 1]
                    } else {
                        bootstrap
                    }
                })
                .collect();
            let (gamma, lambda) = (0.5 + 0.5 * rng.next_f64(), rng.next_f64());
            let got = gae(&r, &v, &nv, &term, &end, gamma, lambda);
            let want = gae_reference(&r, &v, &nv, &term, &end, gamma, lambda);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
            }
        }
    }

    #[test]
    fn truncation_bootstraps_and_termination_does_not() {
        // One step each; value of the final observation is 10.
        let term = gae(&[1.0], &[0.0], &[10.0], &[true], &[true], 0.9, 0.95);
        let trunc = gae(&[1.0], &[0.0], &[10.0], &[false], &[true], 0.9, 0.95);
        assert_eq!(term, vec![1.0]);
        assert!((trunc[0] - 10.0).abs() < 1e-6);
    }

    fn t1(v: &[f32]) -> Tensor<1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Device::flex())
    }

    fn scalar(t: Tensor<1>) -> f64 {
        t.into_data().convert::<f32>().as_slice::<f32>().unwrap()[0] as f64
    }

    #[test]
    fn ppo_loss_on_a_hand_computed_case() {
        let device = Device::flex();
        // Two samples, two actions. Sample 0: logits (0, ln 3) → π = (1/4, 3/4), took action 1.
        // Sample 1: logits (0, 0) → π = (1/2, 1/2), took action 0.
        let logits = Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, 3f32.ln(), 0.0, 0.0], [2, 2]),
            &device,
        );
        let one_hot = Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, 1.0, 1.0, 0.0], [2, 2]),
            &device,
        );
        // Old probabilities 1/2 and 1/4 → ratios 1.5 and 2.0.
        let old = t1(&[0.5f32.ln(), 0.25f32.ln()]);
        let adv = t1(&[1.0, -2.0]);
        let values = t1(&[1.0, 2.0]);
        let returns = t1(&[2.0, 0.0]);
        let coefs = LossCoefs {
            clip_coef: 0.2,
            vf_coef: 0.5,
            ent_coef: 0.01,
        };
        let loss = ppo_loss(
            categorical_eval(logits, one_hot),
            values,
            old,
            adv,
            returns,
            coefs,
        );
        // Sample 0: max(-1·1.5, -1·1.2) = -1.2. Sample 1: max(2·2.0, 2·1.2) = 4.0. Mean 1.4.
        let policy = 1.4;
        // ((1-2)^2 + (2-0)^2) / 2 = 2.5.
        let value = 2.5;
        let h0 = -(0.25f64 * 0.25f64.ln() + 0.75 * 0.75f64.ln());
        let h1 = 2f64.ln();
        let entropy = (h0 + h1) / 2.0;
        // approx KL: ((1.5 − 1 − ln 1.5) + (2 − 1 − ln 2)) / 2.
        let kl = ((0.5 - 1.5f64.ln()) + (1.0 - 2f64.ln())) / 2.0;
        let close = |a: f64, b: f64| (a - b).abs() < 1e-5;
        assert!(close(scalar(loss.policy), policy));
        assert!(close(scalar(loss.value), value));
        assert!(close(scalar(loss.entropy), entropy));
        assert!(close(scalar(loss.approx_kl), kl));
        assert!(close(scalar(loss.clipfrac), 1.0));
        let total = policy + 0.5 * value - 0.01 * entropy;
        assert!(close(scalar(loss.total), total));
    }

    #[test]
    fn explained_variance_and_normalize() {
        assert!((explained_variance(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]) - 1.0).abs() < 1e-12);
        assert!(explained_variance(&[0.0; 3], &[1.0, 2.0, 3.0]).abs() < 1e-12);
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        normalize(&mut x);
        let mean: f32 = x.iter().sum::<f32>() / 4.0;
        let std = (x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 3.0).sqrt();
        assert!(mean.abs() < 1e-6 && (std - 1.0).abs() < 1e-6);
    }
}
