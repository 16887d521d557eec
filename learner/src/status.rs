//! Training progress: the periodic status line (tracing) and the `metrics.jsonl` rows, which
//! carry the same quantities under CleanRL / Sample Factory names.

use std::collections::VecDeque;
use std::time::Instant;

use serde_json::{Value, json};

use shoal_common::config::AlgorithmKind;

use crate::trainer::UpdateStats;

/// The last 100 finished episodes.
#[derive(Debug, Clone, Default)]
pub struct EpisodeWindow {
    returns: VecDeque<f32>,
    lengths: VecDeque<u32>,
    /// All episodes finished so far.
    pub total: u64,
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
        self.total += 1;
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

    /// The window's returns and lengths, oldest first.
    pub fn recent(&self) -> (Vec<f32>, Vec<u32>) {
        (
            self.returns.iter().copied().collect(),
            self.lengths.iter().copied().collect(),
        )
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

/// Policy lag (PPO: versions a rollout is behind) or staleness (A3C: versions a gradient is
/// behind when applied) in one interval: a histogram with one bucket per version up to
/// [`LagStats::BUCKETS`] − 1 and one for everything beyond.
#[derive(Debug, Clone, Default)]
pub struct LagStats {
    counts: Vec<u64>,
    max: u64,
    sum: u64,
    count: u64,
}

impl LagStats {
    /// Histogram buckets (the last one holds every lag ≥ `BUCKETS − 1`).
    pub const BUCKETS: usize = 64;

    /// Records one lag.
    pub fn record(&mut self, lag: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; Self::BUCKETS];
        }
        self.counts[(lag as usize).min(Self::BUCKETS - 1)] += 1;
        self.max = self.max.max(lag);
        self.sum += lag;
        self.count += 1;
    }

    /// The smallest lag with at least `q` of the records at or below it (the last bucket
    /// stands for "at least 63").
    fn quantile(&self, q: f64) -> u64 {
        let want = (q * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (lag, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return lag as u64;
            }
        }
        self.max
    }

    /// `(min, avg, p50, p90, max)` as JSON (nulls when nothing was recorded).
    fn json(&self) -> [Value; 5] {
        if self.count == 0 {
            return [
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
                Value::Null,
            ];
        }
        [
            json!(self.quantile(0.0)),
            json!(self.sum as f64 / self.count as f64),
            json!(self.quantile(0.5)),
            json!(self.quantile(0.9)),
            json!(self.max),
        ]
    }
}

/// DQN's extra status quantities.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DqnView {
    /// Transitions in the replay buffer.
    pub replay_size: usize,
    /// Updates per transition inserted since updates began.
    pub replay_ratio: f64,
    /// Smallest actor ε of the schedule.
    pub epsilon_min: f64,
    /// Largest actor ε of the schedule.
    pub epsilon_max: f64,
    /// Mean Q(s, a) of the last update's batch.
    pub q_mean: f64,
    /// Mean |TD error| of the last update's batch.
    pub td_abs_mean: f64,
    /// The last update's loss.
    pub loss: f64,
}

/// Everything the trainer counts.
#[derive(Debug)]
pub struct Progress {
    /// When training started.
    pub started: Instant,
    /// Environment steps received (fresh and stale rollouts).
    pub env_steps: u64,
    /// PPO updates done.
    pub updates: u64,
    /// Current parameter version.
    pub version: u64,
    /// Finished episodes.
    pub episodes: EpisodeWindow,
    /// Rollouts used in updates.
    pub rollouts_used: u64,
    /// Rollouts dropped because they were made with an older version (or were surplus).
    pub rollouts_stale: u64,
    /// The last update's statistics.
    pub last_update: Option<UpdateStats>,
    /// Lag in the current interval.
    pub lag: LagStats,
    /// Longest time the trainer waited for a batch to fill, in the current interval (s).
    pub longest_wait_secs: f64,
    /// Mean return of the last greedy evaluation (DQN).
    pub eval_return_mean: Option<f64>,
    /// DQN's replay and value statistics.
    pub dqn: Option<DqnView>,
    /// Gradients applied (A3C).
    pub gradients_applied: u64,
    /// Gradients dropped by the trainer as more than `max_staleness` versions old (A3C).
    pub gradients_stale: u64,
    /// Longest time the trainer waited for a batch over the whole run (s).
    pub longest_stall_secs: f64,
    /// Updates made on fewer rollouts than `rollouts_per_update` because actors were missing.
    pub partial_updates: u64,
    /// Updates discarded because they would have made a parameter NaN or infinite.
    pub nonfinite_updates: u64,
    /// Fraction of the current interval the trainer spent learning (set before a snapshot).
    pub learner_busy: Option<f64>,
    resumed_secs: f64,
    interval_start: Instant,
    interval_steps: u64,
    interval_applied: u64,
    interval_stale: u64,
}

