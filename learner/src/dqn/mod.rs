//! Distributed DQN (Ape-X) on the learner: the replay buffer with uniform and prioritised
//! sampling ([`replay`], [`sum_tree`]), the double-DQN target and the Huber loss, the trainer
//! ([`trainer`]) and its loop with the replay-ratio control and greedy evaluation.

pub mod replay;
pub mod sum_tree;
pub mod trainer;

use burn::tensor::Tensor;

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

/// The trainer thread for DQN: insert pushed transitions, do `replay_ratio` updates per inserted
/// transition once `learning_starts` are held, sync the target network, publish, evaluate the
/// greedy policy, log status, stop (the target return is judged on the evaluation return).
pub(crate) fn train_loop(
    shared: std::sync::Arc<crate::service::Shared>,
    rx: crossbeam_channel::Receiver<crate::service::Experience>,
    mut trainer: trainer::DqnTrainer,
    mut dir: crate::run_dir::RunDir,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<crate::RunSummary, crate::LearnerError> {
    use crate::service::Experience;
    use crate::status::{DqnView, Progress};
    use crossbeam_channel::RecvTimeoutError;
    use shoal_common::codec::encode_f32;
    use shoal_common::dqn::apex_epsilon;
    use shoal_common::rng::{derive_seed, streams};
    use std::time::{Duration, Instant};

    let config = shared.config.clone();
    let d = config.dqn.clone();
    let interval = Duration::from_secs_f64(config.learner.status_interval_secs);
    let mut progress = Progress::new();
    let mut next_status = Instant::now() + interval;
    let normalization = (*shared.store.latest().normalization).clone();
    // Transitions inserted since updates began: the replay ratio achieved is judged on them.
    let (mut learning_inserted, mut owed, mut update_secs) = (0u64, 0.0f64, 0.0f64);
    let mut last = trainer::DqnStats::default();
    let mut evaluations = 0u64;
    let eps = [
        apex_epsilon(d.num_actors - 1, d.num_actors, d.epsilon, d.epsilon_alpha),
        apex_epsilon(0, d.num_actors, d.epsilon, d.epsilon_alpha),
    ];
    let (reason, solved) = loop {
        if shutdown.is_cancelled() {
            break ("shutdown requested".to_string(), false);
        }
        let timeout = next_status
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        match rx.recv_timeout(timeout) {
            Ok(Experience::Transitions(batch)) => {
                progress.env_steps += batch.len() as u64;
                for (&r, &l) in batch.episode_returns.iter().zip(&batch.episode_lengths) {
                    progress.episodes.push(r, l);
                }
                progress
                    .lag
                    .record(progress.version.saturating_sub(batch.version));
                trainer.insert(&batch);
                if trainer.replay.len() >= d.learning_starts {
                    owed += batch.len() as f64 * d.replay_ratio;
                    learning_inserted += batch.len() as u64;
                }
                let start = Instant::now();
                let frac = (progress.env_steps as f64 / config.total_steps.max(1) as f64).min(1.0);
                let beta = d.priority_beta + (1.0 - d.priority_beta) * frac;
                while owed >= 1.0 {
                    owed -= 1.0;
                    last = trainer.update(beta);
                    progress.updates += 1;
                    if progress.updates.is_multiple_of(d.target_update_interval) {
                        trainer.sync_target();
                    }
                    if progress.updates.is_multiple_of(d.publish_interval) {
                        progress.version = shared
                            .store
                            .publish(encode_f32(&trainer.params()), normalization.clone());
                    }
                    if progress.updates.is_multiple_of(d.eval_interval) {
                        evaluations += 1;
                        let returns = trainer::evaluate_greedy(
                            &shared.spec,
                            &trainer.params(),
                            &config.env_id,
                            d.eval_episodes,
                            derive_seed(derive_seed(config.seed, streams::LEARNER), evaluations),
                        );
                        let mean = returns.iter().sum::<f64>() / returns.len() as f64;
                        progress.eval_return_mean = Some(mean);
                        tracing::info!(
                            updates = progress.updates,
                            eval_return_mean = mean,
                            "greedy evaluation"
                        );
                    }
                }
                update_secs += start.elapsed().as_secs_f64();
                progress.dqn = Some(DqnView {
                    replay_size: trainer.replay.len(),
                    replay_ratio: progress.updates as f64 / learning_inserted.max(1) as f64,
                    epsilon_min: eps[0],
                    epsilon_max: eps[1],
                    q_mean: last.q_mean,
                    td_abs_mean: last.td_abs_mean,
                    loss: last.loss,
                });
                if let (Some(target), Some(eval)) =
                    (config.target_return, progress.eval_return_mean)
                    && eval >= target
                {
                    break (
                        format!(
                            "target_return {target} reached: greedy evaluation mean return {eval:.1}"
                        ),
                        true,
                    );
                }
                if progress.env_steps >= config.total_steps {
                    break (format!("total_steps {} reached", config.total_steps), false);
                }
            }
            Ok(_) => unreachable!("the service refuses other experience in DQN runs"),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break ("transition queue closed".into(), false),
        }
        if Instant::now() >= next_status {
            crate::write_status(&shared, &mut progress, &mut dir)?;
            next_status = Instant::now() + interval;
        }
    };
    let end = crate::RunEnd {
        reason,
        solved,
        update_secs,
        params: trainer.params(),
        normalization: &normalization,
    };
    crate::finish_run(&shared, &mut progress, &mut dir, end, |p| {
        trainer.save_optimizer(p)
    })
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
