//! PPO's loss as small pure functions, named as in the paper (Schulman et al. 2017) and
//! CleanRL: the clipped-surrogate objective on tensors (the autodiff reference the gradient at
//! the heads, `shoal_common::objective`, is tested against), advantage normalisation and
//! explained variance on the host. (GAE is in `shoal_common::returns`.)

use burn::tensor::Tensor;
use shoal_common::model::PolicyEval;
use shoal_common::objective::LossCoefs;

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
    let eps = coefs.clip_coef.expect("PPO's clipped surrogate");
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
    use shoal_common::model::categorical_eval;

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
            clip_coef: Some(0.2),
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
