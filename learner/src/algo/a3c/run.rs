//! A3C on the trainer thread: applies gradients as they arrive (dropping those that became more
//! than `max_staleness` versions old while queued) and publishes after each burst.

use std::path::Path;
use std::sync::Arc;

use crossbeam_channel::Receiver;
use shoal_common::config::RunConfig;
use shoal_common::gradient::GradientPush;
use shoal_common::normalize::NormStats;

use super::staleness::StalenessBound;
use super::trainer::A3cTrainer;
use crate::checkpoint::CheckpointError;
use crate::telemetry::{RunCounters, StatusRow};
use crate::trainer::{Algorithm, Cx, Stop};

/// Gradients applied back to back before the new parameters are published: under load the
/// learner publishes once per burst instead of once per gradient (the read-back and encoding
/// of a version cost about as much as applying a gradient).
const MAX_BURST: usize = 32;

/// Sums of the applied gradients' statistics over one status interval.
#[derive(Default, Clone, Copy)]
struct IntervalStats {
    n: f64,
    policy_loss: f64,
    value_loss: f64,
    entropy: f64,
    grad_norm: f64,
}

/// See the module docs.
pub(crate) struct A3cRun {
    trainer: A3cTrainer,
    config: Arc<RunConfig>,
    staleness: Arc<StalenessBound>,
    stats: IntervalStats,
    /// The newest interval's statistics that had an applied gradient: an interval without one
    /// (all stale, or none arrived) shows these.
    last_stats: IntervalStats,
    /// Gradients applied and dropped as stale when the current status interval began.
    interval_start: (u64, u64),
    /// Shipped unchanged with every version (A3C runs do not normalise: config validation
    /// refuses it).
    normalization: NormStats,
}

impl A3cRun {
    pub(crate) fn new(
        config: Arc<RunConfig>,
        trainer: A3cTrainer,
        staleness: Arc<StalenessBound>,
        normalization: NormStats,
        counters: &RunCounters,
    ) -> Self {
        Self {
            trainer,
            config,
            interval_start: (counters.gradients_applied, staleness.dropped()),
            staleness,
            stats: IntervalStats::default(),
            last_stats: IntervalStats::default(),
            normalization,
        }
    }
}

impl Algorithm for A3cRun {
    type Item = GradientPush;
    type State = ();

    fn handle(
        &mut self,
        first: GradientPush,
        rx: &Receiver<GradientPush>,
        cx: &mut Cx,
    ) -> Option<Stop> {
        let mut applied = 0;
        let burst = std::iter::once(first).chain(rx.try_iter().take(MAX_BURST - 1));
        for mut g in burst {
            let progress = &mut *cx.progress;
            let Ok(staleness) = self.staleness.check(g.version, progress.counters.version) else {
                continue;
            };
            // Only applied gradients count: their steps and the episodes they finished.
            progress.add_experience(g.env_steps as u64, &g.episode_returns, &g.episode_lengths);
            progress.lag.record(staleness);
            let norm = self.trainer.apply(std::mem::take(&mut g.grad));
            let s = &mut self.stats;
            s.n += 1.0;
            s.policy_loss += g.policy_loss as f64;
            s.value_loss += g.value_loss as f64;
            s.entropy += g.entropy as f64;
            s.grad_norm += norm;
            progress.counters.gradients_applied += 1;
            applied += 1;
        }
        let counters = &mut cx.progress.counters;
        if applied > 0 {
            counters.updates += applied;
            counters.version = cx
                .publisher
                .publish(&self.trainer.params(), self.normalization.clone());
        }
        Stop::on_training_return(&self.config, counters)
    }

    fn status(&mut self, row: &mut StatusRow, counters: &RunCounters, interval_secs: f64) {
        let interval = std::mem::take(&mut self.stats);
        if interval.n > 0.0 {
            self.last_stats = interval;
        }
        let s = self.last_stats;
        if s.n > 0.0 {
            row.policy_loss = Some(s.policy_loss / s.n);
            row.value_loss = Some(s.value_loss / s.n);
            row.entropy = Some(s.entropy / s.n);
            row.grad_norm = Some(s.grad_norm / s.n);
            row.learning_rate = Some(self.config.a3c.learning_rate);
        }
        let (applied, stale) = (counters.gradients_applied, counters.gradients_stale);
        row.gradients_applied = Some(applied);
        row.gradients_stale = Some(stale);
        row.gradients_applied_per_s =
            Some((applied - self.interval_start.0) as f64 / interval_secs);
        row.gradients_stale_per_s = Some((stale - self.interval_start.1) as f64 / interval_secs);
        self.interval_start = (applied, stale);
    }

    fn count(&self, counters: &mut RunCounters) {
        counters.gradients_stale = self.staleness.dropped();
    }

    fn params(&self) -> Vec<f32> {
        self.trainer.params()
    }

    fn normalization(&self) -> NormStats {
        self.normalization.clone()
    }

    fn save(&self, dir: &Path) -> Result<(), CheckpointError> {
        self.trainer.save_optimizer(dir)
    }

    fn restore(&mut self, dir: &Path, (): ()) -> Result<(), CheckpointError> {
        self.trainer.load_optimizer(dir)
    }
}
