//! DQN on the trainer thread: insert pushed transitions, do `replay_ratio` updates per inserted
//! transition once `learning_starts` are held, update the target network, publish, evaluate
//! the greedy policy (the target return is judged on the evaluation return).
//!
//! A deterministic run goes in lockstep rounds: one batch from each of `dqn.num_actors`
//! actors, all made with the current version, taken in actor order; then one new version.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use serde::{Deserialize, Serialize};
use shoal_common::config::RunConfig;
use shoal_common::evaluate::{evaluate_deterministic, mean_std};
use shoal_common::model::ModelSpec;
use shoal_common::normalize::{NormStats, Normalizer};
use shoal_common::rng::{derive_seed, streams};
use shoal_common::transition::TransitionBatch;

use super::exploration::Exploration;
use super::trainer::{DqnStats, DqnTrainer};
use crate::algo::lockstep::Members;
use crate::checkpoint::CheckpointError;
use crate::telemetry::{RunCounters, StatusRow};
use crate::trainer::{Algorithm, Cx, Stop};

/// What a DQN checkpoint records beside its files: where the replay-ratio control and the
/// evaluation seeds stand.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DqnState {
    /// Transitions inserted since updates began.
    pub learning_inserted: u64,
    /// Updates owed to the replay ratio.
    pub owed: f64,
    /// Greedy evaluations run.
    pub evaluations: u64,
    /// Whether the checkpoint holds the replay buffer (`replay.bin`).
    pub replay_saved: bool,
}

/// See the module docs.
pub(crate) struct DqnRun {
    trainer: DqnTrainer,
    config: Arc<RunConfig>,
    spec: ModelSpec,
    exploration: Arc<Exploration>,
    normalization: NormStats,
    /// Transitions inserted since updates began: the replay ratio achieved is judged on them.
    learning_inserted: u64,
    /// Updates owed to the replay ratio.
    owed: f64,
    last: DqnStats,
    evaluations: u64,
    /// A deterministic run's current round, by actor, and when its first batch came.
    round: BTreeMap<u32, TransitionBatch>,
    round_started: Option<Instant>,
    members: Members,
}

impl DqnRun {
    pub(crate) fn new(
        config: Arc<RunConfig>,
        spec: ModelSpec,
        trainer: DqnTrainer,
        exploration: Arc<Exploration>,
        normalization: NormStats,
    ) -> Self {
        Self {
            members: Members::new(config.dqn.num_actors),
            trainer,
            config,
            spec,
            exploration,
            normalization,
            learning_inserted: 0,
            owed: 0.0,
            last: DqnStats::default(),
            evaluations: 0,
            round: BTreeMap::new(),
            round_started: None,
        }
    }

    /// Takes one batch in: counted, inserted, and the updates it makes due.
    fn absorb(&mut self, batch: TransitionBatch, cx: &mut Cx) {
        let progress = &mut *cx.progress;
        progress.add_experience(
            batch.len() as u64,
            &batch.episode_returns,
            &batch.episode_lengths,
        );
        self.exploration.advance(progress.counters.env_steps);
        let version = progress.counters.version;
        progress.lag.record(version.saturating_sub(batch.version));
        self.trainer.insert(&batch);
        let d = &self.config.dqn;
        if self.trainer.replay.len() >= d.learning_starts {
            self.owed += batch.len() as f64 * d.replay_ratio;
            self.learning_inserted += batch.len() as u64;
        }
        self.learn(cx);
    }

    /// Whether the run is over: the greedy evaluation reached the target, or the budget is
    /// spent.
    fn stop(&self, cx: &Cx) -> Option<Stop> {
        let counters = &cx.progress.counters;
        if let Some((target, eval)) = self.target_reached(counters) {
            return Some(Stop::new(
                format!("target_return {target} reached: greedy evaluation mean return {eval:.1}"),
                true,
            ));
        }
        Stop::on_budget(&self.config, counters)
    }

    /// The target and the last greedy evaluation's mean return, when that reached it.
    fn target_reached(&self, counters: &RunCounters) -> Option<(f64, f64)> {
        let (target, eval) = (self.config.target_return?, counters.eval_return_mean?);
        (eval >= target).then_some((target, eval))
    }

    /// A deterministic run: keeps `batch` for the round; once every actor's is in, takes them
    /// in actor order and publishes one version.
    fn join_round(&mut self, batch: TransitionBatch, cx: &mut Cx) -> Option<Stop> {
        let counters = &mut cx.progress.counters;
        if batch.version != counters.version
            || self.round.contains_key(&batch.actor_id)
            || !self.members.admit(batch.actor_id)
        {
            // Not part of the lockstep (an actor that did not wait, a second batch, an actor
            // beyond `dqn.num_actors`).
            counters.rollouts_stale += 1;
            return None;
        }
        self.round.insert(batch.actor_id, batch);
        self.round_started.get_or_insert_with(Instant::now);
        if self.round.len() < self.config.dqn.num_actors {
            return None;
        }
        self.close_round(cx)
    }

