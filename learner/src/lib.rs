//! The shoal learner: owns the global network and its optimizer, trains it with synchronous
//! distributed PPO and serves the gRPC parameter server.
//!
//! # Layout
//! - [`service`]: the tonic handlers; validation; the bounded queue into the trainer.
//! - [`trainer`]: the model and optimizer; one PPO update per batch of rollouts.
//! - [`ppo`]: GAE and the PPO loss as pure functions.
//! - [`a3c`]: A3C's parameter server side: flat parameters, one optimizer step per gradient.
//! - [`dqn`]: distributed DQN's parts built so far: replay buffer, sum-tree, targets, loss.
//! - [`param_store`]: versioned, immutable parameter snapshots (publish = swap an `Arc`).
//! - [`status`]: the status line and metrics rows.
//! - [`run_dir`]: the run directory and checkpoints.
//! - [`device`]: run-time choice between wgpu (a real GPU) and flex (CPU).
//! - [`cli`]: command-line arguments and their resolution into a checked config.
//!
//! ```text
//! tonic handlers ──try_send──▶ bounded crossbeam queue ──▶ trainer thread (model + Adam)
//!        ▲                                                      │ publish(version, bytes)
//!        └──────────── ParamStore (watch of Arc<Snapshot>) ◀────┘
//! ```

pub mod a3c;
pub mod cli;
pub mod device;
pub mod dqn;
pub mod param_store;
pub mod ppo;
pub mod run_dir;
pub mod service;
pub mod status;
pub mod trainer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tracing::{info, warn};

use shoal_common::codec::encode_f32;
use shoal_common::config::{AlgorithmKind, ConfigError, RunConfig};
use shoal_common::env::{self, Space};
use shoal_common::model::{ActionHead, ModelSpec};
use shoal_common::normalize::NormStats;
use shoal_common::proto::parameter_server_server::ParameterServerServer;
use shoal_common::rng::{derive_seed, streams};
use shoal_common::rollout::Rollout;

use crate::a3c::A3cTrainer;
use crate::param_store::ParamStore;
use crate::run_dir::{CheckpointCounters, RunDir};
use crate::service::{Experience, ParameterService, Shared};
use crate::status::{Progress, ServiceView, log_status};
use crate::trainer::{Batch, PpoTrainer};

