//! Returns and advantages as small pure functions over one environment's steps, named as in the
//! papers: generalised advantage estimation (Schulman et al. 2016) and n-step returns (Mnih et
//! al. 2016; Horgan et al. 2018), with the `[T, N]` column helpers that feed them. Each is tested
//! against a plain-loop reference on seeded data.
//!
//! Experience arrives as row-major `[T, N]` arrays (T steps of N environments); the estimators
//! run on one environment's column in time order. Everywhere: a terminated step does not
//! bootstrap, a truncated one bootstraps from the value of its final observation, and nothing
//! flows back across an episode end.

/// Column `env` of a row-major `[T, N]` array, in time order.
pub fn column<T: Copy>(v: &[T], n: usize, env: usize) -> Vec<T> {
    v.iter().skip(env).step_by(n).copied().collect()
}

/// A row-major `[T, N]` array assembled from one column per environment (`per_env(env)` gives
/// column `env`, `T` long).
pub fn from_columns<T: Copy + Default>(
    t_len: usize,
    n: usize,
    mut per_env: impl FnMut(usize) -> Vec<T>,
) -> Vec<T> {
    let mut out = vec![T::default(); t_len * n];
    for env in 0..n {
        for (t, x) in per_env(env).into_iter().enumerate() {
            out[t * n + env] = x;
        }
    }
    out
}

/// The value of the state after each step of one environment's `T` steps: the value of the
/// final observation where the episode was truncated after step `t`, `V(s_{t+1})` within the
/// rollout, and `bootstrap` (the value of the observation reached) after the last step.
pub fn next_values(
    values: &[f32],
    truncated: &[bool],
    truncation_values: &[f32],
    bootstrap: f32,
) -> Vec<f32> {
    let t_len = values.len();
    (0..t_len)
        .map(|t| {
            if truncated[t] {
                truncation_values[t]
            } else if t + 1 < t_len {
                values[t + 1]
            } else {
                bootstrap
            }
        })
        .collect()
}

/// Generalised advantage estimation for one environment's `T` steps, in time order.
///
/// `next_values[t]` is the value of the state after step `t` ([`next_values`]). A terminated
/// step does not bootstrap (`terminated[t]`), and no advantage flows back across any episode end
/// (`episode_end[t]`, terminated or truncated):
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

/// The n-step return of the transition starting at one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NStep {
    /// `Σ_{k<m} γ^k r_{t+k}` over the `m ≤ n` steps taken.
    pub reward: f32,
    /// `γ^m` when the return bootstraps from the state after step `t + m − 1`; 0 when the
    /// episode terminated within the m steps.
    pub discount: f32,
    /// m: how many steps ahead the bootstrap state is (1..=n).
    pub steps: usize,
}

/// n-step returns for every start `t` of one environment's `T` steps, in time order: each sums
/// up to `n` rewards and stops early at an episode end (terminated: no bootstrap; truncated:
/// bootstrap from the final observation) or at the end of the steps given (bootstrap from the
/// observation reached). A transition that ran out of steps before `n` without an episode end is
/// still returned, with `steps < n`.
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

