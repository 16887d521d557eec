//! Synchronous PPO on the trainer thread: collects rollouts made with the current version until
//! `rollouts_per_update` have arrived (or the actor timeout has passed with at least one), then
//! updates and publishes the next version.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use shoal_common::config::RunConfig;
use shoal_common::normalize::NormStats;
use shoal_common::rollout::Rollout;

use super::batch::Batch;
use super::gate::SyncGate;
use super::leash::{KlLeash, LeashStats};
use super::trainer::{PpoTrainer, UpdateStats};
use crate::algo::lockstep::Members;
use crate::checkpoint::CheckpointError;
use crate::telemetry::{RunCounters, StatusRow};
use crate::trainer::{Algorithm, Cx, Stop};

/// See the module docs.
pub(crate) struct PpoRun {
    trainer: PpoTrainer,
    config: Arc<RunConfig>,
    gate: Arc<SyncGate>,
    batch: Vec<Rollout>,
    /// Since the current version was published.
    waiting_since: Instant,
    /// When the current version's first rollout arrived: from then on the trainer waits for
    /// the other actors (a stall when one is missing).
    first_arrival: Option<Instant>,
    /// Longest wait for a batch to fill in the current status interval (s).
    longest_wait_secs: f64,
    last_update: Option<UpdateStats>,
    /// The statistics of every rollout trained on; each version ships them as they were when
    /// it was published.
    normalization: NormStats,
    /// A deterministic run's actors.
    members: Members,
    /// The KL penalty against the starting policy, when the run has one.
    leash: Option<KlLeash>,
    last_leash: Option<LeashStats>,
}

impl PpoRun {
    pub(crate) fn new(
        config: Arc<RunConfig>,
        trainer: PpoTrainer,
        gate: Arc<SyncGate>,
        normalization: NormStats,
        leash: Option<KlLeash>,
    ) -> Self {
        Self {
            trainer,
            batch: Vec::with_capacity(config.ppo.rollouts_per_update),
            members: Members::new(config.ppo.rollouts_per_update),
            config,
            gate,
            waiting_since: Instant::now(),
            first_arrival: None,
            longest_wait_secs: 0.0,
            last_update: None,
            normalization,
            leash,
            last_leash: None,
        }
    }

    /// One update on the rollouts gathered, then the next version.
    fn update(&mut self, cx: &mut Cx) {
        // Arrival order varies from run to run; actor order does not. The rollouts are
        // counted (steps, episodes) and their statistics merged in that order.
        self.batch.sort_by_key(|r| r.actor_id);
        for r in &self.batch {
            cx.progress.add_experience(
                r.env_steps() as u64,
                &r.episode_returns,
                &r.episode_lengths,
            );
            self.normalization.merge(&r.moments);
        }
        let counters = &mut cx.progress.counters;
        let waited = self.waiting_since.elapsed().as_secs_f64();
        self.longest_wait_secs = self.longest_wait_secs.max(waited);
        let stalled = self
            .first_arrival
            .take()
            .map_or(0.0, |t| t.elapsed().as_secs_f64());
        counters.longest_stall_secs = counters.longest_stall_secs.max(stalled);
        tracing::debug!(version = counters.version, "update starts");
        if let Some(leash) = &mut self.leash {
            self.last_leash = Some(leash.penalize(&mut self.batch));
        }
        let p = &self.config.ppo;
        let data = Batch::from_rollouts(&self.batch, p.gamma, p.gae_lambda);
        let before = self.trainer.snapshot();
        let stats = self.trainer.update(&data, counters.env_steps);
        let params = self.trainer.params();
        self.waiting_since = Instant::now();
        let used = self.batch.len() as u64;
        self.batch.clear();
        if let Some(index) = params.iter().position(|x| !x.is_finite()) {
            // Validated input can still be extreme enough to overflow: the model never keeps
            // (or publishes) a non-finite value. Actors collect again with this version.
            self.trainer.rollback(before);
            counters.nonfinite_updates += 1;
            tracing::warn!(
                version = counters.version,
                index,
                "update discarded: it made a parameter non-finite"
            );
            return;
        }
        counters.rollouts_used += used;
        counters.updates += 1;
        self.last_update = Some(stats);
        let next_version = counters.version + 1;
        self.gate.open(next_version);
        counters.version = cx.publisher.publish(&params, self.normalization.clone());
        debug_assert_eq!(counters.version, next_version);
        tracing::debug!(version = counters.version, "published");
    }
}

