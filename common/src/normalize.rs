//! Observation normalisation and reward scaling that every actor of a run applies the same way.
//!
//! Actors measure the raw observations and discounted returns they see during a rollout
//! ([`NormStats`] of that rollout) and send them with it. The learner merges the rollouts it
//! trains on into the run's statistics (the parallel form of Welford's algorithm, Chan et al.
//! 1979) and ships them with every parameter version. An actor transforms its data with the
//! statistics of the version it acts with ([`Normalizer`]), so the rollouts of one update all
//! saw the same transformation, whichever actor collected them. The transformation is
//! Stable-Baselines3's `VecNormalize`:
//!
//! ```text
//! obs'    = clip((obs − mean_obs) / sqrt(var_obs + ε), ±clip_obs)
//! reward' = clip(reward / sqrt(var_ret + ε), ±clip_reward)
//! ret     ← γ·ret + reward   (per environment, reset when an episode ends)
//! ```
//! where `var_ret` is the variance of the running discounted return `ret`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::proto;

/// Count, mean and sum of squared deviations (`M2`) of a set of vectors, per dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    /// Number of samples.
    pub count: f64,
    /// Per-dimension mean.
    pub mean: Vec<f64>,
    /// Per-dimension sum of squared deviations from the mean.
    pub m2: Vec<f64>,
}

impl Moments {
    /// No samples, `dim` dimensions.
    pub fn new(dim: usize) -> Self {
        Self {
            count: 0.0,
            mean: vec![0.0; dim],
            m2: vec![0.0; dim],
        }
    }

    /// Dimensions.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Adds one sample (Welford's update).
    pub fn push(&mut self, x: &[f32]) {
        debug_assert_eq!(x.len(), self.dim());
        self.count += 1.0;
        for ((mean, m2), &x) in self.mean.iter_mut().zip(&mut self.m2).zip(x) {
            let x = x as f64;
            let delta = x - *mean;
            *mean += delta / self.count;
            *m2 += delta * (x - *mean);
        }
    }

    /// Merges `other` in, as if its samples had been pushed here (Chan et al.'s parallel
    /// combination).
    pub fn merge(&mut self, other: &Moments) {
        debug_assert_eq!(other.dim(), self.dim());
        if other.count == 0.0 {
            return;
        }
        let n = self.count + other.count;
        for i in 0..self.dim() {
            let delta = other.mean[i] - self.mean[i];
            self.mean[i] += delta * other.count / n;
            self.m2[i] += other.m2[i] + delta * delta * self.count * other.count / n;
        }
        self.count = n;
    }

    /// Population variance per dimension; 1 while there are no samples (so that an empty set
    /// of statistics leaves data unchanged).
    pub fn variance(&self) -> Vec<f64> {
        if self.count == 0.0 {
            return vec![1.0; self.dim()];
        }
        self.m2.iter().map(|m2| m2 / self.count).collect()
    }

    fn to_proto(&self) -> proto::Moments {
        let f64_bytes = |v: &[f64]| -> Bytes { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        proto::Moments {
            count: self.count,
            mean: f64_bytes(&self.mean),
            m2: f64_bytes(&self.m2),
        }
    }

    fn from_proto(
        msg: Option<&proto::Moments>,
        dim: usize,
        field: &'static str,
    ) -> Result<Self, NormStatsError> {
        let msg = msg.ok_or(NormStatsError::Missing(field))?;
        let values = |bytes: &Bytes| -> Result<Vec<f64>, NormStatsError> {
            if bytes.len() != dim * 8 {
                return Err(NormStatsError::Length {
                    field,
                    got: bytes.len(),
                    want: dim * 8,
                });
            }
            Ok(bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect())
        };
        let moments = Self {
            count: msg.count,
            mean: values(&msg.mean)?,
            m2: values(&msg.m2)?,
        };
        let finite = moments.count.is_finite()
            && moments
                .mean
                .iter()
                .chain(&moments.m2)
                .all(|x| x.is_finite());
        // An empty set must say so everywhere: no mean or spread without samples.
        let consistent = moments.count > 0.0
            || (moments.count == 0.0 && moments.mean.iter().chain(&moments.m2).all(|&x| x == 0.0));
        if !finite || !consistent || moments.m2.iter().any(|&m2| m2 < 0.0) {
            return Err(NormStatsError::Invalid(field));
        }
        Ok(moments)
    }
}

/// Statistics of raw observations and of discounted returns: what a rollout reports and what a
/// parameter version ships.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NormStats {
    /// Raw observations, `O` dimensions.
    pub observations: Moments,
    /// Running discounted returns, one dimension.
    pub returns: Moments,
}

