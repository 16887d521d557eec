//! The trainer thread's loop, shared by PPO, A3C and DQN: take experience from the bounded
//! queue, let the algorithm learn from it, forget silent actors, write status lines and
//! periodic checkpoints, and end the run (final checkpoint, summary).
//!
//! What differs between the algorithms is the [`Algorithm`] they implement.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::Value;
use shoal_common::config::RunConfig;
use shoal_common::normalize::NormStats;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::metrics::Bottlenecks;
use crate::run_dir::{CheckpointContent, RunDir};
use crate::service::{Experience, Shared};
use crate::status::{Progress, ServiceView, log_status};
use crate::{LearnerError, RunSummary};

/// Why a run ends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stop {
    /// Said in logs, to actors and in the summary.
    pub reason: String,
    /// The run reached its target.
    pub solved: bool,
}

impl Stop {
    pub(crate) fn new(reason: impl Into<String>, solved: bool) -> Self {
        Self {
            reason: reason.into(),
            solved,
        }
    }
}

/// One training algorithm on the trainer thread: the owner of the model and optimizer.
pub(crate) trait Algorithm {
    /// Learns from `first` (and from whatever else it takes from `rx` in the same burst),
    /// publishes new versions, and says whether the run is over.
    fn handle(
        &mut self,
        first: Experience,
        rx: &Receiver<Experience>,
        shared: &Shared,
        progress: &mut Progress,
    ) -> Option<Stop>;

    /// Called on every turn of the loop, also when nothing arrived (PPO: stop waiting for
    /// missing actors).
    fn poll(&mut self, _shared: &Shared, _progress: &mut Progress) -> Option<Stop> {
        None
    }

    /// Called before each status line (A3C: fold the interval's statistics into `progress`).
    fn before_status(&mut self, _progress: &mut Progress) {}

    /// The current parameters in layout order.
    fn params(&self) -> Vec<f32>;

    /// The normalisation statistics of the current version.
    fn normalization(&self) -> NormStats;

    /// Seconds spent learning and publishing (the rest the trainer waited).
    fn update_secs(&self) -> f64;

    /// Writes the state beyond the parameters (optimizer, ...) into a checkpoint directory;
    /// returns what `checkpoint.json` records of it.
    fn save(&self, dir: &Path) -> Result<Value, String>;

    /// Restores what [`Algorithm::save`] wrote.
    fn restore(&mut self, dir: &Path, state: &Value) -> Result<(), String>;
}

/// The run ends when the mean return of the last 100 episodes reaches `target_return` (PPO,
/// A3C) or after `total_steps`.
pub(crate) fn stop_reason(config: &RunConfig, progress: &Progress) -> Option<Stop> {
    if let (Some(target), Some(mean)) = (config.target_return, progress.episodes.full_mean())
        && mean >= target
    {
        return Some(Stop::new(
            format!(
                "target_return {target} reached: mean return {mean:.1} over the last 100 episodes"
            ),
            true,
        ));
    }
    (progress.env_steps >= config.total_steps)
        .then(|| Stop::new(format!("total_steps {} reached", config.total_steps), false))
}

/// When the next periodic checkpoint is due.
struct CheckpointSchedule {
    every_updates: u64,
    every: Option<Duration>,
    last_updates: u64,
    last_time: Instant,
}

impl CheckpointSchedule {
    fn new(config: &RunConfig, updates: u64) -> Self {
        let l = &config.learner;
        Self {
            every_updates: l.checkpoint_interval_updates,
            every: (l.checkpoint_interval_secs > 0.0)
                .then(|| Duration::from_secs_f64(l.checkpoint_interval_secs)),
            last_updates: updates,
            last_time: Instant::now(),
        }
    }

