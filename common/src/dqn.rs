//! Distributed DQN (Ape-X, Horgan et al. 2018) pieces shared by actors and learner: each actor's
//! exploration rate, the n-step returns it assembles, and the transition batch it pushes with its
//! validation at the learner's boundary.

use thiserror::Error;

use crate::codec::{decode_f32, encode_f32};
use crate::proto;

/// A batch of n-step transitions in host memory (`[B, ...]` arrays).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TransitionBatch {
    /// Sender.
    pub actor_id: u32,
    /// Parameter version the actions were chosen with.
    pub version: u64,
    /// `[B, O]`.
    pub obs: Vec<f32>,
    /// `[B]` action indices.
    pub actions: Vec<u32>,
    /// `[B]` n-step discounted rewards.
    pub rewards: Vec<f32>,
    /// `[B]` `γ^m`, or 0 after a terminal state.
    pub discounts: Vec<f32>,
    /// `[B, O]`.
    pub next_obs: Vec<f32>,
    /// Episodes finished while collecting.
    pub episode_returns: Vec<f32>,
    /// Their lengths.
    pub episode_lengths: Vec<u32>,
}

/// Why a transition batch was refused.
#[derive(Debug, Error, PartialEq)]
pub enum TransitionError {
    /// A field has the wrong length.
    #[error("transition field `{field}` has {got} bytes, expected {want}")]
    Length {
        /// The field.
        field: &'static str,
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// A value is NaN, infinite, beyond ±`MAX_ABS_VALUE` or out of range.
    #[error("transition field `{field}` holds an invalid value at index {index}")]
    Value {
        /// The field.
        field: &'static str,
        /// Flat index.
        index: usize,
    },
    /// Episode statistics are inconsistent.
    #[error("transition episode statistics are inconsistent")]
    Episodes,
}

impl TransitionBatch {
    /// Transitions in the batch.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Validates a batch of `batch` transitions with `obs_dim` observations and
    /// `num_actions` discrete actions.
    pub fn from_proto(
        msg: &proto::TransitionBatch,
        batch: usize,
        obs_dim: usize,
        num_actions: usize,
    ) -> Result<Self, TransitionError> {
        let floats = |field: &'static str, data: &[u8], len: usize| {
            let v = decode_f32(data, len).ok_or(TransitionError::Length {
                field,
                got: data.len(),
                want: len * 4,
            })?;
            match crate::codec::first_implausible(&v) {
                Some(index) => Err(TransitionError::Value { field, index }),
                None => Ok(v),
            }
        };
        let actions_f = floats("actions", &msg.actions, batch)?;
        if let Some(index) = actions_f
            .iter()
            .position(|&a| a < 0.0 || a.fract() != 0.0 || a as usize >= num_actions)
        {
            return Err(TransitionError::Value {
                field: "actions",
                index,
            });
        }
        let discounts = floats("discounts", &msg.discounts, batch)?;
        if let Some(index) = discounts.iter().position(|d| !(0.0..=1.0).contains(d)) {
            return Err(TransitionError::Value {
                field: "discounts",
                index,
            });
        }
        if msg.episode_returns.len() != msg.episode_lengths.len()
            || msg.episode_returns.len() > batch
            || msg
                .episode_returns
                .iter()
                .any(|r| !(r.is_finite() && r.abs() < 1e12))
        {
            return Err(TransitionError::Episodes);
        }
        Ok(Self {
            actor_id: msg.actor_id,
            version: msg.version,
            obs: floats("observations", &msg.observations, batch * obs_dim)?,
            actions: actions_f.iter().map(|&a| a as u32).collect(),
            rewards: floats("rewards", &msg.rewards, batch)?,
            discounts,
            next_obs: floats("next_observations", &msg.next_observations, batch * obs_dim)?,
            episode_returns: msg.episode_returns.clone(),
            episode_lengths: msg.episode_lengths.clone(),
        })
    }

    /// The wire form.
    pub fn to_proto(&self, model_fingerprint: &str) -> proto::TransitionBatch {
        let actions: Vec<f32> = self.actions.iter().map(|&a| a as f32).collect();
        proto::TransitionBatch {
            actor_id: self.actor_id,
            model_fingerprint: model_fingerprint.to_string(),
            version: self.version,
            observations: encode_f32(&self.obs),
            actions: encode_f32(&actions),
            rewards: encode_f32(&self.rewards),
            discounts: encode_f32(&self.discounts),
            next_observations: encode_f32(&self.next_obs),
            episode_returns: self.episode_returns.clone(),
            episode_lengths: self.episode_lengths.clone(),
            actor_stats: None,
        }
    }
}

/// Index of the largest value (the first on ties): the greedy action of a row of Q-values.
pub fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bq), (i, &q)| {
            if q > bq { (i, q) } else { (bi, bq) }
        })
        .0
}