/// Statistics from the network that cannot be used.
#[derive(Debug, Error, PartialEq)]
pub enum NormStatsError {
    /// A required part is absent.
    #[error("normalisation statistics `{0}` are missing")]
    Missing(&'static str),
    /// A vector has the wrong length.
    #[error("normalisation statistics `{field}` have {got} bytes, expected {want}")]
    Length {
        /// The part.
        field: &'static str,
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// Non-finite values, a negative count or spread, or values without samples.
    #[error("normalisation statistics `{0}` are invalid (non-finite, negative or inconsistent)")]
    Invalid(&'static str),
}

impl NormStats {
    /// Empty statistics for observations of `obs_dim` values.
    pub fn new(obs_dim: usize) -> Self {
        Self {
            observations: Moments::new(obs_dim),
            returns: Moments::new(1),
        }
    }

    /// Merges `other` in.
    pub fn merge(&mut self, other: &NormStats) {
        self.observations.merge(&other.observations);
        self.returns.merge(&other.returns);
    }

    /// The wire form.
    pub fn to_proto(&self) -> proto::NormStats {
        proto::NormStats {
            observations: Some(self.observations.to_proto()),
            returns: Some(self.returns.to_proto()),
        }
    }

    /// Whether these could be the statistics of at most `samples` vectors of values within
    /// `±max_abs` (the learner's check of what one rollout reports).
    pub fn plausible_for(&self, samples: f64, max_abs: f64) -> bool {
        [&self.observations, &self.returns].iter().all(|m| {
            m.count <= samples
                && m.mean.iter().all(|x| x.abs() <= max_abs)
                // Σ(x − mean)² over `count` samples within ±max_abs.
                && m.m2.iter().all(|&x| x <= m.count * 4.0 * max_abs * max_abs)
        })
    }

    /// Validates statistics from the network for observations of `obs_dim` values.
    pub fn from_proto(
        msg: Option<&proto::NormStats>,
        obs_dim: usize,
    ) -> Result<Self, NormStatsError> {
        let msg = msg.ok_or(NormStatsError::Missing("all"))?;
        Ok(Self {
            observations: Moments::from_proto(msg.observations.as_ref(), obs_dim, "observations")?,
            returns: Moments::from_proto(msg.returns.as_ref(), 1, "returns")?,
        })
    }
}

/// What to normalise and how (from the run config; actors receive it at registration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormalizeSettings {
    /// Normalise observations.
    pub observations: bool,
    /// Scale rewards by the spread of the discounted return.
    pub rewards: bool,
    /// Normalised observations are clipped to `±clip_observations`.
    pub clip_observations: f32,
    /// Scaled rewards are clipped to `±clip_rewards`.
    pub clip_rewards: f32,
    /// Discount of the running return whose variance scales rewards.
    pub gamma: f64,
    /// Added to variances before the square root.
    pub epsilon: f64,
}

impl NormalizeSettings {
    /// Nothing normalised.
    pub fn off() -> Self {
        Self {
            observations: false,
            rewards: false,
            clip_observations: 10.0,
            clip_rewards: 10.0,
            gamma: 0.99,
            epsilon: 1e-8,
        }
    }
}

/// One version's transformation of observations and rewards.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalizer {
    settings: NormalizeSettings,
    obs_mean: Vec<f64>,
    obs_inv_std: Vec<f64>,
    reward_inv_std: f64,
}

impl Normalizer {
    /// The transformation `settings` asks for with `stats`.
    pub fn new(settings: NormalizeSettings, stats: &NormStats) -> Self {
        let inv_std = |var: f64| 1.0 / (var + settings.epsilon).sqrt();
        Self {
            settings,
            obs_mean: stats.observations.mean.clone(),
            obs_inv_std: stats
                .observations
                .variance()
                .into_iter()
                .map(inv_std)
                .collect(),
            reward_inv_std: inv_std(stats.returns.variance()[0]),
        }
    }

    /// The transformation that changes nothing (normalisation off).
    pub fn off(obs_dim: usize) -> Self {
        Self::new(NormalizeSettings::off(), &NormStats::new(obs_dim))
    }

    /// The settings.
    pub fn settings(&self) -> &NormalizeSettings {
        &self.settings
    }

    /// Normalises a batch of observations (`[B * O]`) in place; nothing when observation
    /// normalisation is off.
    pub fn observations(&self, obs: &mut [f32]) {
        if !self.settings.observations {
            return;
        }
        let clip = self.settings.clip_observations as f64;
        let o = self.obs_mean.len();
        for row in obs.chunks_exact_mut(o) {
            for ((x, mean), inv_std) in row.iter_mut().zip(&self.obs_mean).zip(&self.obs_inv_std) {
                *x = ((*x as f64 - mean) * inv_std).clamp(-clip, clip) as f32;
            }
        }
    }