    /// Whether a checkpoint is due at `updates` (then the schedule starts over). Nothing is
    /// written before the first update since the last one.
    fn due(&mut self, updates: u64) -> bool {
        if updates == self.last_updates {
            return false;
        }
        let by_updates =
            self.every_updates > 0 && updates >= self.last_updates + self.every_updates;
        let by_time = self.every.is_some_and(|e| self.last_time.elapsed() >= e);
        if by_updates || by_time {
            self.last_updates = updates;
            self.last_time = Instant::now();
        }
        by_updates || by_time
    }
}

fn service_view(shared: &Shared) -> ServiceView {
    use std::sync::atomic::Ordering;
    let c = &shared.counters;
    ServiceView {
        connected_actors: shared.connected_actors(),
        queue_depth: shared.queue_depth(),
        queue_full: c.queue_full.load(Ordering::Relaxed),
        gradients_stale: c.gradients_stale.load(Ordering::Relaxed),
        actors_timed_out: c.actors_timed_out.load(Ordering::Relaxed),
        refusals: c.refusals(),
    }
}

/// Closes status intervals: the trainer's busy share, the row with its bottlenecks and the
/// actors' newest reports, then the log line, the run directory's metrics files and the
/// Prometheus view.
struct StatusWriter {
    bottlenecks: Bottlenecks,
    since: Instant,
    update_secs: f64,
    hook: Option<crate::StatusHook>,
}

impl StatusWriter {
    fn new(shared: &Shared, algo: &dyn Algorithm, hook: Option<crate::StatusHook>) -> Self {
        Self {
            bottlenecks: Bottlenecks::new(shared.config.learner.queue_capacity),
            since: Instant::now(),
            update_secs: algo.update_secs(),
            hook,
        }
    }

