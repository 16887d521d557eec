//! The learner process: checks the config, opens the run directory (resuming from its newest
//! checkpoint when asked), starts the run's algorithm, the trainer thread, the gRPC server and
//! the optional Prometheus endpoint, and shuts them down in order when the run ends.
//!
//! ```text
//! tonic handlers ──Admission──▶ bounded queue ──▶ trainer thread (Algorithm: model + optimizer)
//!        ▲                                                 │ Publisher::publish(version, params)
//!        └────────── ParamStore (watch of Arc<Snapshot>) ◀─┘
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use shoal_common::codec::{ParamLayout, encode_f32};
use shoal_common::config::{AlgorithmKind, ConfigError, RunConfig};
use shoal_common::env::Space;
use shoal_common::model::{ActionHead, Input, ModelSpec};
use shoal_common::normalize::NormStats;
use shoal_common::rng::{derive_seed, streams};
use shoal_common::sources::{self, EnvShape};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::algo::{self, Setup};
use crate::checkpoint::{self, Checkpoint};
use crate::device;
use crate::edge::actor_ids::IdKey;
use crate::edge::door::RefusalLog;
use crate::edge::server::Server;
use crate::edge::{ActorRegistry, Door};
use crate::error::LearnerError;
use crate::options::LearnerOptions;
use crate::params::{ParamStore, Publisher};
use crate::run_dir::{self, RunDir};
use crate::summary::RunSummary;
use crate::telemetry::{EdgeCounters, Progress, RunCounters, StatusBoard, prometheus};
use crate::trainer::TrainerEnv;

/// The model spec a config's environment needs (a served environment is asked for its specs).
pub fn model_spec(config: &RunConfig) -> Result<ModelSpec, LearnerError> {
    let shape = sources::shape(&config.env()).map_err(ConfigError::from)?;
    model_spec_for(config, &shape)
}

/// The model spec for a config whose environment has `shape`.
fn model_spec_for(config: &RunConfig, shape: &EnvShape) -> Result<ModelSpec, LearnerError> {
    let action = match shape.action_space.clone() {
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
    let observations = &shape.observation_space;
    let input = Input::of(observations);
    if input != Input::Vector && config.normalize.observations {
        return Err(LearnerError::Unsupported {
            env_id: config.env_id.clone(),
            what: "observation normalisation of images or token sequences (pixels are scaled \
                   to [0, 1] and tokens embedded by the network; set \
                   normalize.observations = false)"
                .into(),
        });
    }
    let spec = ModelSpec {
        obs_dim: observations.flat_dim(),
        input,
        encoder: config.model.encoder,
        action,
        hidden: config.model.hidden.clone(),
        activation: config.model.activation,
        sequence: config.model.transformer,
    };
    spec.validate().map_err(|what| LearnerError::Unsupported {
        env_id: config.env_id.clone(),
        what,
    })?;
    Ok(spec)
}

/// The file in the run directory holding the KL leash's reference parameters.
const REFERENCE_FILE: &str = "reference.bin";

/// The frozen policy of PPO's KL leash, when the run has one: a new run's starting
/// parameters, kept in `RUN_DIR/reference.bin` so that a resumed run keeps its reference.
fn kl_reference(
    config: &RunConfig,
    run_dir: &Path,
    resumed: bool,
    initial: &[f32],
    layout: &ParamLayout,
) -> Result<Option<Vec<f32>>, LearnerError> {
    if config.algorithm != AlgorithmKind::Ppo || config.ppo.kl_ref_coef <= 0.0 {
        return Ok(None);
    }
    let path = run_dir.join(REFERENCE_FILE);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LearnerError::RunDir { path, source }
    };
    if resumed && path.exists() {
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let params =
            layout
                .decode(&bytes)
                .map_err(|source| checkpoint::CheckpointError::Params {
                    path: path.clone(),
                    source,
                })?;
        return Ok(Some(params));
    }
    // Written whole, then renamed: a crash leaves the old file or none, never half of one.
    let tmp = run_dir.join(format!(".{REFERENCE_FILE}.tmp"));
    std::fs::write(&tmp, encode_f32(initial)).map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    Ok(Some(initial.to_vec()))
}

/// How long the learner keeps serving after the run ended so that pushing actors (A3C, DQN),
/// which learn of the end from their next ack, are told.
const TELL_PUSHERS: Duration = Duration::from_secs(1);
/// How long the server may take to close its connections at the end; then those still open
/// (clients that do not read what they were sent) are closed by the learner, and it waits as
/// long again.
const SERVER_DRAIN: Duration = Duration::from_secs(1);

