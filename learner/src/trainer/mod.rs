//! The trainer thread's loop, the same for every algorithm: take admitted items from the
//! bounded queue, let the algorithm ([`Algorithm`]) learn from them, forget silent actors,
//! close status intervals, write periodic checkpoints, and end the run (final checkpoint,
//! summary).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use shoal_common::codec::ParamLayout;
use shoal_common::config::RunConfig;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::checkpoint::{self, Checkpoint, CheckpointContent, CheckpointError};
use crate::edge::ActorRegistry;
use crate::error::LearnerError;
use crate::options::StatusHook;
use crate::params::Publisher;
use crate::run_dir::RunDir;
use crate::summary::RunSummary;
use crate::telemetry::bottleneck::Bottlenecks;
use crate::telemetry::{EdgeCounters, Progress, StatusBoard, log};

pub mod algorithm;

pub use algorithm::{Algorithm, Cx, Stop};

/// Everything the trainer thread needs besides its algorithm.
pub(crate) struct TrainerEnv {
    /// The run.
    pub config: Arc<RunConfig>,
    /// The parameters' layout (checkpoints record it).
    pub layout: ParamLayout,
    /// Publishes versions and ends the run.
    pub publisher: Publisher,
    /// The known actors (forgotten when silent; their count goes in the status row).
    pub registry: Arc<ActorRegistry>,
    /// The edge's counters (read for the status row).
    pub counters: Arc<EdgeCounters>,
    /// Where the newest status row and actor reports go.
    pub board: Arc<StatusBoard>,
    /// The run directory.
    pub run_dir: RunDir,
    /// Counters to start from.
    pub progress: Progress,
    /// The checkpoint to resume from.
    pub restore: Option<Checkpoint>,
    /// Stops the run from outside.
    pub shutdown: CancellationToken,
    /// Sees every status row.
    pub on_status: Option<StatusHook>,
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

/// Closes status intervals: the trainer's busy share, the row with the algorithm's fields, the
/// edge's counters, the bottlenecks and the actors' newest reports; then the log line, the
/// run directory's metrics files, the hook and the board.
struct StatusWriter {
    bottlenecks: Bottlenecks,
    since: Instant,
    /// Seconds the algorithm had been busy when the interval began.
    busy_secs: f64,
    hook: Option<StatusHook>,
}

impl StatusWriter {
    /// Closes the interval; the algorithm has been busy `busy_secs` since the run began.
    fn write<A: Algorithm>(
        &mut self,
        env: &mut TrainerEnv,
        algo: &mut A,
        queue_depth: usize,
        busy_secs: f64,
    ) -> Result<(), LearnerError> {
        let busy = busy_secs - self.busy_secs;
        let elapsed = self.since.elapsed().as_secs_f64().max(1e-9);
        self.since = Instant::now();
        self.busy_secs = busy_secs;
        let progress = &mut env.progress;
        algo.count(&mut progress.counters);
        let (mut row, interval_secs) = progress.close_interval();
        row.learner_busy = Some((busy / elapsed).clamp(0.0, 1.0));
        row.connected_actors = Some(env.registry.connected() as u64);
        row.queue_depth = Some(queue_depth as u64);
        env.counters.fill(&mut row);
        algo.status(&mut row, &progress.counters, interval_secs);
        let kinds = self.bottlenecks.check(&row);
        row.bottleneck = (!kinds.is_empty()).then(|| kinds.join(","));
        row.per_actor = env.board.per_actor();
        log::status_line(&row);
        env.run_dir.write_episodes(&env.progress.take_episodes())?;
        env.run_dir.write_metrics(&row)?;
        if let Some(hook) = &self.hook {
            (hook.0)(&row);
        }
        env.board.set_status(row);
        Ok(())
    }
}

/// Writes a checkpoint: `name`d, or periodic (then pruned to `learner.keep_checkpoints`).
fn write_checkpoint<A: Algorithm>(
    env: &mut TrainerEnv,
    algo: &A,
    name: Option<&str>,
) -> Result<PathBuf, LearnerError> {
    let mut counters = env.progress.counters().clone();
    counters.next_actor_id = env.registry.next_id();
    algo.count(&mut counters);
    let params = algo.params();
    let normalization = algo.normalization();
    let content = CheckpointContent {
        algorithm: env.config.algorithm,
        layout: &env.layout,
        params: &params,
        normalization: &normalization,
        counters: &counters,
        actor_id_key: env.registry.key(),
    };
    let save = |dir: &Path| {
        let state = algo.save(dir)?;
        serde_json::to_value(state).map_err(|e| CheckpointError::state(dir, e))
    };
    let run_dir = env.run_dir.path();
    Ok(match name {
        Some(name) => checkpoint::write(run_dir, name, &content, save)?,
        None => {
            let keep = env.config.learner.keep_checkpoints;
            checkpoint::write_periodic(run_dir, keep, &content, save)?
        }
    })
}

/// Restores `algo`'s own state from the checkpoint the run resumes from.
fn restore<A: Algorithm>(algo: &mut A, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
    let dir = &checkpoint.dir;
    let state = serde_json::from_value(checkpoint.state.clone())
        .map_err(|e| CheckpointError::state(dir, format!("checkpoint.json state: {e}")))?;
    algo.restore(dir, state)
}

/// The mean of the actors' reported idle fractions, when any reports one.
fn mean_idle_fraction(board: &StatusBoard) -> Option<f64> {
    let idle: Vec<f64> = board
        .reports()
        .into_iter()
        .filter_map(|(_, _, s)| s.idle_fraction)
        .collect();
    (!idle.is_empty()).then(|| idle.iter().sum::<f64>() / idle.len() as f64)
}

/// The trainer thread: runs `algo` on what `rx` receives until the run ends or is cancelled,
/// then tells actors, writes the last metrics row and the final checkpoint, and makes the
/// summary.
pub(crate) fn drive<A: Algorithm>(
    mut algo: A,
    rx: Receiver<A::Item>,
    mut env: TrainerEnv,
) -> Result<RunSummary, LearnerError> {
    if let Some(checkpoint) = env.restore.take() {
        restore(&mut algo, &checkpoint)?;
    }
    let interval = Duration::from_secs_f64(env.config.learner.status_interval_secs);
    let mut next_status = Instant::now() + interval;
    let mut status = StatusWriter {
        bottlenecks: Bottlenecks::new(env.config.learner.queue_capacity),
        since: Instant::now(),
        busy_secs: 0.0,
        hook: env.on_status.take(),
    };
    // Seconds spent inside the algorithm (learning and publishing); the rest the trainer waited.
    let mut busy_secs = 0.0;
    let mut next_expiry = Instant::now() + Duration::from_secs(1);
    let mut checkpoints = CheckpointSchedule::new(&env.config, env.progress.counters.updates);
    let stop = loop {
        if env.shutdown.is_cancelled() {
            break Stop::new("shutdown requested", false);
        }
        let timeout = next_status
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        let mut cx = Cx {
            progress: &mut env.progress,
            publisher: &env.publisher,
        };
        let received = rx.recv_timeout(timeout);
        let start = Instant::now();
        let stop = match received {
            Ok(item) => algo.handle(item, &rx, &mut cx),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                Some(Stop::new("experience queue closed", false))
            }
        };
        let stop = stop.or_else(|| algo.poll(&mut cx));
        busy_secs += start.elapsed().as_secs_f64();
        if let Some(stop) = stop {
            break stop;
        }
        let now = Instant::now();
        if now >= next_expiry {
            for actor_id in env.registry.expire_silent(&env.counters) {
                env.board.forget(actor_id);
            }
            next_expiry = now + Duration::from_secs(1);
        }
        if now >= next_status {
            status.write(&mut env, &mut algo, rx.len(), busy_secs)?;
            next_status = Instant::now() + interval;
        }
        if checkpoints.due(env.progress.counters.updates) {
            let path = write_checkpoint(&mut env, &algo, None)?;
            tracing::debug!(checkpoint = %path.display(), "checkpoint written");
        }
    };
    // Tell actors first, so they stop collecting while the checkpoint is written.
    env.publisher.finish(stop.reason.clone());
    status.write(&mut env, &mut algo, rx.len(), busy_secs)?;
    let checkpoint = write_checkpoint(&mut env, &algo, Some("final"))?;
    let mut counters = env.progress.counters().clone();
    algo.count(&mut counters);
    let summary = RunSummary {
        reason: stop.reason,
        solved: stop.solved,
        return_mean_100: counters.recent.mean(),
        wall_secs: counters.elapsed_secs,
        update_secs: busy_secs,
        actor_idle_fraction: mean_idle_fraction(&env.board),
        run_dir: env.run_dir.path().to_path_buf(),
        counters,
    };
    env.run_dir.write_summary(&summary)?;
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