impl Algorithm for PpoRun {
    type Item = Rollout;
    type State = ();

    fn handle(&mut self, rollout: Rollout, _rx: &Receiver<Rollout>, cx: &mut Cx) -> Option<Stop> {
        tracing::debug!(
            actor_id = rollout.actor_id,
            version = rollout.version,
            "rollout received"
        );
        let progress = &mut *cx.progress;
        let version = progress.counters.version;
        progress.lag.record(version.saturating_sub(rollout.version));
        // A deterministic run takes one rollout per actor per version.
        let repeat = self.config.deterministic
            && (!self.members.admit(rollout.actor_id)
                || self.batch.iter().any(|r| r.actor_id == rollout.actor_id));
        // Only experience an update uses counts (when it is used): its steps and the episodes
        // it finished. A stale rollout is the actor's loss, not the run's progress.
        if rollout.version == version
            && self.batch.len() < self.config.ppo.rollouts_per_update
            && !repeat
        {
            self.batch.push(rollout);
            self.first_arrival.get_or_insert_with(Instant::now);
        } else {
            progress.counters.rollouts_stale += 1;
        }
        if self.batch.len() == self.config.ppo.rollouts_per_update {
            self.update(cx);
        }
        Stop::on_training_return(&self.config, &cx.progress.counters)
    }

    fn poll(&mut self, cx: &mut Cx) -> Option<Stop> {
        // Some rollouts of this version are in, the rest have not come within the actor
        // timeout: their actors are gone or cut off. Train on what arrived.
        let first = self.first_arrival?;
        let timeout = Duration::from_secs_f64(self.config.learner.actor_timeout_secs);
        if first.elapsed() < timeout {
            return None;
        }
        tracing::warn!(
            rollouts = self.batch.len(),
            wanted = self.config.ppo.rollouts_per_update,
            waited_s = format_args!("{:.2}", first.elapsed().as_secs_f64()),
            version = cx.progress.counters.version,
            "actors missing: updating on the rollouts that arrived"
        );
        cx.progress.counters.partial_updates += 1;
        if self.config.deterministic {
            tracing::warn!("a partial update: this deterministic run will not repeat bit for bit");
        }
        self.update(cx);
        Stop::on_training_return(&self.config, &cx.progress.counters)
    }

    fn status(&mut self, row: &mut StatusRow, counters: &RunCounters, _interval_secs: f64) {
        if let Some(u) = self.last_update {
            let finite = |x: f64| x.is_finite().then_some(x);
            row.policy_loss = finite(u.policy_loss);
            row.value_loss = finite(u.value_loss);
            row.entropy = finite(u.entropy);
            row.approx_kl = finite(u.approx_kl);
            row.clipfrac = finite(u.clipfrac);
            row.explained_variance = finite(u.explained_variance);
            row.grad_norm = finite(u.grad_norm);
            row.learning_rate = finite(u.learning_rate);
        }
        if let Some(l) = self.last_leash {
            row.kl_ref = l.kl.is_finite().then_some(l.kl);
            row.kl_ref_coef = Some(l.beta);
        }
        row.rollouts_used = Some(counters.rollouts_used);
        row.rollouts_stale = Some(counters.rollouts_stale);
        row.partial_updates = Some(counters.partial_updates);
        row.longest_wait_s = Some(std::mem::take(&mut self.longest_wait_secs));
        row.longest_stall_s = Some(counters.longest_stall_secs);
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