    /// The reward the learner trains on; `reward` itself when reward scaling is off.
    pub fn reward(&self, reward: f32) -> f32 {
        if !self.settings.rewards {
            return reward;
        }
        let clip = self.settings.clip_rewards as f64;
        (reward as f64 * self.reward_inv_std).clamp(-clip, clip) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Mean and population variance the plain way.
    fn reference(data: &[Vec<f32>], dim: usize) -> (Vec<f64>, Vec<f64>) {
        let n = data.len() as f64;
        let mean: Vec<f64> = (0..dim)
            .map(|d| data.iter().map(|x| x[d] as f64).sum::<f64>() / n)
            .collect();
        let var = (0..dim)
            .map(|d| {
                data.iter()
                    .map(|x| (x[d] as f64 - mean[d]).powi(2))
                    .sum::<f64>()
                    / n
            })
            .collect();
        (mean, var)
    }

    #[test]
    fn merged_moments_equal_moments_of_all_samples() {
        let mut rng = Rng::new(7);
        let dim = 3;
        let data: Vec<Vec<f32>> = (0..1000)
            .map(|i| {
                (0..dim)
                    .map(|d| (rng.normal() * (d + 1) as f64 + i as f64 * 0.01) as f32)
                    .collect()
            })
            .collect();
        // Split into uneven parts (including an empty one), as rollouts from several actors.
        let mut merged = Moments::new(dim);
        for part in [&data[..0], &data[..17], &data[17..600], &data[600..]] {
            let mut m = Moments::new(dim);
            for x in part {
                m.push(x);
            }
            merged.merge(&m);
        }
        let (mean, var) = reference(&data, dim);
        assert_eq!(merged.count, 1000.0);
        for d in 0..dim {
            assert!((merged.mean[d] - mean[d]).abs() < 1e-9);
            assert!((merged.variance()[d] - var[d]).abs() < 1e-9);
        }
        // Merging into an empty set copies.
        let mut empty = Moments::new(dim);
        empty.merge(&merged);
        assert_eq!(empty, merged);
    }

    #[test]
    fn normalizer_follows_vec_normalize() {
        let mut stats = NormStats::new(2);
        for x in [[1.0f32, 10.0], [3.0, 30.0], [5.0, 20.0]] {
            stats.observations.push(&x);
        }
        for r in [2.0f32, -2.0] {
            stats.returns.push(&[r]);
        }
        let settings = NormalizeSettings {
            observations: true,
            rewards: true,
            clip_observations: 1.0,
            clip_rewards: 10.0,
            gamma: 0.99,
            epsilon: 1e-8,
        };
        let norm = Normalizer::new(settings, &stats);
        // mean (3, 20), variance (8/3, 200/3); the second value is clipped to 1.
        let mut obs = [4.0f32, 100.0];
        norm.observations(&mut obs);
        let want = (1.0 / (8.0f64 / 3.0 + 1e-8).sqrt()) as f32;
        assert!((obs[0] - want).abs() < 1e-6 && obs[1] == 1.0, "{obs:?}");
        // Return variance 4: rewards are halved.
        assert!((norm.reward(3.0) - 1.5).abs() < 1e-6);
        // Off: untouched.
        let off = Normalizer::new(NormalizeSettings::off(), &stats);
        let mut obs = [4.0f32, 100.0];
        off.observations(&mut obs);
        assert_eq!((obs, off.reward(3.0)), ([4.0, 100.0], 3.0));
        // Empty statistics leave data (almost exactly) as it is.
        let fresh = Normalizer::new(settings, &NormStats::new(2));
        let mut obs = [0.5f32, -0.25];
        fresh.observations(&mut obs);
        assert_eq!(obs, [0.5, -0.25]);
    }

    #[test]
    fn wire_round_trip_and_refusals() {
        let mut stats = NormStats::new(2);
        stats.observations.push(&[1.0, 2.0]);
        stats.returns.push(&[0.5]);
        let msg = stats.to_proto();
        assert_eq!(NormStats::from_proto(Some(&msg), 2).unwrap(), stats);
        assert_eq!(
            NormStats::from_proto(Some(&msg), 3),
            Err(NormStatsError::Length {
                field: "observations",
                got: 16,
                want: 24
            })
        );
        assert_eq!(
            NormStats::from_proto(None, 2),
            Err(NormStatsError::Missing("all"))
        );
        let mut bad = msg.clone();
        bad.returns.as_mut().unwrap().count = f64::NAN;
        assert_eq!(
            NormStats::from_proto(Some(&bad), 2),
            Err(NormStatsError::Invalid("returns"))
        );
        let mut bad = msg.clone();
        bad.observations.as_mut().unwrap().count = -1.0;
        assert!(NormStats::from_proto(Some(&bad), 2).is_err());
        let mut bad = msg;
        bad.observations.as_mut().unwrap().m2 = (-1.0f64)
            .to_le_bytes()
            .into_iter()
            .chain(0.0f64.to_le_bytes())
            .collect();
        assert!(NormStats::from_proto(Some(&bad), 2).is_err());
    }
}