/// What the handlers report (read at status time).
#[derive(Debug, Clone, Default)]
pub struct ServiceView {
    /// Actors with an open subscription, or that pushed within the actor timeout.
    pub connected_actors: usize,
    /// Items waiting in the queue.
    pub queue_depth: usize,
    /// Pushes refused for a full queue.
    pub queue_full: u64,
    /// Gradients refused at the door as too stale (A3C).
    pub gradients_stale: u64,
    /// Actors forgotten after the actor timeout.
    pub actors_timed_out: u64,
    /// Every refusal counter by its metrics name (malformed experience, missing token, unknown
    /// actor, oversized message, ...).
    pub refusals: [(&'static str, u64); 11],
}

impl Progress {
    /// Counting from now.
    pub fn new() -> Self {
        let now = Instant::now();
        Self {
            started: now,
            env_steps: 0,
            updates: 0,
            version: 1,
            episodes: EpisodeWindow::default(),
            rollouts_used: 0,
            rollouts_stale: 0,
            last_update: None,
            lag: LagStats::default(),
            longest_wait_secs: 0.0,
            eval_return_mean: None,
            dqn: None,
            gradients_applied: 0,
            gradients_stale: 0,
            longest_stall_secs: 0.0,
            partial_updates: 0,
            nonfinite_updates: 0,
            learner_busy: None,
            resumed_secs: 0.0,
            interval_start: now,
            interval_steps: 0,
            interval_applied: 0,
            interval_stale: 0,
        }
    }

    /// Counting on from a checkpoint's counters (a resumed run).
    pub fn resume(c: &crate::run_dir::RunCounters) -> Self {
        let mut p = Self::new();
        p.resumed_secs = c.elapsed_secs;
        p.env_steps = c.env_steps;
        p.updates = c.updates;
        p.version = c.version;
        for (&r, &l) in c.recent_returns.iter().zip(&c.recent_lengths) {
            p.episodes.push(r, l);
        }
        p.episodes.total = c.episodes;
        p.rollouts_used = c.rollouts_used;
        p.rollouts_stale = c.rollouts_stale;
        p.gradients_applied = c.gradients_applied;
        p.gradients_stale = c.gradients_stale;
        p.eval_return_mean = c.eval_return_mean;
        p.interval_steps = p.env_steps;
        p.interval_applied = p.gradients_applied;
        p.interval_stale = p.gradients_stale;
        p
    }

    /// The counters a checkpoint saves (`next_actor_id` is the service's, filled in by the
    /// caller).
    pub fn counters(&self) -> crate::run_dir::RunCounters {
        let (recent_returns, recent_lengths) = self.episodes.recent();
        crate::run_dir::RunCounters {
            version: self.version,
            env_steps: self.env_steps,
            updates: self.updates,
            episodes: self.episodes.total,
            recent_returns,
            recent_lengths,
            rollouts_used: self.rollouts_used,
            rollouts_stale: self.rollouts_stale,
            gradients_applied: self.gradients_applied,
            gradients_stale: self.gradients_stale,
            eval_return_mean: self.eval_return_mean,
            elapsed_secs: self.elapsed_secs(),
            next_actor_id: 0,
        }
    }

    /// Seconds of training, counting those before a resume.
    pub fn elapsed_secs(&self) -> f64 {
        self.resumed_secs + self.started.elapsed().as_secs_f64()
    }

    /// One metrics row (and status line), closing the current interval.
    pub fn snapshot(&mut self, service: ServiceView) -> Value {
        let now = Instant::now();
        let dt = now
            .duration_since(self.interval_start)
            .as_secs_f64()
            .max(1e-9);
        let sps = (self.env_steps - self.interval_steps) as f64 / dt;
        let stale_total = self.gradients_stale + service.gradients_stale;
        let applied_per_s = (self.gradients_applied - self.interval_applied) as f64 / dt;
        let stale_per_s = (stale_total - self.interval_stale) as f64 / dt;
        let [lag_min, lag_avg, lag_p50, lag_p90, lag_max] = self.lag.json();
        let u = self.last_update.unwrap_or_default();
        let has_update = self.last_update.is_some();
        let opt = |v: f64| {
            if has_update && v.is_finite() {
                json!(v)
            } else {
                Value::Null
            }
        };
        let dqn = self.dqn;
        let dq = |f: fn(&DqnView) -> f64| dqn.as_ref().map(f);
        let dqn_row = json!({
            "eval_return_mean": self.eval_return_mean,
            "replay_size": dqn.map(|v| v.replay_size),
            "replay_ratio": dq(|v| v.replay_ratio),
            "epsilon_min": dq(|v| v.epsilon_min),
            "epsilon_max": dq(|v| v.epsilon_max),
            "q_mean": dq(|v| v.q_mean),
            "td_error": dq(|v| v.td_abs_mean),
            "dqn_loss": dq(|v| v.loss),
        });
        let mut row = json!({
            "time_s": self.elapsed_secs(),
            "env_steps": self.env_steps,
            "sps": sps,
            "updates": self.updates,
            "version": self.version,
            "episodes": self.episodes.total,
            "return_mean_100": self.episodes.mean(),
            "return_max_100": self.episodes.max(),
            "length_mean_100": self.episodes.mean_length(),
            "policy_loss": opt(u.policy_loss),
            "value_loss": opt(u.value_loss),
            "entropy": opt(u.entropy),
            "approx_kl": opt(u.approx_kl),
            "clipfrac": opt(u.clipfrac),
            "explained_variance": opt(u.explained_variance),
            "grad_norm": opt(u.grad_norm),
            "learning_rate": opt(u.learning_rate),
            "version_diff_min": lag_min,
            "version_diff_avg": lag_avg,
            "version_diff_p50": lag_p50,
            "version_diff_p90": lag_p90,
            "version_diff_max": lag_max,
            "connected_actors": service.connected_actors,
            "queue_depth": service.queue_depth,
            "learner_busy": self.learner_busy,
            "rollouts_used": self.rollouts_used,
            "rollouts_stale": self.rollouts_stale,
            "queue_full": service.queue_full,
            "longest_wait_s": self.longest_wait_secs,
            "longest_stall_s": self.longest_stall_secs,
            "partial_updates": self.partial_updates,
            "nonfinite_updates": self.nonfinite_updates,
            "actors_timed_out": service.actors_timed_out,
            "refused": service.refusals.iter().map(|(_, n)| n).sum::<u64>(),
            "gradients_applied": self.gradients_applied,
            "gradients_applied_per_s": applied_per_s,
            "gradients_stale": stale_total,
            "gradients_stale_per_s": stale_per_s,
        });
        if let (Some(row), Value::Object(extra)) = (row.as_object_mut(), dqn_row) {
            row.extend(extra);
            for (name, n) in service.refusals {
                row.insert(name.into(), json!(n));
            }
        }
        self.interval_start = now;
        self.interval_steps = self.env_steps;
        self.interval_applied = self.gradients_applied;
        self.interval_stale = stale_total;
        self.lag = LagStats::default();
        self.longest_wait_secs = 0.0;
        row
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

/// Logs a metrics row as one structured status line with the quantities of `algorithm` (every
/// quantity is in the metrics files either way).
pub fn log_status(row: &Value, algorithm: AlgorithmKind) {
    let f = |k: &str| row.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let u = |k: &str| row.get(k).and_then(Value::as_u64).unwrap_or(0);
    let opt = |k: &str| row.get(k).filter(|v| !v.is_null()).map(Value::to_string);
    let lag = format_args!(
        "{}/{:.2}/{}",
        opt("version_diff_min").unwrap_or_else(|| "-".into()),
        f("version_diff_avg"),
        opt("version_diff_max").unwrap_or_else(|| "-".into())
    );
    let bottleneck = opt("bottleneck").unwrap_or_default();
    match algorithm {
        AlgorithmKind::Ppo => tracing::info!(
            target: "shoal::status",
            env_steps = u("env_steps"),
            sps = format_args!("{:.0}", f("sps")),
            updates = u("updates"),
            version = u("version"),
            episodes = u("episodes"),
            return_mean_100 = format_args!("{:.1}", f("return_mean_100")),
            return_max_100 = format_args!("{:.1}", f("return_max_100")),
            policy_loss = format_args!("{:.4}", f("policy_loss")),
            value_loss = format_args!("{:.4}", f("value_loss")),
            entropy = format_args!("{:.4}", f("entropy")),
            approx_kl = format_args!("{:.5}", f("approx_kl")),
            clipfrac = format_args!("{:.3}", f("clipfrac")),
            explained_variance = format_args!("{:.3}", f("explained_variance")),
            lag_min_avg_max = lag,
            actors = u("connected_actors"),
            queue = u("queue_depth"),
            busy = format_args!("{:.2}", f("learner_busy")),
            stale = u("rollouts_stale"),
            refused = u("refused"),
            bottleneck,
            "status"
        ),
        AlgorithmKind::A3c => tracing::info!(
            target: "shoal::status",
            env_steps = u("env_steps"),
            sps = format_args!("{:.0}", f("sps")),
            updates = u("updates"),
            version = u("version"),
            episodes = u("episodes"),
            return_mean_100 = format_args!("{:.1}", f("return_mean_100")),
            return_max_100 = format_args!("{:.1}", f("return_max_100")),
            policy_loss = format_args!("{:.4}", f("policy_loss")),
            value_loss = format_args!("{:.4}", f("value_loss")),
            entropy = format_args!("{:.4}", f("entropy")),
            grads_per_s = format_args!("{:.0}", f("gradients_applied_per_s")),
            grads_stale_per_s = format_args!("{:.1}", f("gradients_stale_per_s")),
            staleness_min_avg_max = lag,
            actors = u("connected_actors"),
            queue = u("queue_depth"),
            busy = format_args!("{:.2}", f("learner_busy")),
            refused = u("refused"),
            bottleneck,
            "status"
        ),
        AlgorithmKind::Dqn => tracing::info!(
            target: "shoal::status",
            env_steps = u("env_steps"),
            sps = format_args!("{:.0}", f("sps")),
            updates = u("updates"),
            version = u("version"),
            episodes = u("episodes"),
            eval_return_mean = format_args!("{:.1}", f("eval_return_mean")),
            return_mean_100 = format_args!("{:.1}", f("return_mean_100")),
            replay_size = u("replay_size"),
            replay_ratio = format_args!("{:.3}", f("replay_ratio")),
            epsilon = format_args!("{:.3}-{:.3}", f("epsilon_min"), f("epsilon_max")),
            q_mean = format_args!("{:.3}", f("q_mean")),
            td_error = format_args!("{:.4}", f("td_error")),
            loss = format_args!("{:.4}", f("dqn_loss")),
            lag_min_avg_max = lag,
            actors = u("connected_actors"),
            queue = u("queue_depth"),
            busy = format_args!("{:.2}", f("learner_busy")),
            refused = u("refused"),
            bottleneck,
            "status"
        ),
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
        assert_eq!(w.total, 150);
        // Holds 50..150: mean 99.5, max 149.
        assert_eq!(w.mean(), Some(99.5));
        assert_eq!(w.max(), Some(149.0));
    }

    #[test]
    fn lag_stats() {
        let mut lag = LagStats::default();
        assert_eq!(lag.json()[0], Value::Null);
        for l in [0, 2, 1] {
            lag.record(l);
        }
        assert_eq!(
            lag.json(),
            [json!(0), json!(1.0), json!(1), json!(2), json!(2)]
        );
        // 90 records at 0, 10 at 5, one beyond the histogram: p50 0, p90 0, p99 5, max exact.
        let mut lag = LagStats::default();
        for _ in 0..90 {
            lag.record(0);
        }
        for _ in 0..10 {
            lag.record(5);
        }
        lag.record(1000);
        let [_, _, p50, p90, max] = lag.json();
        assert_eq!((p50, p90, max), (json!(0), json!(5), json!(1000)));
        assert_eq!(lag.quantile(0.99), 5);
    }
}
