//! Distributed DQN (Ape-X) on the learner: the replay buffer with uniform and prioritised
//! sampling ([`replay`], [`sum_tree`]), the double-DQN target and the Huber loss, the trainer
//! ([`trainer`]) and its loop with the replay-ratio control and greedy evaluation.

pub mod replay;
pub mod sum_tree;
pub mod trainer;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use burn::tensor::Tensor;
use crossbeam_channel::Receiver;
use serde_json::{Value, json};
use shoal_common::codec::encode_f32;
use shoal_common::config::RunConfig;
use shoal_common::dqn::actor_epsilon;
use shoal_common::evaluate::{evaluate_deterministic, mean_std};
use shoal_common::normalize::{NormStats, Normalizer};
use shoal_common::rng::{derive_seed, streams};

use crate::driver::{Algorithm, Stop};
use crate::service::{Experience, Shared};
use crate::status::{DqnView, Progress};

/// The double-DQN target for one transition (van Hasselt et al. 2016): the online network picks
/// the next action, the target network values it:
///
/// y = r + discount · Q_target(s', argmax_a Q_online(s', a))
///
/// `discount` is `γ^n`, or 0 when the episode terminated (no bootstrap).
pub fn double_dqn_target(
    reward: f32,
    discount: f32,
    q_online_next: &[f32],
    q_target_next: &[f32],
) -> f32 {
    reward + discount * q_target_next[shoal_common::dqn::argmax(q_online_next)]
}

/// Huber loss per element (δ = 1, as PyTorch's `smooth_l1_loss` and Stable-Baselines3's DQN):
/// `½x²` for `|x| ≤ 1`, `|x| − ½` beyond.
pub fn huber(x: Tensor<1>) -> Tensor<1> {
    let abs = x.abs();
    let quadratic = abs.clone().clamp_max(1.0);
    let linear = abs - quadratic.clone();
    quadratic.square().mul_scalar(0.5) + linear
}

/// DQN on the trainer thread: insert pushed transitions, do `replay_ratio` updates per inserted
/// transition once `learning_starts` are held, update the target network, publish, evaluate
/// the greedy policy (the target return is judged on the evaluation return).
pub(crate) struct DqnRun {
    trainer: trainer::DqnTrainer,
    config: RunConfig,
    normalization: NormStats,
    /// Transitions inserted since updates began: the replay ratio achieved is judged on them.
    learning_inserted: u64,
    /// Updates owed to the replay ratio.
    owed: f64,
    update_secs: f64,
    last: trainer::DqnStats,
    evaluations: u64,
}

impl DqnRun {
    pub(crate) fn new(
        config: &RunConfig,
        spec: shoal_common::model::ModelSpec,
        initial: &[f32],
        device: burn::tensor::Device,
        seed: u64,
        normalization: NormStats,
    ) -> Self {
        Self {
            trainer: trainer::DqnTrainer::new(config, spec, initial, device, seed),
            config: config.clone(),
            normalization,
            learning_inserted: 0,
            owed: 0.0,
            update_secs: 0.0,
            last: trainer::DqnStats::default(),
            evaluations: 0,
        }
    }