/// Why the learner could not run.
#[derive(Debug, Error)]
pub enum LearnerError {
    /// The run config is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The environment's spaces are not supported yet.
    #[error("environment {env_id}: {what} is not supported by PPO in this version")]
    Unsupported {
        /// The environment.
        env_id: String,
        /// What is missing.
        what: String,
    },
    /// No training device.
    #[error(transparent)]
    Device(#[from] device::DeviceError),
    /// The run directory could not be written.
    #[error("run directory {path}: {source}")]
    RunDir {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Server(#[from] tonic::transport::Error),
    /// The trainer thread panicked.
    #[error("trainer thread panicked: {0}")]
    TrainerPanic(String),
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunSummary {
    /// Why it stopped.
    pub reason: String,
    /// The run reached `target_return`.
    pub solved: bool,
    /// Environment steps received.
    pub env_steps: u64,
    /// Updates done.
    pub updates: u64,
    /// Final parameter version.
    pub version: u64,
    /// Episodes finished.
    pub episodes: u64,
    /// Mean return of the last 100 episodes.
    pub return_mean_100: Option<f64>,
    /// Seconds from start to stop.
    pub wall_secs: f64,
    /// Seconds the trainer spent updating and publishing (the rest it waited for rollouts).
    pub update_secs: f64,
    /// Rollouts dropped as stale (PPO).
    pub rollouts_stale: u64,
    /// Gradients applied (A3C).
    pub gradients_applied: u64,
    /// Mean return of the last greedy evaluation (DQN).
    pub eval_return_mean: Option<f64>,
    /// Gradients dropped as more than `max_staleness` versions old (A3C).
    pub gradients_stale: u64,
    /// The run directory.
    pub run_dir: PathBuf,
}

/// The model spec a config's environment needs.
pub fn model_spec(config: &RunConfig) -> Result<ModelSpec, LearnerError> {
    let env = env::make(&config.env_id).map_err(ConfigError::from)?;
    let action = match env.action_space() {
        Space::Discrete(n) => ActionHead::Categorical(n),
        // Sampled actions are clipped to the bounds before they reach the environment.
        Space::Box { low, high } if low.iter().chain(&high).all(|b| b.is_finite()) => {
            ActionHead::Gaussian(low.len())
        }
        other => {
            return Err(LearnerError::Unsupported {
                env_id: config.env_id.clone(),
                what: format!("action space {other} (unbounded)"),
            });
        }
    };
    Ok(ModelSpec {
        obs_dim: env.observation_space().flat_dim(),
        action,
        hidden: config.model.hidden.clone(),
        activation: config.model.activation,
    })
}

/// Runs a learner on `listener` until the run ends (target return or step budget) or
/// `shutdown` is cancelled. Writes `run_dir` and a final checkpoint.
pub async fn run(
    config: RunConfig,
    run_dir: PathBuf,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<RunSummary, LearnerError> {
    config.validate()?;
    let spec = model_spec(&config)?;
    let selected = device::select(config.learner.device)?;
    info!(device = %selected.description, "training device chosen");
    let dir = RunDir::create(&run_dir, &config)?;
    let initial = spec.init_params(derive_seed(config.seed, streams::MODEL_INIT));
    let store = ParamStore::new(encode_f32(&initial), NormStats::new(spec.obs_dim));
    let (tx, rx) = crossbeam_channel::bounded(config.learner.queue_capacity);
    let shared = Arc::new(Shared::new(
        config.clone(),
        spec.clone(),
        store,
        tx,
        shutdown.clone(),
    ));
    let addr = listener.local_addr().ok();
    info!(
        listen = ?addr,
        run_dir = %run_dir.display(),
        env_id = config.env_id,
        params = spec.layout().num_floats(),
        fingerprint = shared.fingerprint,
        "learner ready"
    );

    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let trainer_shared = shared.clone();
    let trainer_shutdown = shutdown.clone();
    let trainer = std::thread::Builder::new()
        .name("trainer".into())
        .spawn(move || {
            // Whatever happens to this thread (even a panic), actors are told the run is over.
            let _finish = FinishOnDrop(trainer_shared.store.clone());
            let result = match config.algorithm {
                AlgorithmKind::Ppo => {
                    let trainer = PpoTrainer::new(
                        &config,
                        spec,
                        &initial,
                        selected.device,
                        derive_seed(config.seed, streams::LEARNER),
                    );
                    train_loop(trainer_shared, rx, trainer, dir, trainer_shutdown)
                }
                AlgorithmKind::A3c => {
                    let trainer = A3cTrainer::new(&config.a3c, &initial, selected.device);
                    a3c::train_loop(trainer_shared, rx, trainer, dir, trainer_shutdown)
                }
                AlgorithmKind::Dqn => {
                    let trainer = dqn::trainer::DqnTrainer::new(
                        &config,
                        spec,
                        &initial,
                        selected.device,
                        derive_seed(config.seed, streams::LEARNER),
                    );
                    dqn::train_loop(trainer_shared, rx, trainer, dir, trainer_shutdown)
                }
            };
            let _ = done_tx.send(());
            result
        })
        .expect("spawn trainer thread");

    let service = ParameterServerServer::new(ParameterService::new(shared.clone()))
        .max_decoding_message_size(shoal_common::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(shoal_common::MAX_MESSAGE_BYTES);
    let server_shutdown = shutdown.clone();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .initial_stream_window_size(Some(shoal_common::HTTP2_WINDOW_BYTES))
            .initial_connection_window_size(Some(2 * shoal_common::HTTP2_WINDOW_BYTES))
            .max_frame_size(shoal_common::HTTP2_MAX_FRAME_BYTES)
            .http2_keepalive_interval(Some(Duration::from_secs(10)))
            .add_service(service)
            // The builder's TCP settings do not reach a listener we bring; without NODELAY, a
            // parameter version's last segment waited for the actor's delayed ACK (~12 ms here).
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listener).with_nodelay(Some(true)),
                async move { server_shutdown.cancelled().await },
            ),
    );

    // The trainer ends the run (or notices the cancellation); then the server stops. A server
    // that fails first cancels the run, and the trainer stops at its next check.
    let mut server = server;
    let mut server_result = None;
    tokio::select! {
        _ = done_rx => {
            // Pushing actors (A3C, DQN) learn that the run ended from the ack to their next push.
            tokio::select! {
                _ = shared.wait_until_pushers_told(Duration::from_secs(2)) => {}
                result = &mut server => server_result = Some(result),
            }
        }
        result = &mut server => server_result = Some(result),
    }
    shutdown.cancel();
    let summary = trainer
        .join()
        .map_err(|p| LearnerError::TrainerPanic(format!("{p:?}")))??;
    let server_result = match server_result {
        Some(result) => Ok(result),
        None => tokio::time::timeout(Duration::from_secs(5), server).await,
    };
    match server_result {
        Ok(Ok(result)) => result?,
        Ok(Err(join)) => warn!(error = %join, "server task failed"),
        Err(_) => warn!("server did not stop within 5 s; leaving it"),
    }
    Ok(summary)
}

/// Marks the run finished when dropped, unless the trainer already did.
struct FinishOnDrop(ParamStore);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        if self.0.latest().finished.is_none() {
            self.0.finish("the learner stopped unexpectedly".into());
        }
    }
}

fn service_view(shared: &Shared) -> ServiceView {
    let c = &shared.counters;
    ServiceView {
        connected_actors: shared.connected_actors(),
        queue_depth: shared.queue_depth(),
        rollouts_rejected: c.rollouts_rejected.load(Ordering::Relaxed),
        queue_full: c.queue_full.load(Ordering::Relaxed),
        gradients_rejected: c.gradients_rejected.load(Ordering::Relaxed),
        gradients_stale: c.gradients_stale.load(Ordering::Relaxed),
    }
}

/// Closes a status interval: one status line and one `metrics.jsonl` row.
fn write_status(
    shared: &Shared,
    progress: &mut Progress,
    dir: &mut RunDir,
) -> Result<(), LearnerError> {
    let row = progress.snapshot(service_view(shared));
    log_status(&row);
    dir.write_metrics(&row)
}

/// Whether a run should stop after `progress`: the reason and whether it solved the task.
fn stop_reason(config: &RunConfig, progress: &Progress) -> Option<(String, bool)> {
    if let (Some(target), Some(mean)) = (config.target_return, progress.episodes.full_mean())
        && mean >= target
    {
        return Some((
            format!(
                "target_return {target} reached: mean return {mean:.1} over the last 100 episodes"
            ),
            true,
        ));
    }
    (progress.env_steps >= config.total_steps)
        .then(|| (format!("total_steps {} reached", config.total_steps), false))
}

/// What the end of a run writes and reports.
struct RunEnd<'a> {
    reason: String,
    solved: bool,
    update_secs: f64,
    params: Vec<f32>,
    normalization: &'a NormStats,
}