    fn write(
        &mut self,
        shared: &Shared,
        progress: &mut Progress,
        dir: &mut RunDir,
        algo: &dyn Algorithm,
    ) -> Result<(), LearnerError> {
        let busy = algo.update_secs() - self.update_secs;
        let elapsed = self.since.elapsed().as_secs_f64().max(1e-9);
        progress.learner_busy = Some((busy / elapsed).clamp(0.0, 1.0));
        self.since = Instant::now();
        self.update_secs = algo.update_secs();
        let mut row = progress.snapshot(service_view(shared));
        let kinds = self.bottlenecks.check(&row);
        row["bottleneck"] = if kinds.is_empty() {
            Value::Null
        } else {
            Value::from(kinds.join(","))
        };
        row["per_actor"] = shared
            .actor_reports()
            .into_iter()
            .map(|(id, name, s)| {
                (
                    name,
                    serde_json::json!({
                        "actor_id": id, "sps": s.sps, "env_steps": s.env_steps,
                        "episodes": s.episodes, "reconnects": s.reconnects,
                        "inference_secs": s.inference_secs,
                    }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        log_status(&row, shared.config.algorithm);
        dir.write_metrics(&row)?;
        if let Some(hook) = &self.hook {
            (hook.0)(&row);
        }
        shared.set_status(row);
        Ok(())
    }
}

/// Writes a checkpoint: `name`d, or periodic (then pruned to `learner.keep_checkpoints`).
fn write_checkpoint(
    shared: &Shared,
    progress: &Progress,
    dir: &RunDir,
    algo: &dyn Algorithm,
    name: Option<&str>,
) -> Result<PathBuf, LearnerError> {
    let mut counters = progress.counters();
    counters.next_actor_id = shared.next_actor_id();
    let params = algo.params();
    let normalization = algo.normalization();
    let content = CheckpointContent {
        algorithm: shared.config.algorithm.name(),
        layout: &shared.layout,
        params: &params,
        normalization: &normalization,
        counters: &counters,
    };
    let save = |p: &Path| algo.save(p);
    match name {
        Some(name) => dir.write_checkpoint(name, &content, save),
        None => {
            dir.write_periodic_checkpoint(shared.config.learner.keep_checkpoints, &content, save)
        }
    }
}

/// The trainer thread: runs `algo` until the run ends or `shutdown` is cancelled, then tells
/// actors, writes the last metrics row and the final checkpoint, and makes the summary.
pub(crate) fn drive(
    shared: Arc<Shared>,
    rx: Receiver<Experience>,
    algo: &mut dyn Algorithm,
    mut dir: RunDir,
    mut progress: Progress,
    shutdown: CancellationToken,
    on_status: Option<crate::StatusHook>,
) -> Result<RunSummary, LearnerError> {
    let interval = Duration::from_secs_f64(shared.config.learner.status_interval_secs);
    let mut next_status = Instant::now() + interval;
    let mut status = StatusWriter::new(&shared, algo, on_status);
    let mut next_expiry = Instant::now() + Duration::from_secs(1);
    let mut checkpoints = CheckpointSchedule::new(&shared.config, progress.updates);
    let stop = loop {
        if shutdown.is_cancelled() {
            break Stop::new("shutdown requested", false);
        }
        let timeout = next_status
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        let stop = match rx.recv_timeout(timeout) {
            Ok(experience) => algo.handle(experience, &rx, &shared, &mut progress),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                Some(Stop::new("experience queue closed", false))
            }
        };
        if let Some(stop) = stop.or_else(|| algo.poll(&shared, &mut progress)) {
            break stop;
        }
        let now = Instant::now();
        if now >= next_expiry {
            shared.expire_silent_actors();
            next_expiry = now + Duration::from_secs(1);
        }
        if now >= next_status {
            algo.before_status(&mut progress);
            status.write(&shared, &mut progress, &mut dir, algo)?;
            next_status = Instant::now() + interval;
        }
        if checkpoints.due(progress.updates) {
            let path = write_checkpoint(&shared, &progress, &dir, algo, None)?;
            tracing::debug!(checkpoint = %path.display(), "checkpoint written");
        }
    };
    // Tell actors first, so they stop collecting while the checkpoint is written.
    shared.store.finish(stop.reason.clone());
    algo.before_status(&mut progress);
    status.write(&shared, &mut progress, &mut dir, algo)?;
    let checkpoint = write_checkpoint(&shared, &progress, &dir, algo, Some("final"))?;
    let summary = RunSummary {
        reason: stop.reason,
        solved: stop.solved,
        env_steps: progress.env_steps,
        updates: progress.updates,
        version: progress.version,
        episodes: progress.episodes.total,
        return_mean_100: progress.episodes.mean(),
        wall_secs: progress.elapsed_secs(),
        update_secs: algo.update_secs(),
        rollouts_stale: progress.rollouts_stale,
        gradients_applied: progress.gradients_applied,
        eval_return_mean: progress.eval_return_mean,
        gradients_stale: progress.gradients_stale
            + shared
                .counters
                .gradients_stale
                .load(std::sync::atomic::Ordering::Relaxed),
        longest_stall_secs: progress.longest_stall_secs,
        partial_updates: progress.partial_updates,
        run_dir: dir.path().to_path_buf(),
    };
    info!(
        reason = summary.reason,
        solved = summary.solved,
        env_steps = summary.env_steps,
        updates = summary.updates,
        wall_secs = format_args!("{:.2}", summary.wall_secs),
        longest_stall_s = format_args!("{:.3}", summary.longest_stall_secs),
        checkpoint = %checkpoint.display(),
        "run finished"
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_are_due_by_updates_or_time_and_never_twice_for_one_update() {
        let mut config = RunConfig::default();
        config.learner.checkpoint_interval_updates = 10;
        config.learner.checkpoint_interval_secs = 0.0;
        let mut s = CheckpointSchedule::new(&config, 5);
        assert!(!s.due(5));
        assert!(!s.due(14));
        assert!(s.due(15));
        assert!(!s.due(15));
        assert!(s.due(30));
        config.learner.checkpoint_interval_updates = 0;
        config.learner.checkpoint_interval_secs = 1e-9;
        let mut s = CheckpointSchedule::new(&config, 0);
        std::thread::sleep(Duration::from_millis(1));
        assert!(!s.due(0), "nothing new to save");
        assert!(s.due(1));
    }
}