/// Actor `i` of `n`'s ε: `ε^(1 + α·i/(n − 1))` (one actor: `ε`).
pub fn apex_epsilon(i: usize, n: usize, epsilon: f64, alpha: f64) -> f64 {
    if n <= 1 {
        return epsilon;
    }
    epsilon.powf(1.0 + alpha * i as f64 / (n - 1) as f64)
}

/// Linear decay from `start` to `end` over the first `horizon` steps, then `end` (Stable-
/// Baselines3's exploration schedule with `horizon = exploration_fraction · total_steps`).
pub fn linear_epsilon(start: f64, end: f64, horizon: f64, step: u64) -> f64 {
    let progress = step as f64 / horizon;
    // A horizon of 0 (progress NaN or infinite) means no decay at all.
    if progress.is_nan() || progress >= 1.0 {
        return end;
    }
    start + (end - start) * progress
}

/// The ε of the actor with schedule index `i` (actor id − 1, cycling over `num_actors`) once the
/// run has taken `env_steps` environment steps.
pub fn actor_epsilon(
    d: &crate::config::DqnConfig,
    total_steps: u64,
    i: usize,
    env_steps: u64,
) -> f64 {
    match d.epsilon_schedule {
        crate::config::EpsilonSchedule::Apex => {
            apex_epsilon(i % d.num_actors, d.num_actors, d.epsilon, d.epsilon_alpha)
        }
        crate::config::EpsilonSchedule::Linear => linear_epsilon(
            d.epsilon_start,
            d.epsilon_final,
            d.exploration_fraction * total_steps as f64,
            env_steps,
        ),
    }
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
    fn transition_batches_round_trip_and_bad_ones_are_refused() {
        let b = TransitionBatch {
            actor_id: 1,
            version: 3,
            obs: vec![0.0, 1.0, 2.0, 3.0],
            actions: vec![1, 0],
            rewards: vec![1.0, 2.9701],
            discounts: vec![0.0, 0.970299],
            next_obs: vec![4.0, 5.0, 6.0, 7.0],
            episode_returns: vec![9.0],
            episode_lengths: vec![9],
        };
        let msg = b.to_proto("fp");
        assert_eq!(TransitionBatch::from_proto(&msg, 2, 2, 2).unwrap(), b);
        assert!(matches!(
            TransitionBatch::from_proto(&msg, 2, 2, 1),
            Err(TransitionError::Value {
                field: "actions",
                index: 0
            })
        ));
        assert!(matches!(
            TransitionBatch::from_proto(&msg, 3, 2, 2),
            Err(TransitionError::Length { .. })
        ));
        let mut bad = msg.clone();
        bad.discounts = encode_f32(&[0.5, 1.5]);
        assert!(TransitionBatch::from_proto(&bad, 2, 2, 2).is_err());
        let mut bad = msg;
        bad.next_observations = encode_f32(&[0.0, f32::NAN, 0.0, 0.0]);
        assert!(matches!(
            TransitionBatch::from_proto(&bad, 2, 2, 2),
            Err(TransitionError::Value {
                field: "next_observations",
                index: 1
            })
        ));
    }

    #[test]
    fn apex_schedule() {
        assert_eq!(apex_epsilon(0, 1, 0.4, 7.0), 0.4);
        assert!((apex_epsilon(0, 8, 0.4, 7.0) - 0.4).abs() < 1e-12);
        assert!((apex_epsilon(7, 8, 0.4, 7.0) - 0.4f64.powi(8)).abs() < 1e-12);
        assert!(apex_epsilon(3, 8, 0.4, 7.0) < apex_epsilon(2, 8, 0.4, 7.0));
    }

    #[test]
    fn linear_schedule_decays_then_holds() {
        assert_eq!(linear_epsilon(1.0, 0.04, 8000.0, 0), 1.0);
        assert!((linear_epsilon(1.0, 0.04, 8000.0, 4000) - 0.52).abs() < 1e-12);
        assert_eq!(linear_epsilon(1.0, 0.04, 8000.0, 8000), 0.04);
        assert_eq!(linear_epsilon(1.0, 0.04, 8000.0, 80_000), 0.04);
        let mut d = crate::config::DqnConfig {
            epsilon_schedule: crate::config::EpsilonSchedule::Linear,
            epsilon_start: 1.0,
            epsilon_final: 0.1,
            exploration_fraction: 0.5,
            ..Default::default()
        };
        // Every actor gets the same ε, half-way down at a quarter of the run.
        assert!((actor_epsilon(&d, 1000, 0, 250) - 0.55).abs() < 1e-12);
        assert_eq!(
            actor_epsilon(&d, 1000, 0, 250),
            actor_epsilon(&d, 1000, 5, 250)
        );
        d.epsilon_schedule = crate::config::EpsilonSchedule::Apex;
        assert_eq!(actor_epsilon(&d, 1000, 0, 0), 0.4);
        assert_eq!(actor_epsilon(&d, 1000, 3, 0), actor_epsilon(&d, 1000, 1, 0));
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
