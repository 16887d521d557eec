//! A PPO batch: the rollouts of one update with GAE advantages and value targets, flattened
//! into host arrays.

use shoal_common::obs::{ObsFormat, Observations};
use shoal_common::returns::{column, from_columns, gae, next_values};
use shoal_common::rollout::Rollout;

/// A flattened PPO batch in host memory.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// `[B, O]`.
    pub obs: Observations,
    /// `[B]` action indices (categorical) or `[B, A]` actions (Gaussian).
    pub actions: Vec<f32>,
    /// `[B]`.
    pub log_probs: Vec<f32>,
    /// `[B]`.
    pub advantages: Vec<f32>,
    /// `[B]`.
    pub returns: Vec<f32>,
    /// `[B]` behaviour values.
    pub values: Vec<f32>,
}

impl Batch {
    /// Computes GAE per environment of every rollout and flattens them into one batch.
    pub fn from_rollouts(rollouts: &[Rollout], gamma: f64, lambda: f64) -> Self {
        let format = rollouts
            .first()
            .map_or(ObsFormat::F32, |r| r.shape.obs_format);
        let values: usize = rollouts.iter().map(|r| r.obs.len()).sum();
        let mut batch = Batch {
            obs: Observations::with_capacity(format, values),
            ..Batch::default()
        };
        for r in rollouts {
            let (t_len, n) = (r.shape.n_steps, r.shape.num_envs);
            let o = r.shape.obs_dim;
            let advantages = from_columns(t_len, n, |env| {
                let values = column(&r.values, n, env);
                let terminated = column(&r.terminated, n, env);
                let truncated = column(&r.truncated, n, env);
                let ends: Vec<bool> = terminated
                    .iter()
                    .zip(&truncated)
                    .map(|(a, b)| a | b)
                    .collect();
                let next = next_values(
                    &values,
                    &truncated,
                    &column(&r.truncation_values, n, env),
                    r.bootstrap_values[env],
                );
                let rewards = column(&r.rewards, n, env);
                gae(&rewards, &values, &next, &terminated, &ends, gamma, lambda)
            });
            batch.obs.extend_from(&r.obs, 0..t_len * n * o);
            batch.actions.extend_from_slice(&r.actions);
            batch.log_probs.extend_from_slice(&r.log_probs);
            batch.values.extend_from_slice(&r.values);
            batch
                .returns
                .extend(advantages.iter().zip(&r.values).map(|(a, v)| a + v));
            batch.advantages.extend(advantages);
        }
        batch
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.log_probs.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.log_probs.is_empty()
    }
}