/// The run directory (under a default name: a new one, suffixed when the name is taken), and
/// the checkpoint to resume from when `resume` asks for one. A new run never writes into a
/// directory holding a run unless `overwrite` says so.
fn open_run_dir(
    config: &RunConfig,
    path: &Path,
    resume: bool,
    overwrite: bool,
    default_name: bool,
    layout: &ParamLayout,
) -> Result<(RunDir, Option<Checkpoint>), LearnerError> {
    if default_name {
        return Ok((RunDir::create(&run_dir::claim_new(path)?, config)?, None));
    }
    if !resume {
        if run_dir::holds_run(path) {
            if !overwrite {
                return Err(LearnerError::RunDirTaken(path.to_path_buf()));
            }
            warn!(run_dir = %path.display(), "--overwrite: deleting the run this directory held");
            run_dir::clear_run(path)?;
        }
        return Ok((RunDir::create(path, config)?, None));
    }
    let restored = checkpoint::newest_dir(path)?
        .map(|c| checkpoint::load(&c, config.algorithm, layout))
        .transpose()?;
    let Some(c) = &restored else {
        // Nothing to continue from: the run starts again, without the old rows and events
        // (which would make its curves double back).
        warn!(
            run_dir = %path.display(),
            "--resume: the run has no checkpoint yet; starting it afresh"
        );
        run_dir::clear_run(path)?;
        return Ok((RunDir::create(path, config)?, None));
    };
    info!(
        checkpoint = %c.dir.display(),
        env_steps = c.counters.env_steps,
        updates = c.counters.updates,
        version = c.counters.version,
        "resuming from checkpoint"
    );
    let dir = RunDir::open(path)?;
    Ok((dir, restored))
}

/// A learner that has started: the trainer thread, the gRPC server and the optional
/// Prometheus endpoint run until the run ends or its shutdown token is cancelled.
pub struct RunningLearner {
    trainer: std::thread::JoinHandle<Result<RunSummary, LearnerError>>,
    done: tokio::sync::oneshot::Receiver<()>,
    server: Server,
    metrics_server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    registry: Arc<ActorRegistry>,
    shutdown: CancellationToken,
}

/// Runs a learner on `listener` until the run ends (target return or step budget) or
/// `shutdown` is cancelled: [`start`], then [`RunningLearner::wait`].
pub async fn run(
    options: LearnerOptions,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<RunSummary, LearnerError> {
    start(options, listener, shutdown).await?.wait().await
}

/// Checks the config (the one place a run's config is checked), opens the run directory (with
/// `options.resume`, resuming from its newest checkpoint), and starts the trainer thread, the
/// gRPC server on `listener` and the optional Prometheus endpoint. Writes periodic checkpoints
/// and a final one.
pub async fn start(
    options: LearnerOptions,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<RunningLearner, LearnerError> {
    let LearnerOptions {
        config,
        run_dir,
        resume,
        overwrite,
        default_name,
        token,
        tls,
        metrics_listen,
        on_status,
        init,
    } = options;
    config.validate()?;
    let config = Arc::new(config);
    let env_shape = sources::shape(&config.env()).map_err(ConfigError::from)?;
    let spec = model_spec_for(&config, &env_shape)?;
    let layout = spec.layout();
    let (engine, selected) = device::select_engine(&config.learner)?;
    info!(
        device = %selected.description,
        engine = engine.name(),
        threads = engine.threads(),
        "compute engine chosen"
    );
    let (dir, restored) =
        open_run_dir(&config, &run_dir, resume, overwrite, default_name, &layout)?;
    let counters = restored
        .as_ref()
        .map_or_else(RunCounters::default, |c| c.counters.clone());
    let initial = match (&restored, &init) {
        (Some(c), _) => c.params.clone(),
        (None, Some(path)) => {
            if config.normalize.observations {
                return Err(LearnerError::Usage(
                    "--init starts from a checkpoint's parameters only, not from its observation \
                     statistics: it needs normalize.observations = false"
                        .into(),
                ));
            }
            let (_, checkpoint) = checkpoint::locate(path)?;
            info!(checkpoint = %checkpoint.display(), "starting from a checkpoint's parameters (--init)");
            checkpoint::load_params(&checkpoint, &layout)?
        }
        (None, None) => spec.init_params(derive_seed(config.seed, streams::MODEL_INIT)),
    };
    let reference = kl_reference(&config, dir.path(), restored.is_some(), &initial, &layout)?;
    let normalization = restored.as_ref().map_or_else(
        || NormStats::new(spec.moments_dim()),
        |c| c.normalization.clone(),
    );
    let store = ParamStore::new(
        encode_f32(&initial),
        normalization.clone(),
        counters.version,
    );
    // A resumed run does not replay the minibatch and replay-sampling order it had.
    let seed = derive_seed(config.seed, streams::LEARNER);
    let seed = match &restored {
        Some(_) => derive_seed(seed, counters.updates),
        None => seed,
    };
    let metrics_listener = match metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| LearnerError::MetricsListen { addr, source })?,
        ),
        None => None,
    };
    let timeout = Duration::from_secs_f64(config.learner.actor_timeout_secs);
    // The key of the actors' id secrets: the run's own, kept in its checkpoints.
    let id_key = match restored.as_ref().and_then(|c| c.actor_id_key.clone()) {
        Some(key) => key,
        None => IdKey::generate().map_err(|source| LearnerError::RunDir {
            path: "/dev/urandom".into(),
            source,
        })?,
    };
    let registry = Arc::new(ActorRegistry::new(counters.next_actor_id, id_key, timeout));
    let edge_counters = Arc::new(EdgeCounters::default());
    let board = Arc::new(StatusBoard::default());
    let started = algo::start(Setup {
        config: config.clone(),
        spec: spec.clone(),
        initial,
        normalization,
        counters: counters.clone(),
        seed,
        engine,
        reference,
    });
    let door = Arc::new(Door {
        config: config.clone(),
        fingerprint: layout.fingerprint(),
        layout: layout.clone(),
        spec,
        params: store.clone(),
        registry: registry.clone(),
        counters: edge_counters.clone(),
        board: board.clone(),
        refusal_log: RefusalLog::default(),
        episode_bounds: env_shape.bounds,
        shutdown: shutdown.clone(),
    });
    let metrics_server = metrics_listener.map(|listener| {
        if let Ok(addr) = listener.local_addr() {
            info!(url = %format!("http://{addr}/metrics"), "Prometheus metrics served");
        }
        tokio::spawn(prometheus::serve(
            listener,
            board.clone(),
            edge_counters.clone(),
            token.clone(),
            shutdown.clone(),
        ))
    });
    info!(
        listen = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        run_dir = %dir.path().display(),
        env_id = config.env_id,
        frame_stack = config.frame_stack,
        algorithm = config.algorithm.name(),
        params = layout.num_floats(),
        fingerprint = door.fingerprint,
        authentication = token.is_some(),
        tls = tls.is_some(),
        "learner ready"
    );

    let publisher = Publisher::new(store);
    let env = TrainerEnv {
        config,
        layout,
        publisher: publisher.clone(),
        registry: registry.clone(),
        counters: edge_counters,
        board,
        run_dir: dir,
        progress: Progress::new(counters),
        restore: restored,
        shutdown: shutdown.clone(),
        on_status,
    };
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let trainer_body = started.trainer;
    let trainer = std::thread::Builder::new()
        .name("trainer".into())
        .spawn(move || {
            // Whatever happens to this thread (even a panic), actors are told the run is over.
            let _finish = FinishOnDrop(publisher);
            let result = trainer_body(env);
            let _ = done_tx.send(());
            result
        })
        .expect("spawn trainer thread");
    let server = Server::start(
        door,
        started.admission,
        listener,
        token,
        tls.as_ref(),
        shutdown.clone(),
    )
    .await?;
    Ok(RunningLearner {
        trainer,
        done,
        server,
        metrics_server,
        registry,
        shutdown,
    })
}