/// Tells actors the run is over, writes the last metrics row and the final checkpoint, and
/// makes the summary.
fn finish_run(
    shared: &Shared,
    progress: &mut Progress,
    dir: &mut RunDir,
    end: RunEnd<'_>,
    save_optimizer: impl FnOnce(&std::path::Path) -> Result<(), String>,
) -> Result<RunSummary, LearnerError> {
    // Tell actors first, so they stop collecting while the checkpoint is written.
    shared.store.finish(end.reason.clone());
    write_status(shared, progress, dir)?;
    let counters = CheckpointCounters {
        version: progress.version,
        env_steps: progress.env_steps,
        updates: progress.updates,
        episodes: progress.episodes.total,
    };
    let checkpoint = dir.write_checkpoint(
        "final",
        &shared.layout,
        &end.params,
        end.normalization,
        counters,
        save_optimizer,
    )?;
    let summary = RunSummary {
        reason: end.reason,
        solved: end.solved,
        env_steps: progress.env_steps,
        updates: progress.updates,
        version: progress.version,
        episodes: progress.episodes.total,
        return_mean_100: progress.episodes.mean(),
        wall_secs: progress.elapsed_secs(),
        update_secs: end.update_secs,
        rollouts_stale: progress.rollouts_stale,
        gradients_applied: progress.gradients_applied,
        eval_return_mean: progress.eval_return_mean,
        gradients_stale: progress.gradients_stale
            + shared.counters.gradients_stale.load(Ordering::Relaxed),
        run_dir: dir.path().to_path_buf(),
    };
    info!(
        reason = summary.reason,
        solved = summary.solved,
        env_steps = summary.env_steps,
        updates = summary.updates,
        wall_secs = format_args!("{:.2}", summary.wall_secs),
        checkpoint = %checkpoint.display(),
        "run finished"
    );
    Ok(summary)
}

