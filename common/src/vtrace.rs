//! V-trace (Espeholt et al. 2018, IMPALA, section 4): off-policy value targets and policy-gradient
//! advantages for experience made with an older policy μ, as a small pure function over one
//! environment's steps, beside GAE (`returns`), tested against a direct O(T²) evaluation of the
//! paper's equation 1.
//!
//! Inputs follow [`crate::returns`]: one environment's `T` steps in time order; a terminated step
//! does not bootstrap (its discount is 0), a truncated one bootstraps from the value of its final
//! observation, and no trace flows back across any episode end.

/// V-trace's truncation levels (the paper's ρ̄, c̄ and the policy gradient's ρ̄), and λ.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VTraceClip {
    /// ρ̄: truncates the importance weight of each temporal difference (which value function
    /// the targets converge to). The paper uses 1.
    pub rho_bar: f64,
    /// c̄: truncates the trace coefficients (how fast the targets converge). The paper uses 1.
    pub c_bar: f64,
    /// ρ̄ of the policy-gradient advantage. The paper uses 1.
    pub rho_bar_pg: f64,
    /// λ multiplies every trace coefficient (`c_i = λ min(c̄, ρ_i)`, the paper's remark 2);
    /// 1 is the plain V-trace.
    pub lambda: f64,
}

impl VTraceClip {
    /// The paper's setting: every truncation level 1, λ = 1.
    pub const PAPER: VTraceClip = VTraceClip {
        rho_bar: 1.0,
        c_bar: 1.0,
        rho_bar_pg: 1.0,
        lambda: 1.0,
    };
}

/// V-trace's outputs for one environment's steps.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VTrace {
    /// `v_s`: the value target of each step.
    pub vs: Vec<f32>,
    /// `ρ_s^pg (r_s + γ_s v_{s+1} − V(x_s))`: the advantage the policy gradient uses.
    pub pg_advantages: Vec<f32>,
}

