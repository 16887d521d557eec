//! The shoal learner: owns the global network and its optimizer, trains it (synchronous PPO,
//! A3C or DQN) and serves the gRPC parameter server.
//!
//! # Layout
//! - [`service`]: the tonic handlers; validation; the bounded queue into the trainer.
//! - [`guard`]: the layer in front of every rpc: the shared token, transport-level refusals.
//! - `driver`: the trainer thread's loop shared by the algorithms (status, checkpoints, end).
//! - [`trainer`]: the PPO model and optimizer; one update per batch of rollouts.
//! - [`ppo`]: GAE and the PPO loss as pure functions.
//! - [`a3c`]: A3C's parameter server side: flat parameters, one optimizer step per gradient.
//! - [`dqn`]: distributed DQN: replay buffer, sum-tree, targets, loss, evaluation.
//! - [`param_store`]: versioned, immutable parameter snapshots (publish = swap an `Arc`).
//! - [`status`]: the status line and metrics rows.
//! - [`metrics`]: CSV columns, TensorBoard tags, Prometheus exposition, bottleneck warnings.
//! - [`tensorboard`]: TensorBoard event files.
//! - [`run_dir`]: the run directory, checkpoints and resuming from them.
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
mod driver;
pub mod guard;
pub mod metrics;
pub mod param_store;
pub mod ppo;
pub mod run_dir;
pub mod service;
pub mod status;
pub mod tensorboard;
pub mod trainer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
use shoal_common::security::{SecurityError, Token};

use crate::a3c::A3cRun;
use crate::dqn::DqnRun;
use crate::driver::Algorithm;
use crate::param_store::ParamStore;
use crate::run_dir::RunDir;
use crate::service::{ParameterService, Shared};
use crate::status::Progress;
use crate::trainer::PpoRun;

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
    /// The run directory could not be written or read.
    #[error("run directory {path}: {source}")]
    RunDir {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A checkpoint's algorithm state could not be restored.
    #[error("cannot resume from {path}: {message}")]
    Restore {
        /// The checkpoint.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The token or TLS files are unusable.
    #[error(transparent)]
    Security(#[from] SecurityError),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Server(#[from] tonic::transport::Error),
    /// The Prometheus endpoint could not listen.
    #[error("metrics endpoint: cannot listen on {addr}: {source}")]
    MetricsListen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
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
    /// Seconds of training (summed over resumes).
    pub wall_secs: f64,
    /// Seconds the trainer spent updating and publishing (the rest it waited for experience).
    pub update_secs: f64,
    /// Rollouts dropped as stale (PPO).
    pub rollouts_stale: u64,
    /// Gradients applied (A3C).
    pub gradients_applied: u64,
    /// Mean return of the last greedy evaluation (DQN).
    pub eval_return_mean: Option<f64>,
    /// Gradients dropped as more than `max_staleness` versions old (A3C).
    pub gradients_stale: u64,
    /// Longest time the trainer waited for a batch to fill (PPO), in seconds.
    pub longest_stall_secs: f64,
    /// PPO updates made on fewer rollouts than asked because actors went missing.
    pub partial_updates: u64,
    /// The run directory.
    pub run_dir: PathBuf,
}

/// A TLS certificate chain and private key (PEM) the learner serves with.
#[derive(Clone)]
pub struct TlsIdentity {
    /// Certificate chain, PEM.
    pub cert: Vec<u8>,
    /// Private key, PEM.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsIdentity(<certificate and key>)")
    }
}

/// Everything [`run`] needs besides the listener.
#[derive(Debug, Clone)]
pub struct LearnerOptions {
    /// The checked run config.
    pub config: RunConfig,
    /// Where the run writes.
    pub run_dir: PathBuf,
    /// Continue from the newest checkpoint in `run_dir`.
    pub resume: bool,
    /// Every rpc must carry this token (`None`: no authentication).
    pub token: Option<Token>,
    /// Serve TLS with this identity.
    pub tls: Option<TlsIdentity>,
    /// Serve Prometheus metrics (`GET /metrics`) on this address.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Called by the trainer thread with every status row (e.g. a progress display).
    pub on_status: Option<StatusHook>,
}

/// A callback that sees every status row.
#[derive(Clone)]
pub struct StatusHook(pub Arc<dyn Fn(&serde_json::Value) + Send + Sync>);

impl std::fmt::Debug for StatusHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatusHook")
    }
}

