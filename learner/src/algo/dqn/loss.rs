//! DQN's math as small pure functions: the double-DQN target (van Hasselt et al. 2016), the
//! Huber loss, and Polyak averaging of the target network.

use burn::tensor::Tensor;

/// The double-DQN target for one transition (van Hasselt et al. 2016): the online network picks
/// the next action, the target network values it:
///
/// y = r + discount · Q_target(s', argmax_a Q_online(s', a))
///
/// `discount` is `γ^n`, or 0 when the episode terminated (no bootstrap).
pub fn double_dqn_target(
    reward: f32,
    discount: f32,
    q_online_next: &[f32],
    q_target_next: &[f32],
) -> f32 {
    reward + discount * q_target_next[shoal_common::model::argmax(q_online_next)]
}

/// Huber loss per element (δ = 1, as PyTorch's `smooth_l1_loss` and Stable-Baselines3's DQN):
/// `½x²` for `|x| ≤ 1`, `|x| − ½` beyond.
pub fn huber(x: Tensor<1>) -> Tensor<1> {
    let abs = x.abs();
    let quadratic = abs.clone().clamp_max(1.0);
    let linear = abs - quadratic.clone();
    quadratic.square().mul_scalar(0.5) + linear
}

/// [`huber`] of one value.
pub fn huber_value(x: f64) -> f64 {
    let a = x.abs();
    if a <= 1.0 { 0.5 * a * a } else { a - 0.5 }
}

/// `d/dx` of [`huber_value`]: `x` inside `[−1, 1]`, its sign beyond.
pub fn huber_grad(x: f32) -> f32 {
    x.clamp(-1.0, 1.0)
}

/// Polyak averaging of target parameters: `target ← τ·online + (1 − τ)·target`, elementwise
/// (τ = 1 copies).
pub fn polyak_update(target: &mut [f32], online: &[f32], tau: f64) {
    if tau >= 1.0 {
        target.copy_from_slice(online);
        return;
    }
    let tau = tau as f32;
    for (t, &o) in target.iter_mut().zip(online) {
        *t = tau * o + (1.0 - tau) * *t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn double_dqn_target_on_a_hand_computed_case() {
        // The online net prefers action 2; the target net values it at 0.5 (its own max is 4.0,
        // which plain DQN would use).
        let y = double_dqn_target(1.0, 0.9, &[0.1, 0.3, 0.7], &[4.0, 2.0, 0.5]);
        assert!((y - (1.0 + 0.9 * 0.5)).abs() < 1e-6);
        // A terminal transition does not bootstrap.
        assert_eq!(
            double_dqn_target(1.0, 0.0, &[0.1, 0.3, 0.7], &[4.0, 2.0, 0.5]),
            1.0
        );
    }

    #[test]
    fn huber_is_quadratic_near_zero_and_linear_beyond() {
        let x = Tensor::<1>::from_data(
            TensorData::new(vec![-3.0f32, -1.0, -0.5, 0.0, 0.5, 2.0], [6]),
            &Device::flex(),
        );
        let got = huber(x)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap();
        let want = [2.5, 0.5, 0.125, 0.0, 0.125, 1.5];
        for ((g, w), x) in got.iter().zip(want).zip([-3.0, -1.0, -0.5, 0.0, 0.5, 2.0]) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
            assert_eq!(huber_value(x), w as f64, "huber_value({x})");
        }
    }

    #[test]
    fn polyak_update_mixes_and_tau_one_copies() {
        let mut target = vec![0.0f32, 10.0, -4.0];
        polyak_update(&mut target, &[1.0, 0.0, 4.0], 0.25);
        assert_eq!(target, vec![0.25, 7.5, -2.0]);
        polyak_update(&mut target, &[1.0, 2.0, 3.0], 1.0);
        assert_eq!(target, vec![1.0, 2.0, 3.0]);
    }
}
