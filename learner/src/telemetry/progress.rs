//! What the trainer thread counts while it runs: the run's [`RunCounters`], the interval's
//! policy lag, and the quantities every algorithm's status row shares.

use std::time::Instant;

use super::counters::RunCounters;
use super::lag::LagStats;
use super::metrics::StatusRow;

/// The trainer's running count, from a new run's zeros or a checkpoint's counters.
#[derive(Debug)]
pub struct Progress {
    /// What outlives an interval (checkpointed, reported in the summary).
    pub counters: RunCounters,
    /// Policy lag of the experience seen in the current interval.
    pub lag: LagStats,
    started: Instant,
    resumed_secs: f64,
    interval_start: Instant,
    interval_steps: u64,
    /// Episodes finished since the last [`Progress::take_episodes`] (at most
    /// [`Progress::MAX_EPISODES`]).
    episodes: Vec<Episode>,
    /// Episodes beyond that, counted only.
    episodes_not_recorded: u64,
}

/// One finished episode, as the run directory records it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Episode {
    /// Environment steps counted when it arrived.
    pub env_steps: u64,
    /// Its return.
    pub episode_return: f32,
    /// Its length in steps.
    pub length: u32,
}

impl Progress {
    /// Counting on from `counters` (a new run: [`RunCounters::default`]).
    pub fn new(counters: RunCounters) -> Self {
        let now = Instant::now();
        Self {
            resumed_secs: counters.elapsed_secs,
            interval_steps: counters.env_steps,
            counters,
            lag: LagStats::default(),
            started: now,
            interval_start: now,
            episodes: Vec::new(),
            episodes_not_recorded: 0,
        }
    }

    /// Episodes kept for the run directory per status interval; more are counted but not
    /// recorded one by one.
    pub const MAX_EPISODES: usize = 100_000;

    /// The episodes finished since the last call (with a warning when some were too many to
    /// record one by one).
    pub fn take_episodes(&mut self) -> Vec<Episode> {
        if self.episodes_not_recorded > 0 {
            tracing::warn!(
                not_recorded = self.episodes_not_recorded,
                recorded = self.episodes.len(),
                "more finished episodes in one status interval than episodes.csv records"
            );
            self.episodes_not_recorded = 0;
        }
        std::mem::take(&mut self.episodes)
    }

    /// Counts admitted experience: its environment steps and the episodes it finished.
    pub fn add_experience(&mut self, env_steps: u64, returns: &[f32], lengths: &[u32]) {
        self.counters.env_steps += env_steps;
        self.counters.add_episodes(returns, lengths);
        let room = Self::MAX_EPISODES.saturating_sub(self.episodes.len());
        let finished = returns.len().min(lengths.len());
        self.episodes_not_recorded += finished.saturating_sub(room) as u64;
        let steps = self.counters.env_steps;
        self.episodes.extend(
            returns
                .iter()
                .zip(lengths)
                .take(room)
                .map(|(&r, &l)| Episode {
                    env_steps: steps,
                    episode_return: r,
                    length: l,
                }),
        );
    }

    /// Seconds of training, counting those before a resume.
    pub fn elapsed_secs(&self) -> f64 {
        self.resumed_secs + self.started.elapsed().as_secs_f64()
    }

    /// The counters as of now (elapsed time brought up to date).
    pub fn counters(&mut self) -> &RunCounters {
        self.counters.elapsed_secs = self.elapsed_secs();
        &self.counters
    }

    /// Closes the current interval: the quantities every algorithm's row has (time, steps and
    /// speed, updates, version, episodes, lag, non-finite updates). Returns the row and the
    /// interval's length in seconds.
    pub fn close_interval(&mut self) -> (StatusRow, f64) {
        let now = Instant::now();
        let dt = now
            .duration_since(self.interval_start)
            .as_secs_f64()
            .max(1e-9);
        let c = &self.counters;
        let e = &c.recent;
        let mut row = StatusRow {
            time_s: Some(self.elapsed_secs()),
            env_steps: Some(c.env_steps),
            sps: Some((c.env_steps - self.interval_steps) as f64 / dt),
            updates: Some(c.updates),
            version: Some(c.version),
            episodes: Some(c.episodes),
            return_mean_100: e.mean(),
            return_max_100: e.max(),
            length_mean_100: e.mean_length(),
            nonfinite_updates: Some(c.nonfinite_updates),
            ..StatusRow::default()
        };
        self.lag.fill(&mut row);
        self.interval_start = now;
        self.interval_steps = c.env_steps;
        self.lag = LagStats::default();
        (row, dt)
    }
}