impl LearnerOptions {
    /// A fresh run of `config` in `run_dir`, without token or TLS.
    pub fn new(config: RunConfig, run_dir: PathBuf) -> Self {
        Self {
            config,
            run_dir,
            resume: false,
            token: None,
            tls: None,
            metrics_listen: None,
            on_status: None,
        }
    }
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

/// How long the learner keeps serving after the run ended so that pushing actors (A3C, DQN),
/// which learn of the end from their next ack, are told.
const TELL_PUSHERS: Duration = Duration::from_secs(1);
/// How long the server may take to close its connections at the end.
const SERVER_DRAIN: Duration = Duration::from_secs(2);

/// Runs a learner on `listener` until the run ends (target return or step budget) or
/// `shutdown` is cancelled. Writes the run directory, periodic checkpoints and a final one.
/// With `options.resume`, continues from the newest checkpoint in the run directory.
pub async fn run(
    options: LearnerOptions,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<RunSummary, LearnerError> {
    let LearnerOptions {
        config,
        run_dir,
        resume,
        token,
        tls,
        metrics_listen,
        on_status,
    } = options;
    config.validate()?;
    let spec = model_spec(&config)?;
    let layout = spec.layout();
    let selected = device::select(config.learner.device)?;
    info!(device = %selected.description, "training device chosen");
    let (dir, restored) = if resume {
        let dir = RunDir::open(&run_dir)?;
        let restored = dir.latest_checkpoint(config.algorithm.name(), &layout)?;
        match &restored {
            Some(c) => info!(
                checkpoint = %c.dir.display(),
                env_steps = c.counters.env_steps,
                updates = c.counters.updates,
                version = c.counters.version,
                "resuming from checkpoint"
            ),
            None => warn!(
                run_dir = %run_dir.display(),
                "--resume: the run has no checkpoint yet; starting it afresh"
            ),
        }
        (dir, restored)
    } else {
        (RunDir::create(&run_dir, &config)?, None)
    };
    let initial = match &restored {
        Some(c) => c.params.clone(),
        None => spec.init_params(derive_seed(config.seed, streams::MODEL_INIT)),
    };
    let normalization = match &restored {
        Some(c) => c.normalization.clone(),
        None => NormStats::new(spec.obs_dim),
    };
    let progress = restored
        .as_ref()
        .map(|c| Progress::resume(&c.counters))
        .unwrap_or_default();
    let store = ParamStore::new(encode_f32(&initial), normalization, progress.version);
    let metrics_listener = match metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| LearnerError::MetricsListen { addr, source })?,
        ),
        None => None,
    };
    let (tx, rx) = crossbeam_channel::bounded(config.learner.queue_capacity);
    let shared = Arc::new(Shared::new(
        config.clone(),
        spec.clone(),
        store,
        tx,
        shutdown.clone(),
        restored.as_ref().map_or(1, |c| c.counters.next_actor_id),
    ));
    shared
        .env_steps
        .store(progress.env_steps, std::sync::atomic::Ordering::Relaxed);
    let metrics_server = metrics_listener.map(|listener| {
        if let Ok(addr) = listener.local_addr() {
            info!(url = %format!("http://{addr}/metrics"), "Prometheus metrics served");
        }
        tokio::spawn(metrics::serve(
            listener,
            shared.clone(),
            token.clone(),
            shutdown.clone(),
        ))
    });
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    info!(
        listen = addr,
        run_dir = %run_dir.display(),
        env_id = config.env_id,
        algorithm = config.algorithm.name(),
        params = layout.num_floats(),
        fingerprint = shared.fingerprint,
        authentication = token.is_some(),
        tls = tls.is_some(),
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
            // A resumed run does not replay the minibatch and replay-sampling order it had.
            let seed = derive_seed(config.seed, streams::LEARNER);
            let seed = match &restored {
                Some(c) => derive_seed(seed, c.counters.updates),
                None => seed,
            };
            let normalization = (*trainer_shared.store.latest().normalization).clone();
            let device = selected.device;
            let mut algo: Box<dyn Algorithm> = match config.algorithm {
                AlgorithmKind::Ppo => Box::new(PpoRun::new(
                    &config,
                    spec,
                    &initial,
                    device,
                    seed,
                    normalization,
                )),
                AlgorithmKind::A3c => {
                    Box::new(A3cRun::new(&config, &initial, device, normalization))
                }
                AlgorithmKind::Dqn => Box::new(DqnRun::new(
                    &config,
                    spec,
                    &initial,
                    device,
                    seed,
                    normalization,
                )),
            };
            let result = restored
                .as_ref()
                .map_or(Ok(()), |c| {
                    algo.restore(&c.dir, &c.state)
                        .map_err(|message| LearnerError::Restore {
                            path: c.dir.clone(),
                            message,
                        })
                })
                .and_then(|()| {
                    driver::drive(
                        trainer_shared,
                        rx,
                        algo.as_mut(),
                        dir,
                        progress,
                        trainer_shutdown,
                        on_status,
                    )
                });
            let _ = done_tx.send(());
            result
        })
        .expect("spawn trainer thread");

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<ParameterServerServer<ParameterService>>()
        .await;
    let service = ParameterServerServer::new(ParameterService::new(shared.clone()))
        .max_decoding_message_size(shared.max_request_bytes())
        .max_encoding_message_size(shoal_common::MAX_MESSAGE_BYTES);
    // Dead connections (a partitioned actor) are noticed by keepalive pings within the actor
    // timeout.
    let keepalive = shared.actor_timeout / 2;
    let mut builder = tonic::transport::Server::builder()
        .initial_stream_window_size(Some(shoal_common::HTTP2_WINDOW_BYTES))
        .initial_connection_window_size(Some(2 * shoal_common::HTTP2_WINDOW_BYTES))
        .max_frame_size(shoal_common::HTTP2_MAX_FRAME_BYTES)
        .http2_keepalive_interval(Some(keepalive))
        .http2_keepalive_timeout(Some(keepalive));
    if let Some(tls) = &tls {
        builder = builder.tls_config(
            tonic::transport::ServerTlsConfig::new()
                .identity(tonic::transport::Identity::from_pem(&tls.cert, &tls.key)),
        )?;
    }
    let server_shutdown = shutdown.clone();
    let mut server = tokio::spawn(
        builder
            .layer(guard::GuardLayer::new(token, shared.clone()))
            .add_service(health_service)
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
    let mut server_result = None;
    tokio::select! {
        _ = done_rx => {
            // Pushing actors (A3C, DQN) learn that the run ended from the ack to their next push.
            tokio::select! {
                _ = shared.wait_until_pushers_told(TELL_PUSHERS) => {}
                result = &mut server => server_result = Some(result),
            }
        }
        result = &mut server => server_result = Some(result),
    }
    health
        .set_not_serving::<ParameterServerServer<ParameterService>>()
        .await;
    shutdown.cancel();
    let summary = tokio::task::spawn_blocking(move || trainer.join())
        .await
        .expect("join the trainer thread")
        .map_err(|p| LearnerError::TrainerPanic(format!("{p:?}")))??;
    let server_result = match server_result {
        Some(result) => Ok(result),
        None => tokio::time::timeout(SERVER_DRAIN, &mut server).await,
    };
    match server_result {
        Ok(Ok(result)) => result?,
        Ok(Err(join)) => warn!(error = %join, "server task failed"),
        Err(_) => {
            // Streams and connections still open are closed by dropping the server.
            server.abort();
            warn!("connections still open after {SERVER_DRAIN:?}; closed");
        }
    }
    if let Some(mut metrics) = metrics_server
        && tokio::time::timeout(SERVER_DRAIN, &mut metrics)
            .await
            .is_err()
    {
        metrics.abort();
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
