//! The KL leash of RL fine-tuning from a pretrained policy (Ziegler et al. 2019, "Fine-Tuning
//! Language Models from Human Preferences"; Stiennon et al. 2020): each step's reward is
//! penalised by β times the log-ratio of the acting policy to the frozen reference, and β can be
//! adapted to hold the KL near a target.

/// `r_t ← r_t − β·(log π(a_t|s_t) − log π_ref(a_t|s_t))` for every step; returns the mean
/// log-ratio, the sampled estimate of KL(π ‖ π_ref) per step.
pub fn penalize_rewards(
    rewards: &mut [f32],
    log_probs: &[f32],
    ref_log_probs: &[f32],
    beta: f64,
) -> f64 {
    assert_eq!(rewards.len(), log_probs.len());
    assert_eq!(rewards.len(), ref_log_probs.len());
    let mut sum = 0.0;
    for ((r, &lp), &lp_ref) in rewards.iter_mut().zip(log_probs).zip(ref_log_probs) {
        let log_ratio = f64::from(lp) - f64::from(lp_ref);
        sum += log_ratio;
        *r = (f64::from(*r) - beta * log_ratio) as f32;
    }
    sum / rewards.len().max(1) as f64
}

/// Ziegler et al.'s adaptive controller: `β·(1 + K_β·clip(KL/target − 1, −0.2, 0.2))` with
/// `K_β = 0.1` per update; `target` 0 keeps β.
pub fn adapt_beta(beta: f64, kl: f64, target: f64) -> f64 {
    const K_BETA: f64 = 0.1;
    if target <= 0.0 || !kl.is_finite() {
        return beta;
    }
    let error = (kl / target - 1.0).clamp(-0.2, 0.2);
    beta * (1.0 + K_BETA * error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Against a plain loop on seeded data.
    #[test]
    fn the_penalty_is_beta_times_the_log_ratio_of_each_step() {
        let mut rng = Rng::new(11);
        let n = 50;
        let rewards: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
        let lp: Vec<f32> = (0..n).map(|_| -rng.uniform(0.0, 3.0) as f32).collect();
        let lp_ref: Vec<f32> = (0..n).map(|_| -rng.uniform(0.0, 3.0) as f32).collect();
        let mut got = rewards.clone();
        let kl = penalize_rewards(&mut got, &lp, &lp_ref, 0.3);
        let mut want_kl = 0.0;
        for i in 0..n {
            let ratio = lp[i] as f64 - lp_ref[i] as f64;
            want_kl += ratio / n as f64;
            assert!((got[i] as f64 - (rewards[i] as f64 - 0.3 * ratio)).abs() < 1e-6);
        }
        assert!((kl - want_kl).abs() < 1e-12);
    }

    #[test]
    fn beta_grows_above_the_target_and_shrinks_below_by_at_most_two_percent() {
        assert_eq!(adapt_beta(0.1, 5.0, 0.0), 0.1);
        assert!((adapt_beta(0.1, 0.2, 0.1) - 0.102).abs() < 1e-12);
        assert!((adapt_beta(0.1, 0.0, 0.1) - 0.098).abs() < 1e-12);
        assert!((adapt_beta(0.1, 0.11, 0.1) - 0.1 * (1.0 + 0.1 * 0.1)).abs() < 1e-12);
        assert_eq!(adapt_beta(0.1, f64::NAN, 0.1), 0.1);
    }
}
