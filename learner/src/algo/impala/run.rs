//! IMPALA on the trainer thread: every ready batch is trained on at once, whatever versions its
//! rollouts were made with. Each rollout's policy lag (the learner's version minus the one it
//! was made with) is measured; trajectories more than `max_policy_lag` versions behind are
//! left out of the loss and counted (their steps and episodes still count as the run's: the
//! actors took them). Every update publishes the next version.

use std::path::Path;
use std::sync::Arc;

use crossbeam_channel::Receiver;
use shoal_common::config::RunConfig;
use shoal_common::normalize::NormStats;
use shoal_common::rollout::Rollout;

use super::batch::TrajectoryBatch;
use super::trainer::ImpalaTrainer;
use crate::algo::ppo::UpdateStats;
use crate::checkpoint::CheckpointError;
use crate::telemetry::{RunCounters, StatusRow};
use crate::trainer::{Algorithm, Cx, Stop};

/// See the module docs.
pub(crate) struct ImpalaRun {
    trainer: ImpalaTrainer,
    config: Arc<RunConfig>,
    /// Admission's queue, read for its depth (the batcher takes from it).
    rollouts: Receiver<Rollout>,
    last_update: Option<UpdateStats>,
    /// The statistics of every rollout trained on; each version ships them as they were when
    /// it was published.
    normalization: NormStats,
    /// Samples seen and masked in the current status interval.
    interval_samples: u64,
    interval_masked: u64,
    /// Dropped with the run: the batcher thread ends.
    _batcher_stop: crossbeam_channel::Sender<()>,
}

impl ImpalaRun {
    pub(crate) fn new(
        config: Arc<RunConfig>,
        trainer: ImpalaTrainer,
        rollouts: Receiver<Rollout>,
        normalization: NormStats,
        batcher_stop: crossbeam_channel::Sender<()>,
    ) -> Self {
        Self {
            _batcher_stop: batcher_stop,
            trainer,
            config,
            rollouts,
            last_update: None,
            normalization,
            interval_samples: 0,
            interval_masked: 0,
        }
    }

    /// Measures the lag of `batch`'s rollouts, counts what is trained on, masks what is too
    /// old; then one update and the next version.
    fn train(&mut self, batch: &TrajectoryBatch, cx: &mut Cx) {
        let version = cx.progress.counters.version;
        let max_lag = self.config.impala.max_policy_lag;
        let mut fresh = vec![false; batch.rollouts.len()];
        for (i, r) in batch.rollouts.iter().enumerate() {
            let lag = version.saturating_sub(r.version);
            cx.progress.lag.record(lag);
            self.interval_samples += r.env_steps;
            // Every admitted rollout's steps and episodes count, masked or not: the budget is
            // the actors' interaction, and `samples_masked` says how much of it went unused.
            cx.progress
                .add_experience(r.env_steps, &r.episode_returns, &r.episode_lengths);
            if lag > max_lag {
                self.interval_masked += r.env_steps;
                cx.progress.counters.samples_masked += r.env_steps;
                cx.progress.counters.rollouts_stale += 1;
                continue;
            }
            fresh[i] = true;
            self.normalization.merge(&r.moments);
        }
        let kept: Vec<usize> = (0..batch.trajectories())
            .filter(|&c| fresh[batch.rollout_of[c]])
            .collect();
        if kept.is_empty() {
            tracing::debug!(version, "batch masked out entirely: every rollout too old");
            return;
        }
        let counters = &mut cx.progress.counters;
        let before = self.trainer.snapshot();
        let stats = self.trainer.update(batch, &kept, counters.env_steps);
        let params = self.trainer.params();
        if let Some(index) = params.iter().position(|x| !x.is_finite()) {
            self.trainer.rollback(before);
            counters.nonfinite_updates += 1;
            tracing::warn!(
                version,
                index,
                "update discarded: it made a parameter non-finite"
            );
            return;
        }
        counters.rollouts_used += fresh.iter().filter(|&&f| f).count() as u64;
        counters.updates += 1;
        self.last_update = Some(stats);
        counters.version = cx.publisher.publish(&params, self.normalization.clone());
    }
}

impl Algorithm for ImpalaRun {
    type Item = TrajectoryBatch;
    type State = ();

    fn handle(
        &mut self,
        batch: TrajectoryBatch,
        _rx: &Receiver<TrajectoryBatch>,
        cx: &mut Cx,
    ) -> Option<Stop> {
        self.train(&batch, cx);
        Stop::on_training_return(&self.config, &cx.progress.counters)
    }

    fn status(&mut self, row: &mut StatusRow, counters: &RunCounters, _interval_secs: f64) {
        if let Some(u) = self.last_update {
            let finite = |x: f64| x.is_finite().then_some(x);
            row.policy_loss = finite(u.policy_loss);
            row.value_loss = finite(u.value_loss);
            row.entropy = finite(u.entropy);
            row.approx_kl = finite(u.approx_kl);
            row.clipfrac = self
                .config
                .impala
                .clip_coef
                .and_then(|_| finite(u.clipfrac));
            row.explained_variance = finite(u.explained_variance);
            row.grad_norm = finite(u.grad_norm);
            row.learning_rate = finite(u.learning_rate);
        }
        row.rollouts_used = Some(counters.rollouts_used);
        row.rollouts_stale = Some(counters.rollouts_stale);
        row.samples_masked = Some(counters.samples_masked);
        let (seen, masked) = (
            std::mem::take(&mut self.interval_samples),
            std::mem::take(&mut self.interval_masked),
        );
        row.masked_fraction = (seen > 0).then(|| masked as f64 / seen as f64);
        // What waits for the trainer: ready batches (the loop's count) and queued rollouts.
        let batches = row.queue_depth.unwrap_or(0);
        row.queue_depth = Some(
            batches * self.config.impala.rollouts_per_batch as u64 + self.rollouts.len() as u64,
        );
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
