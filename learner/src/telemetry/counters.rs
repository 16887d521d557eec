//! The run's counters: one struct that the trainer keeps, every checkpoint saves, a resumed run
//! starts from and the run's summary reports ([`RunCounters`]), with the window of the last 100
//! episodes ([`EpisodeWindow`]).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// The last 100 finished episodes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "WindowRecord", into = "WindowRecord")]
pub struct EpisodeWindow {
    returns: VecDeque<f32>,
    lengths: VecDeque<u32>,
}

/// How a window is saved: its returns and lengths, oldest first.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
struct WindowRecord {
    recent_returns: Vec<f32>,
    recent_lengths: Vec<u32>,
}

impl From<WindowRecord> for EpisodeWindow {
    fn from(r: WindowRecord) -> Self {
        let mut w = EpisodeWindow::default();
        w.extend(&r.recent_returns, &r.recent_lengths);
        w
    }
}

impl From<EpisodeWindow> for WindowRecord {
    fn from(w: EpisodeWindow) -> Self {
        WindowRecord {
            recent_returns: w.returns.into(),
            recent_lengths: w.lengths.into(),
        }
    }
}

impl EpisodeWindow {
    /// Size of the window.
    pub const SIZE: usize = 100;

    /// Adds one finished episode.
    pub fn push(&mut self, episode_return: f32, length: u32) {
        if self.returns.len() == Self::SIZE {
            self.returns.pop_front();
            self.lengths.pop_front();
        }
        self.returns.push_back(episode_return);
        self.lengths.push_back(length);
    }

    /// Adds finished episodes (returns and lengths side by side).
    pub fn extend(&mut self, returns: &[f32], lengths: &[u32]) {
        for (&r, &l) in returns.iter().zip(lengths) {
            self.push(r, l);
        }
    }

    /// Mean return of the window; `None` until 100 episodes have finished, so that a lucky
    /// first few episodes cannot end a run.
    pub fn full_mean(&self) -> Option<f64> {
        (self.returns.len() == Self::SIZE).then(|| self.mean().unwrap_or(0.0))
    }

    /// Mean return of what the window holds.
    pub fn mean(&self) -> Option<f64> {
        (!self.returns.is_empty()).then(|| {
            self.returns.iter().map(|&r| r as f64).sum::<f64>() / self.returns.len() as f64
        })
    }

    /// Best return in the window.
    pub fn max(&self) -> Option<f64> {
        self.returns.iter().map(|&r| r as f64).reduce(f64::max)
    }

    /// Mean episode length in the window.
    pub fn mean_length(&self) -> Option<f64> {
        (!self.lengths.is_empty()).then(|| {
            self.lengths.iter().map(|&l| l as f64).sum::<f64>() / self.lengths.len() as f64
        })
    }
}

/// Everything the run counts that outlives a status interval. Fields an algorithm does not
/// use stay 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunCounters {
    /// Current parameter version (1 = initial).
    pub version: u64,
    /// Environment steps of admitted experience.
    pub env_steps: u64,
    /// Updates done.
    pub updates: u64,
    /// Finished episodes.
    pub episodes: u64,
    /// The last 100 of them (saved as `recent_returns` and `recent_lengths`).
    #[serde(flatten)]
    pub recent: EpisodeWindow,
    /// Rollouts trained on (PPO).
    pub rollouts_used: u64,
    /// Rollouts dropped as stale or surplus (PPO), or left out of the loss as more than
    /// `max_policy_lag` versions old (IMPALA).
    pub rollouts_stale: u64,
    /// Samples left out of the loss as more than `max_policy_lag` versions old (IMPALA).
    pub samples_masked: u64,
    /// Gradients applied (A3C).
    pub gradients_applied: u64,
    /// Gradients dropped as more than `max_staleness` versions old, at the door or when their
    /// turn came (A3C).
    pub gradients_stale: u64,
    /// The last greedy evaluation's mean return (DQN).
    pub eval_return_mean: Option<f64>,
    /// Updates made on fewer rollouts than asked because actors were missing (PPO; a
    /// deterministic DQN run: rounds closed without them).
    pub partial_updates: u64,
    /// Updates undone because a parameter would have become non-finite.
    pub nonfinite_updates: u64,
    /// Longest wait for missing actors' rollouts, seconds (PPO).
    pub longest_stall_secs: f64,
    /// Seconds of training (summed over resumes).
    pub elapsed_secs: f64,
    /// The next actor id the learner hands out (ids are not reused after a resume).
    pub next_actor_id: u32,
}

impl Default for RunCounters {
    /// A new run: version 1 (the initial parameters), nothing counted, actor ids from 1.
    fn default() -> Self {
        Self {
            version: 1,
            env_steps: 0,
            updates: 0,
            episodes: 0,
            recent: EpisodeWindow::default(),
            rollouts_used: 0,
            rollouts_stale: 0,
            samples_masked: 0,
            gradients_applied: 0,
            gradients_stale: 0,
            eval_return_mean: None,
            partial_updates: 0,
            nonfinite_updates: 0,
            longest_stall_secs: 0.0,
            elapsed_secs: 0.0,
            next_actor_id: 1,
        }
    }
}

impl RunCounters {
    /// Counts finished episodes (returns and lengths side by side).
    pub fn add_episodes(&mut self, returns: &[f32], lengths: &[u32]) {
        self.episodes += returns.len().min(lengths.len()) as u64;
        self.recent.extend(returns, lengths);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keeps_the_last_hundred() {
        let mut w = EpisodeWindow::default();
        for i in 0..150 {
            w.push(i as f32, 1);
            assert_eq!(w.full_mean().is_some(), i >= 99);
        }
        // Holds 50..150: mean 99.5, max 149.
        assert_eq!(w.mean(), Some(99.5));
        assert_eq!(w.max(), Some(149.0));
    }

    #[test]
    fn counters_save_the_window_flat_and_read_it_back() {
        let mut c = RunCounters {
            env_steps: 40,
            ..RunCounters::default()
        };
        c.add_episodes(&[1.0, 2.0], &[3, 4]);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["episodes"], 2);
        assert_eq!(json["recent_returns"], serde_json::json!([1.0, 2.0]));
        assert_eq!(json["recent_lengths"], serde_json::json!([3, 4]));
        assert_eq!(serde_json::from_value::<RunCounters>(json).unwrap(), c);
    }
}