    fn close_round(&mut self, cx: &mut Cx) -> Option<Stop> {
        self.round_started = None;
        for (_, batch) in std::mem::take(&mut self.round) {
            self.absorb(batch, cx);
        }
        let counters = &mut cx.progress.counters;
        counters.version = cx
            .publisher
            .publish(&self.trainer.params(), self.normalization.clone());
        self.stop(cx)
    }

    /// Greedy episodes with the current parameters; their mean return.
    fn evaluate(&mut self) -> f64 {
        self.evaluations += 1;
        let trainer = &mut self.trainer;
        let episodes = evaluate_deterministic(
            &self.spec,
            &mut |obs| trainer.q_values(obs),
            &Normalizer::off(self.spec.obs_dim),
            &self.config.env(),
            self.config.dqn.eval_episodes,
            derive_seed(
                derive_seed(self.config.seed, streams::LEARNER),
                self.evaluations,
            ),
        )
        .expect("the run's environment exists");
        let returns: Vec<f64> = episodes.iter().map(|e| e.episode_return).collect();
        mean_std(&returns).0
    }

    /// The updates the replay ratio owes, each followed by the target sync, publication and
    /// evaluation that fall due.
    fn learn(&mut self, cx: &mut Cx) {
        let config = self.config.clone();
        let d = &config.dqn;
        let counters = &mut cx.progress.counters;
        let frac = (counters.env_steps as f64 / self.config.total_steps.max(1) as f64).min(1.0);
        let beta = d.priority_beta + (1.0 - d.priority_beta) * frac;
        // Once an evaluation reached the target, no update follows (not even those owed for the
        // rest of a deterministic round): the run ends with the parameters that were evaluated,
        // so the final checkpoint is the policy that reached the target.
        while self.owed >= 1.0 && self.target_reached(counters).is_none() {
            self.owed -= 1.0;
            let Some(stats) = self.trainer.update(beta) else {
                counters.nonfinite_updates += 1;
                tracing::warn!(
                    updates = counters.updates,
                    "update discarded: its loss or gradient was not finite"
                );
                continue;
            };
            self.last = stats;
            counters.updates += 1;
            if counters.updates.is_multiple_of(d.target_update_interval) {
                self.trainer.sync_target();
            }
            // A deterministic run publishes once per round instead.
            if !config.deterministic && counters.updates.is_multiple_of(d.publish_interval) {
                counters.version = cx
                    .publisher
                    .publish(&self.trainer.params(), self.normalization.clone());
            }
            if counters.updates.is_multiple_of(d.eval_interval) {
                let mean = self.evaluate();
                counters.eval_return_mean = Some(mean);
                tracing::info!(
                    updates = counters.updates,
                    eval_return_mean = mean,
                    "greedy evaluation"
                );
            }
        }
    }
}

impl Algorithm for DqnRun {
    type Item = TransitionBatch;
    type State = DqnState;

    fn handle(
        &mut self,
        batch: TransitionBatch,
        _rx: &Receiver<TransitionBatch>,
        cx: &mut Cx,
    ) -> Option<Stop> {
        if self.config.deterministic {
            return self.join_round(batch, cx);
        }
        self.absorb(batch, cx);
        self.stop(cx)
    }

    fn poll(&mut self, cx: &mut Cx) -> Option<Stop> {
        // A deterministic round missing an actor for the actor timeout: it is gone; go on
        // without it (the run no longer repeats).
        let started = self.round_started?;
        let timeout = Duration::from_secs_f64(self.config.learner.actor_timeout_secs);
        if started.elapsed() < timeout {
            return None;
        }
        tracing::warn!(
            batches = self.round.len(),
            wanted = self.config.dqn.num_actors,
            "actors missing: closing the round without them; this deterministic run will \
             not repeat bit for bit"
        );
        cx.progress.counters.partial_updates += 1;
        self.close_round(cx)
    }

    fn status(&mut self, row: &mut StatusRow, counters: &RunCounters, _interval_secs: f64) {
        let (epsilon_min, epsilon_max) = self.exploration.range();
        row.eval_return_mean = counters.eval_return_mean;
        row.replay_size = Some(self.trainer.replay.len() as u64);
        row.replay_ratio = Some(counters.updates as f64 / self.learning_inserted.max(1) as f64);
        row.epsilon_min = Some(epsilon_min);
        row.epsilon_max = Some(epsilon_max);
        row.q_mean = Some(self.last.q_mean);
        row.td_error = Some(self.last.td_abs_mean);
        row.dqn_loss = Some(self.last.loss);
    }

    fn params(&self) -> Vec<f32> {
        self.trainer.params()
    }

    fn normalization(&self) -> NormStats {
        self.normalization.clone()
    }

    fn save(&self, dir: &Path) -> Result<DqnState, CheckpointError> {
        self.trainer.save(dir)?;
        Ok(DqnState {
            learning_inserted: self.learning_inserted,
            owed: self.owed,
            evaluations: self.evaluations,
            replay_saved: self.config.dqn.checkpoint_replay,
        })
    }

    fn restore(&mut self, dir: &Path, state: DqnState) -> Result<(), CheckpointError> {
        self.trainer.restore(dir)?;
        self.learning_inserted = state.learning_inserted;
        self.owed = state.owed;
        self.evaluations = state.evaluations;
        Ok(())
    }
}
