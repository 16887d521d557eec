//! Actor-side math of distributed DQN (Ape-X, Horgan et al. 2018): each actor's exploration rate
//! and the n-step transitions it assembles before pushing.

/// Actor `i` of `n`'s ε: `ε^(1 + α·i/(n − 1))` (one actor: `ε`).
pub fn apex_epsilon(i: usize, n: usize, epsilon: f64, alpha: f64) -> f64 {
    if n <= 1 {
        return epsilon;
    }
    epsilon.powf(1.0 + alpha * i as f64 / (n - 1) as f64)
}

/// The n-step return of the transition starting at step `t` of one environment's steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NStep {
    /// `Σ_{k<m} γ^k r_{t+k}` over the `m ≤ n` steps taken.
    pub reward: f32,
    /// `γ^m` when the return bootstraps from the observation after step `t + m − 1`; 0 when the
    /// episode terminated within the m steps.
    pub discount: f32,
    /// m: how many steps ahead the next observation is (1..=n).
    pub steps: usize,
}

/// n-step returns for every start `t` of one environment's `T` steps, in time order: each sums
/// up to `n` rewards and stops early at an episode end (terminated: no bootstrap; truncated:
/// bootstrap from the final observation) or at the end of the steps given (bootstrap from the
/// last observation). A transition that ran out of steps before `n` without an episode end is
/// still returned, with `steps < n`; an actor that keeps a window across pushes completes it
/// later instead.
pub fn n_step_returns(
    rewards: &[f32],
    terminated: &[bool],
    truncated: &[bool],
    gamma: f64,
    n: usize,
) -> Vec<NStep> {
    let t_len = rewards.len();
    (0..t_len)
        .map(|t| {
            let mut reward = 0.0f64;
            let mut discount = 1.0f64;
            let mut steps = 0;
            for k in t..(t + n).min(t_len) {
                reward += discount * rewards[k] as f64;
                discount *= gamma;
                steps += 1;
                if terminated[k] {
                    discount = 0.0;
                    break;
                }
                if truncated[k] {
                    break;
                }
            }
            NStep {
                reward: reward as f32,
                discount: discount as f32,
                steps,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn apex_schedule() {
        assert_eq!(apex_epsilon(0, 1, 0.4, 7.0), 0.4);
        assert!((apex_epsilon(0, 8, 0.4, 7.0) - 0.4).abs() < 1e-12);
        assert!((apex_epsilon(7, 8, 0.4, 7.0) - 0.4f64.powi(8)).abs() < 1e-12);
        assert!(apex_epsilon(3, 8, 0.4, 7.0) < apex_epsilon(2, 8, 0.4, 7.0));
    }

    /// The n-step return written the other way: a sum over an explicit list of the steps taken.
    fn reference(r: &[f32], term: &[bool], trunc: &[bool], g: f64, n: usize, t: usize) -> NStep {
        let mut taken = Vec::new();
        let mut k = t;
        while k < r.len() && taken.len() < n {
            taken.push(k);
            if term[k] || trunc[k] {
                break;
            }
            k += 1;
        }
        let reward: f64 = taken
            .iter()
            .enumerate()
            .map(|(j, &k)| g.powi(j as i32) * r[k] as f64)
            .sum();
        let ended_terminal = term[*taken.last().unwrap()];
        NStep {
            reward: reward as f32,
            discount: if ended_terminal {
                0.0
            } else {
                g.powi(taken.len() as i32) as f32
            },
            steps: taken.len(),
        }
    }

    #[test]
    fn n_step_returns_match_the_plain_loop_reference_on_seeded_data() {
        let mut rng = Rng::new(5);
        for _ in 0..200 {
            let t_len = 1 + rng.below(30);
            let n = 1 + rng.below(5);
            let r: Vec<f32> = (0..t_len).map(|_| rng.normal() as f32).collect();
            let term: Vec<bool> = (0..t_len).map(|_| rng.next_f64() < 0.1).collect();
            let trunc: Vec<bool> = term.iter().map(|&d| !d && rng.next_f64() < 0.05).collect();
            let g = 0.9 + 0.1 * rng.next_f64();
            let got = n_step_returns(&r, &term, &trunc, g, n);
            for (t, x) in got.iter().enumerate() {
                let want = reference(&r, &term, &trunc, g, n, t);
                assert_eq!(x.steps, want.steps);
                assert!(
                    (x.reward - want.reward).abs() < 1e-5
                        && (x.discount - want.discount).abs() < 1e-6
                );
            }
        }
    }
}