/// V-trace targets and advantages for one environment's `T` steps, in time order.
///
/// - `log_rhos[t]`: `log π(a_t | x_t) − log μ(a_t | x_t)` (current over behaviour policy).
/// - `values[t]`: `V(x_t)`; `next_values[t]`: the value of the state after step `t`
///   ([`crate::returns::next_values`]: `V(x_{t+1})`, the final observation's value where the
///   episode was truncated, the bootstrap value after the last step).
/// - `discounts[t]`: γ for step `t`, 0 where the episode terminated after it.
/// - `episode_end[t]`: the episode ended after step `t` (terminated or truncated).
///
/// With `ρ_t = min(ρ̄, e^{log_rhos[t]})`, `c_t = λ min(c̄, e^{log_rhos[t]})` and
/// `δ_t = ρ_t (r_t + γ_t V_next(t) − V(x_t))`:
///
/// ```text
/// v_s − V(x_s) = δ_s + γ_s c_s (v_{s+1} − V(x_{s+1}))     (0 after an episode end or step T−1)
/// A_s = min(ρ̄_pg, e^{log_rhos[s]}) (r_s + γ_s v_next(s) − V(x_s))
/// ```
///
/// where `v_next(s)` is `v_{s+1}` within the episode and the steps given, else `V_next(s)`.
pub fn vtrace(
    log_rhos: &[f32],
    rewards: &[f32],
    values: &[f32],
    next_values: &[f32],
    discounts: &[f32],
    episode_end: &[bool],
    clip: VTraceClip,
) -> VTrace {
    let t_len = rewards.len();
    let mut vs = vec![0.0f64; t_len];
    let mut acc = 0.0f64;
    for t in (0..t_len).rev() {
        let rho = (log_rhos[t] as f64).exp();
        let delta = rho.min(clip.rho_bar)
            * (rewards[t] as f64 + discounts[t] as f64 * next_values[t] as f64 - values[t] as f64);
        let goes_on = if episode_end[t] { 0.0 } else { 1.0 };
        let c = clip.lambda * rho.min(clip.c_bar);
        acc = delta + discounts[t] as f64 * c * goes_on * acc;
        vs[t] = values[t] as f64 + acc;
    }
    let pg_advantages = (0..t_len)
        .map(|t| {
            let v_next = if episode_end[t] || t + 1 == t_len {
                next_values[t] as f64
            } else {
                vs[t + 1]
            };
            let rho_pg = (log_rhos[t] as f64).exp().min(clip.rho_bar_pg);
            (rho_pg * (rewards[t] as f64 + discounts[t] as f64 * v_next - values[t] as f64)) as f32
        })
        .collect();
    VTrace {
        vs: vs.into_iter().map(|v| v as f32).collect(),
        pg_advantages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::returns::{bootstrapped_returns, next_values};
    use crate::rng::Rng;

    /// Equation 1 of the paper, evaluated directly: for every s, the sum over t from s to the
    /// end of its episode (or of the steps) of (Π_{i=s}^{t−1} γ_i c_i) δ_t, with every product
    /// built from scratch.
    #[allow(clippy::needless_range_loop)] // the paper's sums, index by index
    fn vs_reference(
        log_rhos: &[f32],
        r: &[f32],
        v: &[f32],
        nv: &[f32],
        disc: &[f32],
        end: &[bool],
        clip: VTraceClip,
    ) -> Vec<f64> {
        let t_len = r.len();
        let rho = |t: usize| (log_rhos[t] as f64).exp();
        let mut out = Vec::with_capacity(t_len);
        for s in 0..t_len {
            let mut total = v[s] as f64;
            let mut t = s;
            loop {
                let mut weight = 1.0f64;
                for i in s..t {
                    weight *= disc[i] as f64 * clip.lambda * rho(i).min(clip.c_bar);
                }
                let delta = rho(t).min(clip.rho_bar)
                    * (r[t] as f64 + disc[t] as f64 * nv[t] as f64 - v[t] as f64);
                total += weight * delta;
                if end[t] || t + 1 == t_len {
                    break;
                }
                t += 1;
            }
            out.push(total);
        }
        out
    }

    /// The policy-gradient advantage from the reference targets.
    #[allow(clippy::too_many_arguments)]
    fn pg_reference(
        log_rhos: &[f32],
        r: &[f32],
        v: &[f32],
        nv: &[f32],
        disc: &[f32],
        end: &[bool],
        vs: &[f64],
        rho_bar_pg: f64,
    ) -> Vec<f64> {
        (0..r.len())
            .map(|s| {
                let next = if end[s] || s + 1 == r.len() {
                    nv[s] as f64
                } else {
                    vs[s + 1]
                };
                let rho = (log_rhos[s] as f64).exp().min(rho_bar_pg);
                rho * (r[s] as f64 + disc[s] as f64 * next - v[s] as f64)
            })
            .collect()
    }

    /// One environment's seeded steps: log ρ in [−2.5, 2.5), rewards, values, terminated and
    /// truncated flags (never both), their next values and per-step discounts (0 where
    /// terminated, otherwise `gamma` or, with `varied`, anything in [0.5, 1)).
    struct Case {
        log_rhos: Vec<f32>,
        r: Vec<f32>,
        v: Vec<f32>,
        nv: Vec<f32>,
        disc: Vec<f32>,
        term: Vec<bool>,
        trunc: Vec<bool>,
        end: Vec<bool>,
    }

    fn case(rng: &mut Rng, t_len: usize, gamma: f64, varied: bool) -> Case {
        let log_rhos = (0..t_len)
            .map(|_| (-2.5 + 5.0 * rng.next_f64()) as f32)
            .collect();
        let r = (0..t_len).map(|_| rng.normal() as f32).collect();
        let v: Vec<f32> = (0..t_len).map(|_| rng.normal() as f32).collect();
        let term: Vec<bool> = (0..t_len).map(|_| rng.next_f64() < 0.1).collect();
        let trunc: Vec<bool> = term.iter().map(|&d| !d && rng.next_f64() < 0.05).collect();
        let tv: Vec<f32> = (0..t_len).map(|_| 5.0 + rng.normal() as f32).collect();
        let nv = next_values(&v, &trunc, &tv, rng.normal() as f32);
        let disc = term
            .iter()
            .map(|&d| match (d, varied) {
                (true, _) => 0.0,
                (false, true) => (0.5 + 0.5 * rng.next_f64()) as f32,
                (false, false) => gamma as f32,
            })
            .collect();
        let end = term.iter().zip(&trunc).map(|(a, b)| a | b).collect();
        Case {
            log_rhos,
            r,
            v,
            nv,
            disc,
            term,
            trunc,
            end,
        }
    }

    fn run(c: &Case, clip: VTraceClip) -> VTrace {
        vtrace(&c.log_rhos, &c.r, &c.v, &c.nv, &c.disc, &c.end, clip)
    }

    fn close(got: f32, want: f64) -> bool {
        (got as f64 - want).abs() <= 1e-5 * want.abs().max(1.0)
    }

    #[test]
    fn vtrace_matches_equation_1_evaluated_directly_on_seeded_data() {
        let mut rng = Rng::new(15);
        for i in 0..200 {
            let gamma = [0.9, 0.99, 0.5, 1.0][i % 4];
            let t_len = 1 + rng.below(64);
            let c = case(&mut rng, t_len, gamma, i % 3 == 0);
            let clip = VTraceClip {
                rho_bar: 3.7,
                c_bar: [1.0, 0.9, 3.7][i % 3],
                rho_bar_pg: 2.2,
                lambda: [1.0, 0.95][i % 2],
            };
            let got = run(&c, clip);
            let vs = vs_reference(&c.log_rhos, &c.r, &c.v, &c.nv, &c.disc, &c.end, clip);
            let pg = pg_reference(
                &c.log_rhos,
                &c.r,
                &c.v,
                &c.nv,
                &c.disc,
                &c.end,
                &vs,
                clip.rho_bar_pg,
            );
            for t in 0..c.r.len() {
                assert!(
                    close(got.vs[t], vs[t]),
                    "case {i} t {t}: {} vs {}",
                    got.vs[t],
                    vs[t]
                );
                assert!(
                    close(got.pg_advantages[t], pg[t]),
                    "case {i} t {t}: {} vs {}",
                    got.pg_advantages[t],
                    pg[t]
                );
            }
        }
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn on_policy_vtrace_targets_are_the_n_step_returns() {
        let mut rng = Rng::new(7);
        for i in 0..50 {
            let gamma = [0.99, 0.9, 0.7][i % 3];
            let t_len = 1 + rng.below(40);
            let mut c = case(&mut rng, t_len, gamma, false);
            c.log_rhos = vec![0.0; c.r.len()];
            // No clipping is active at ρ = 1 under these levels.
            let clip = VTraceClip {
                rho_bar: 3.7,
                c_bar: 1.0,
                rho_bar_pg: 2.2,
                lambda: 1.0,
            };
            let got = run(&c, clip);
            let returns = bootstrapped_returns(&c.r, &c.term, &c.trunc, &c.nv, gamma);
            for t in 0..c.r.len() {
                assert!(
                    close(got.vs[t], returns[t] as f64),
                    "{} vs {}",
                    got.vs[t],
                    returns[t]
                );
                // On-policy, the advantage is the return minus the value.
                let adv = returns[t] as f64 - c.v[t] as f64;
                assert!(close(got.pg_advantages[t], adv));
            }
        }
    }

    #[test]
    fn truncation_bootstraps_termination_does_not_and_nothing_crosses_an_end() {
        // Two steps, values 0, V_next of step 0 is 10 (its final observation where truncated).
        let (r, v) = ([1.0f32, 2.0], [0.0f32, 0.0]);
        let clip = VTraceClip::PAPER;
        // Terminated after step 0: v_0 = r_0, no bootstrap, nothing from step 1.
        let out = vtrace(
            &[0.0; 2],
            &r,
            &v,
            &[10.0, 3.0],
            &[0.0, 0.5],
            &[true, false],
            clip,
        );
        assert_eq!(out.vs[0], 1.0);
        assert_eq!(out.pg_advantages[0], 1.0);
        // Truncated after step 0: v_0 = r_0 + γ·10, still nothing from step 1.
        let out = vtrace(
            &[0.0; 2],
            &r,
            &v,
            &[10.0, 3.0],
            &[0.5, 0.5],
            &[true, false],
            clip,
        );
        assert_eq!(out.vs[0], 6.0);
        assert_eq!(out.pg_advantages[0], 6.0);
        // Step 1 bootstraps from its own next value either way: 2 + 0.5·3.
        assert_eq!(out.vs[1], 3.5);
        // No end: v_0 = r_0 + γ v_1 = 1 + 0.5·3.5.
        let out = vtrace(
            &[0.0; 2],
            &r,
            &v,
            &[0.0, 3.0],
            &[0.5, 0.5],
            &[false, false],
            clip,
        );
        assert_eq!(out.vs[0], 2.75);
    }

    #[test]
    fn clipping_truncates_the_importance_weights() {
        // One step, π/μ = e: δ is weighted by ρ̄ = 1, the advantage by ρ̄_pg = 2.
        let clip = VTraceClip {
            rho_bar_pg: 2.0,
            ..VTraceClip::PAPER
        };
        let out = vtrace(&[1.0], &[1.0], &[0.0], &[0.0], &[0.9], &[false], clip);
        assert_eq!(out.vs, vec![1.0]);
        assert_eq!(out.pg_advantages, vec![2.0]);
        // π/μ = e^-1: both use the ratio itself.
        let out = vtrace(&[-1.0], &[1.0], &[0.0], &[0.0], &[0.9], &[false], clip);
        assert!((out.vs[0] - (-1.0f32).exp()).abs() < 1e-7);
        // Off-policy traces are cut by c = min(c̄, ρ): step 1's error reaches step 0 scaled by
        // γ c_0 = 0.5 · e^-1.
        let out = vtrace(
            &[-1.0, 0.0],
            &[0.0, 1.0],
            &[0.0, 0.0],
            &[0.0, 0.0],
            &[0.5, 0.5],
            &[false, false],
            VTraceClip::PAPER,
        );
        assert!((out.vs[0] - 0.5 * (-1.0f32).exp()).abs() < 1e-7);
    }
}