impl RunningLearner {
    /// Waits for the run to end, then stops the server (after telling pushing actors) and the
    /// Prometheus endpoint; returns the run's summary.
    pub async fn wait(self) -> Result<RunSummary, LearnerError> {
        let Self {
            trainer,
            done,
            mut server,
            metrics_server,
            registry,
            shutdown,
        } = self;
        // The trainer ends the run (or notices the cancellation); then the server stops. A
        // server that fails first cancels the run, and the trainer stops at its next check.
        let mut server_result = None;
        tokio::select! {
            _ = done => {
                // Pushing actors (A3C, DQN) learn that the run ended from the ack to their
                // next push.
                tokio::select! {
                    _ = registry.wait_until_pushers_told(TELL_PUSHERS) => {}
                    result = &mut server.handle => server_result = Some(result),
                }
            }
            result = &mut server.handle => server_result = Some(result),
        }
        server.not_serving().await;
        shutdown.cancel();
        let summary = tokio::task::spawn_blocking(move || trainer.join())
            .await
            .expect("join the trainer thread")
            .map_err(|p| LearnerError::TrainerPanic(format!("{p:?}")))??;
        let server_result = match server_result {
            Some(result) => Ok(result),
            None => match tokio::time::timeout(SERVER_DRAIN, &mut server.handle).await {
                Ok(result) => Ok(result),
                Err(_) => {
                    let closed = server.connections.close_all();
                    warn!(
                        closed,
                        "connections still open {SERVER_DRAIN:?} after the end \
                         (clients not reading); closed"
                    );
                    tokio::time::timeout(SERVER_DRAIN, &mut server.handle).await
                }
            },
        };
        match server_result {
            Ok(Ok(result)) => result?,
            Ok(Err(join)) => warn!(error = %join, "server task failed"),
            Err(_) => {
                // Streams and connections still open are closed by dropping the server.
                server.handle.abort();
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
}

/// Marks the run finished when dropped, unless the trainer already did.
struct FinishOnDrop(Publisher);

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        if !self.0.finished() {
            self.0.finish("the learner stopped unexpectedly".into());
        }
    }
}