/// The returns of every step, each running to the episode's end or the end of the steps given
/// and bootstrapped there (A3C's n-step returns, Mnih et al. 2016, Algorithm S3): the
/// [`n_step_returns`] with `n = T`, plus `γ^m` times the value of the state reached
/// (`next_values`, see [`next_values`]; none after a terminated step).
///
/// R_t = r_t                     if the episode terminated after step t
/// R_t = r_t + γ V_next(t)       if it was truncated after step t, or t is the last step
/// R_t = r_t + γ R_{t+1}         otherwise
pub fn bootstrapped_returns(
    rewards: &[f32],
    terminated: &[bool],
    truncated: &[bool],
    next_values: &[f32],
    gamma: f64,
) -> Vec<f32> {
    n_step_returns(rewards, terminated, truncated, gamma, rewards.len())
        .iter()
        .enumerate()
        .map(|(t, r)| {
            let boot = next_values[t + r.steps - 1] as f64;
            (r.reward as f64 + r.discount as f64 * boot) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

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

    /// Seeded steps of one environment: rewards, values, terminated and truncated flags (never
    /// both), truncation values and a bootstrap value.
    struct Steps {
        r: Vec<f32>,
        v: Vec<f32>,
        term: Vec<bool>,
        trunc: Vec<bool>,
        tv: Vec<f32>,
        boot: f32,
    }

    fn steps(rng: &mut Rng, max_len: usize, p_term: f64, p_trunc: f64) -> Steps {
        let t_len = 1 + rng.below(max_len);
        let r = (0..t_len).map(|_| rng.normal() as f32).collect();
        let v = (0..t_len).map(|_| rng.normal() as f32).collect();
        let term: Vec<bool> = (0..t_len).map(|_| rng.next_f64() < p_term).collect();
        let trunc = term
            .iter()
            .map(|&d| !d && rng.next_f64() < p_trunc)
            .collect();
        let tv = (0..t_len).map(|_| 10.0 + rng.normal() as f32).collect();
        Steps {
            r,
            v,
            term,
            trunc,
            tv,
            boot: rng.normal() as f32,
        }
    }

    #[test]
    fn gae_matches_the_plain_loop_reference_on_seeded_data() {
        let mut rng = Rng::new(2024);
        for _case in 0..50 {
            let s = steps(&mut rng, 64, 0.1, 0.05);
            let end: Vec<bool> = s.term.iter().zip(&s.trunc).map(|(a, b)| a | b).collect();
            let nv = next_values(&s.v, &s.trunc, &s.tv, s.boot);
            let (gamma, lambda) = (0.5 + 0.5 * rng.next_f64(), rng.next_f64());
            let got = gae(&s.r, &s.v, &nv, &s.term, &end, gamma, lambda);
            let want = gae_reference(&s.r, &s.v, &nv, &s.term, &end, gamma, lambda);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
            }
        }
    }

    #[test]
    fn gae_truncation_bootstraps_and_termination_does_not() {
        // One step each; value of the final observation is 10.
        let term = gae(&[1.0], &[0.0], &[10.0], &[true], &[true], 0.9, 0.95);
        let trunc = gae(&[1.0], &[0.0], &[10.0], &[false], &[true], 0.9, 0.95);
        assert_eq!(term, vec![1.0]);
        assert!((trunc[0] - 10.0).abs() < 1e-6);
    }

    /// The n-step return written the other way: a sum over an explicit list of the steps taken.
    fn n_step_reference(
        r: &[f32],
        term: &[bool],
        trunc: &[bool],
        g: f64,
        n: usize,
        t: usize,
    ) -> NStep {
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
            let s = steps(&mut rng, 30, 0.1, 0.05);
            let n = 1 + rng.below(5);
            let g = 0.9 + 0.1 * rng.next_f64();
            let got = n_step_returns(&s.r, &s.term, &s.trunc, g, n);
            for (t, x) in got.iter().enumerate() {
                let want = n_step_reference(&s.r, &s.term, &s.trunc, g, n, t);
                assert_eq!(x.steps, want.steps);
                assert!(
                    (x.reward - want.reward).abs() < 1e-5
                        && (x.discount - want.discount).abs() < 1e-6
                );
            }
        }
    }

    /// Bootstrapped returns the slow way: for each t, sum discounted rewards forward until the
    /// episode ends (adding the truncation value if it was cut) or the steps do (adding the
    /// bootstrap).
    fn bootstrapped_reference(
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
    fn bootstrapped_returns_match_the_plain_loop_reference_on_seeded_data() {
        let mut rng = Rng::new(99);
        for _ in 0..100 {
            let s = steps(&mut rng, 20, 0.15, 0.1);
            let g = 0.5 + 0.5 * rng.next_f64();
            let nv = next_values(&s.v, &s.trunc, &s.tv, s.boot);
            let got = bootstrapped_returns(&s.r, &s.term, &s.trunc, &nv, g);
            let want = bootstrapped_reference(&s.r, &s.term, &s.trunc, &s.tv, s.boot, g);
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn columns_round_trip_row_major_arrays() {
        // [T=3, N=2]: row t holds (10t, 10t + 1).
        let v = [0, 1, 10, 11, 20, 21];
        assert_eq!(column(&v, 2, 0), vec![0, 10, 20]);
        assert_eq!(column(&v, 2, 1), vec![1, 11, 21]);
        assert_eq!(from_columns(3, 2, |env| column(&v, 2, env)), v.to_vec());
    }
}