/// The trainer thread: consume rollouts, update, publish; log status; stop.
fn train_loop(
    shared: Arc<Shared>,
    rx: Receiver<Experience>,
    mut trainer: PpoTrainer,
    mut dir: RunDir,
    shutdown: CancellationToken,
) -> Result<RunSummary, LearnerError> {
    let config = shared.config.clone();
    let needed = config.ppo.rollouts_per_update;
    let interval = Duration::from_secs_f64(config.learner.status_interval_secs);
    let mut progress = Progress::new();
    let mut next_status = Instant::now() + interval;
    let mut batch: Vec<Rollout> = Vec::with_capacity(needed);
    let mut waiting_since = Instant::now();
    let mut solved = false;
    let mut update_secs = 0.0;
    // The statistics of every rollout trained on; each version ships them as they were when it
    // was published.
    let mut normalization = (*shared.store.latest().normalization).clone();
    let reason = loop {
        if shutdown.is_cancelled() {
            break "shutdown requested".to_string();
        }
        let timeout = next_status
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        match rx.recv_timeout(timeout) {
            Ok(Experience::Gradient(_) | Experience::Transitions(_)) => {
                unreachable!("the service refuses gradients and transitions in PPO runs")
            }
            Ok(Experience::Rollout(rollout)) => {
                let rollout = *rollout;
                tracing::debug!(
                    actor_id = rollout.actor_id,
                    version = rollout.version,
                    "rollout received"
                );
                progress.env_steps += rollout.env_steps() as u64;
                for (&r, &l) in rollout.episode_returns.iter().zip(&rollout.episode_lengths) {
                    progress.episodes.push(r, l);
                }
                progress
                    .lag
                    .record(progress.version.saturating_sub(rollout.version));
                if rollout.version == progress.version && batch.len() < needed {
                    normalization.merge(&rollout.moments);
                    batch.push(rollout);
                } else {
                    progress.rollouts_stale += 1;
                }
                if batch.len() == needed {
                    let waited = waiting_since.elapsed().as_secs_f64();
                    progress.longest_wait_secs = progress.longest_wait_secs.max(waited);
                    let update_start = Instant::now();
                    tracing::debug!(version = progress.version, "update starts");
                    // Arrival order varies from run to run; actor order does not.
                    batch.sort_by_key(|r| r.actor_id);
                    let data =
                        Batch::from_rollouts(&batch, config.ppo.gamma, config.ppo.gae_lambda);
                    let stats = trainer.update(&data, progress.env_steps);
                    progress.rollouts_used += batch.len() as u64;
                    batch.clear();
                    progress.updates += 1;
                    progress.last_update = Some(stats);
                    let next_version = progress.version + 1;
                    shared.begin_version(next_version);
                    progress.version = shared
                        .store
                        .publish(encode_f32(&trainer.params()), normalization.clone());
                    debug_assert_eq!(progress.version, next_version);
                    tracing::debug!(version = progress.version, "published");
                    update_secs += update_start.elapsed().as_secs_f64();
                    waiting_since = Instant::now();
                }
                if let Some((reason, done)) = stop_reason(&config, &progress) {
                    solved = done;
                    break reason;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break "rollout queue closed".to_string(),
        }
        if Instant::now() >= next_status {
            write_status(&shared, &mut progress, &mut dir)?;
            next_status = Instant::now() + interval;
        }
    };
    let end = RunEnd {
        reason,
        solved,
        update_secs,
        params: trainer.params(),
        normalization: &normalization,
    };
    finish_run(&shared, &mut progress, &mut dir, end, |p| {
        trainer.save_optimizer(p)
    })
}