    /// The schedule's range of ε over actors: Ape-X's is fixed, the linear one moves with the
    /// steps.
    fn epsilon_range(&self, env_steps: u64) -> (f64, f64) {
        let d = &self.config.dqn;
        (0..d.num_actors)
            .map(|i| actor_epsilon(d, self.config.total_steps, i, env_steps))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), e| {
                (lo.min(e), hi.max(e))
            })
    }

    /// Greedy episodes with the current parameters; their mean return.
    fn evaluate(&mut self, shared: &Shared) -> f64 {
        self.evaluations += 1;
        let episodes = evaluate_deterministic(
            &shared.spec,
            &self.trainer.params(),
            &Normalizer::off(shared.spec.obs_dim),
            &self.config.env_id,
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
}

impl Algorithm for DqnRun {
    fn handle(
        &mut self,
        first: Experience,
        _rx: &Receiver<Experience>,
        shared: &Shared,
        progress: &mut Progress,
    ) -> Option<Stop> {
        let Experience::Transitions(batch) = first else {
            unreachable!("the service refuses other experience in DQN runs")
        };
        let d = self.config.dqn.clone();
        progress.env_steps += batch.len() as u64;
        shared
            .env_steps
            .store(progress.env_steps, Ordering::Relaxed);
        for (&r, &l) in batch.episode_returns.iter().zip(&batch.episode_lengths) {
            progress.episodes.push(r, l);
        }
        progress
            .lag
            .record(progress.version.saturating_sub(batch.version));
        self.trainer.insert(&batch);
        if self.trainer.replay.len() >= d.learning_starts {
            self.owed += batch.len() as f64 * d.replay_ratio;
            self.learning_inserted += batch.len() as u64;
        }
        let start = Instant::now();
        let frac = (progress.env_steps as f64 / self.config.total_steps.max(1) as f64).min(1.0);
        let beta = d.priority_beta + (1.0 - d.priority_beta) * frac;
        while self.owed >= 1.0 {
            self.owed -= 1.0;
            let Some(stats) = self.trainer.update(beta) else {
                progress.nonfinite_updates += 1;
                tracing::warn!(
                    updates = progress.updates,
                    "update discarded: its loss or gradient was not finite"
                );
                continue;
            };
            self.last = stats;
            progress.updates += 1;
            if progress.updates.is_multiple_of(d.target_update_interval) {
                self.trainer.sync_target();
            }
            if progress.updates.is_multiple_of(d.publish_interval) {
                progress.version = shared.store.publish(
                    encode_f32(&self.trainer.params()),
                    self.normalization.clone(),
                );
            }
            if progress.updates.is_multiple_of(d.eval_interval) {
                let mean = self.evaluate(shared);
                progress.eval_return_mean = Some(mean);
                tracing::info!(
                    updates = progress.updates,
                    eval_return_mean = mean,
                    "greedy evaluation"
                );
            }
        }
        self.update_secs += start.elapsed().as_secs_f64();
        let (epsilon_min, epsilon_max) = self.epsilon_range(progress.env_steps);
        progress.dqn = Some(DqnView {
            replay_size: self.trainer.replay.len(),
            replay_ratio: progress.updates as f64 / self.learning_inserted.max(1) as f64,
            epsilon_min,
            epsilon_max,
            q_mean: self.last.q_mean,
            td_abs_mean: self.last.td_abs_mean,
            loss: self.last.loss,
        });
        if let (Some(target), Some(eval)) = (self.config.target_return, progress.eval_return_mean)
            && eval >= target
        {
            return Some(Stop::new(
                format!("target_return {target} reached: greedy evaluation mean return {eval:.1}"),
                true,
            ));
        }
        (progress.env_steps >= self.config.total_steps).then(|| {
            Stop::new(
                format!("total_steps {} reached", self.config.total_steps),
                false,
            )
        })
    }

    fn params(&self) -> Vec<f32> {
        self.trainer.params()
    }

    fn normalization(&self) -> NormStats {
        self.normalization.clone()
    }

    fn update_secs(&self) -> f64 {
        self.update_secs
    }

    fn save(&self, dir: &Path) -> Result<Value, String> {
        self.trainer.save(dir)?;
        Ok(json!({
            "learning_inserted": self.learning_inserted,
            "owed": self.owed,
            "evaluations": self.evaluations,
            "replay_saved": self.config.dqn.checkpoint_replay,
        }))
    }

    fn restore(&mut self, dir: &Path, state: &Value) -> Result<(), String> {
        self.trainer.restore(dir)?;
        self.learning_inserted = state["learning_inserted"].as_u64().unwrap_or(0);
        self.owed = state["owed"].as_f64().unwrap_or(0.0);
        self.evaluations = state["evaluations"].as_u64().unwrap_or(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn double_dqn_target_on_a_hand_computed_case() {
        // The online net prefers action 2; the target net values it at 0.5 (its own max is 4.0,
        // which plain DQN would use).
        let y = double_dqn_target(1.0, 0.9, &[0.1, 0.3, 0.7], &[4.0, 2.0, 0.5]);
        assert!((y - (1.0 + 0.9 * 0.5)).abs() < 1e-6);
        // A terminal transition does not bootstrap.
        assert_eq!(
            double_dqn_target(1.0, 0.0, &[0.1, 0.3, 0.7], &[4.0, 2.0, 0.5]),
            1.0
        );
    }

    #[test]
    fn huber_is_quadratic_near_zero_and_linear_beyond() {
        let x = Tensor::<1>::from_data(
            TensorData::new(vec![-3.0f32, -1.0, -0.5, 0.0, 0.5, 2.0], [6]),
            &Device::flex(),
        );
        let got = huber(x)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap();
        let want = [2.5, 0.5, 0.125, 0.0, 0.125, 1.5];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
    }
}
