//! The shoal actor: connects to a learner, receives its settings and parameters, steps
//! `num_envs` environments with batched inference on a local flex copy of the policy, and
//! pushes a rollout every `n_steps`.
//!
//! # Layout
//! - [`worker`]: rollout collection (environments + sampling), free of networking.
//! - [`a3c`]: n-step returns and the A3C loss gradient on a local autodiff copy.
//! - [`dqn`]: ε-greedy collection of n-step transitions for distributed DQN.
//! - [`policy`]: the detached inference copy of the network.
//! - [`backoff`]: capped exponential backoff with jitter for reconnects.
//! - [`health`]: a client of the standard gRPC health service (`shoal health`).
//! - [`cli`]: command-line arguments.
//!
//! The session loop: register → subscribe to parameters → collect → push → (if the learner has
//! what it needs for this version) wait for the next version, at most `param_wait_ms` → repeat.
//! A lost learner means reconnecting with backoff; the environments carry on where they were.
//!
//! A3C runs instead: register → fetch parameters → collect `n_steps` → compute the gradient →
//! `PushGradient`, whose ack carries newer parameters when there are any → repeat.

pub mod a3c;
pub mod backoff;
pub mod cli;
pub mod dqn;
pub mod health;
pub mod policy;
pub mod worker;

use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};
use tracing::{debug, info, warn};

use shoal_common::codec::CodecError;
use shoal_common::config::AlgorithmKind;
use shoal_common::env::EnvError;
use shoal_common::gradient::GradientPush;
use shoal_common::normalize::{NormStats, NormStatsError, Normalizer};
use shoal_common::security::{BearerAuth, Token};
use shoal_common::stats::ActorStats;

use crate::a3c::GradientComputer;
use crate::dqn::DqnWorker;
use shoal_common::proto::{self, parameter_server_client::ParameterServerClient};
use shoal_common::settings::{ActorSettings, PROTOCOL_VERSION, SettingsError};

use crate::backoff::Backoff;
use crate::policy::Policy;
use crate::worker::Worker;

/// Errors that stop an actor (everything else is retried).
#[derive(Debug, Error)]
pub enum ActorError {
    /// The learner address is not a valid URL.
    #[error("invalid learner address `{address}`: {message}")]
    Address {
        /// As given.
        address: String,
        /// Why.
        message: String,
    },
    /// The learner's settings cannot be used (e.g. a model fingerprint mismatch).
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The learner's environment is unknown to this build.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// Parameters from the learner do not fit the model.
    #[error(transparent)]
    Params(#[from] CodecError),
    /// Normalisation statistics from the learner are unusable.
    #[error("learner sent unusable parameters: {0}")]
    NormStats(#[from] NormStatsError),
    /// The learner refused this actor for good.
    #[error("learner refused the actor: {0}")]
    Refused(String),
}

/// How to reach the learner.
#[derive(Debug, Clone)]
pub struct ActorOptions {
    /// Learner URL, e.g. `http://127.0.0.1:50051` (`https://` with TLS).
    pub learner: String,
    /// Name reported to the learner (logs only).
    pub name: String,
    /// Longest delay between reconnect attempts.
    pub max_backoff: Duration,
    /// The run's shared token, sent with every rpc.
    pub token: Option<Token>,
    /// TLS: the CA certificate (PEM) the learner's certificate must chain to.
    pub tls_ca: Option<Vec<u8>>,
    /// TLS: the name the learner's certificate must carry (default: the URL's host).
    pub tls_domain: Option<String>,
}

impl ActorOptions {
    /// Plain options for `learner` (no token, no TLS, 2 s maximum backoff).
    pub fn new(learner: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            learner: learner.into(),
            name: name.into(),
            max_backoff: Duration::from_secs(2),
            token: None,
            tls_ca: None,
            tls_domain: None,
        }
    }
}

/// What an actor did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActorSummary {
    /// Pushes the learner took (rollouts, gradients or transition batches).
    pub rollouts: u64,
    /// Environment steps taken.
    pub env_steps: u64,
    /// Episodes finished.
    pub episodes: u64,
    /// Sessions opened after the first.
    pub reconnects: u32,
    /// Why the learner ended the run, if it did.
    pub finished: Option<String>,
    /// When the previous report was made, and the steps taken by then.
    last_report: Option<(std::time::Instant, u64)>,
}

impl ActorSummary {
    /// Counts the steps and episodes about to be pushed and makes the report that goes with
    /// them: speed since the previous report, totals, mean inference time.
    fn report(&mut self, env_steps: u64, episodes: u64, inference_secs: f64) -> proto::ActorStats {
        let now = std::time::Instant::now();
        let sps = match self.last_report {
            Some((t, steps)) => {
                (self.env_steps + env_steps - steps) as f64
                    / now.duration_since(t).as_secs_f64().max(1e-6)
            }
            None => 0.0,
        };
        self.env_steps += env_steps;
        self.episodes += episodes;
        self.last_report = Some((now, self.env_steps));
        ActorStats {
            sps,
            episodes: self.episodes,
            reconnects: self.reconnects,
            inference_secs,
            env_steps: self.env_steps,
        }
        .to_proto()
    }
}

enum SessionEnd {
    Finished(String),
    Cancelled,
}

enum SessionError {
    /// The connection broke or the learner forgot us: reconnect.
    Lost(Status),
    /// Give up.
    Fatal(ActorError),
}

impl From<Status> for SessionError {
    fn from(s: Status) -> Self {
        match s.code() {
            Code::FailedPrecondition
            | Code::InvalidArgument
            | Code::PermissionDenied
            | Code::Unauthenticated => {
                SessionError::Fatal(ActorError::Refused(s.message().to_string()))
            }
            _ => SessionError::Lost(s),
        }
    }
}

/// The newest thing the parameter subscription said.
#[derive(Debug, Clone)]
enum Latest {
    Nothing,
    Params(u64, Bytes, Option<proto::NormStats>),
    Finished(String),
    Lost(Status),
}

/// The generated client over a tonic channel, sending the run's token with every call.
pub type Client = ParameterServerClient<InterceptedService<Channel, BearerAuth>>;

/// A client on `endpoint` that sends `token` with every call, with the message limits both
/// ends use.
pub async fn connect(
    endpoint: &Endpoint,
    token: Option<Token>,
) -> Result<Client, tonic::transport::Error> {
    let channel = endpoint.connect().await?;
    Ok(
        ParameterServerClient::with_interceptor(channel, BearerAuth::new(token))
            .max_decoding_message_size(shoal_common::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(shoal_common::MAX_MESSAGE_BYTES),
    )
}

/// [`endpoint`] with TLS when `ca` is given: the learner's certificate must chain to it and
/// carry `domain` (default: the URL's host).
pub fn secure_endpoint(
    learner: &str,
    ca: Option<&[u8]>,
    domain: Option<&str>,
) -> Result<Endpoint, ActorError> {
    let endpoint = endpoint(learner)?;
    let Some(ca) = ca else {
        return Ok(endpoint);
    };
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    if let Some(domain) = domain {
        tls = tls.domain_name(domain);
    }
    endpoint.tls_config(tls).map_err(|e| ActorError::Address {
        address: learner.to_string(),
        message: format!("TLS: {}", error_chain(&e)),
    })
}

/// The transport settings an actor connects with: NODELAY, large HTTP/2 windows and frames
/// (a parameter version or a gradient crosses in one frame), keepalive.
pub fn endpoint(learner: &str) -> Result<Endpoint, ActorError> {
    Ok(Endpoint::from_shared(learner.to_string())
        .map_err(|e| ActorError::Address {
            address: learner.to_string(),
            message: e.to_string(),
        })?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(shoal_common::HTTP2_WINDOW_BYTES))
        .initial_connection_window_size(Some(2 * shoal_common::HTTP2_WINDOW_BYTES))
        .max_frame_size(shoal_common::HTTP2_MAX_FRAME_BYTES)
        // A learner that vanished without closing the connection (a network cut) is noticed
        // within ~10 s.
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true))
}

/// The runtime an actor process runs on: its async work is a handful of small RPCs, and one
/// thread serves them with the fewest wake-ups.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Runs an actor until the learner ends the run or `shutdown` is cancelled. Keeps retrying
/// while the learner is unreachable.
pub async fn run(
    options: ActorOptions,
    shutdown: CancellationToken,
) -> Result<ActorSummary, ActorError> {
    let endpoint = secure_endpoint(
        &options.learner,
        options.tls_ca.as_deref(),
        options.tls_domain.as_deref(),
    )?;
    let jitter_seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    let mut backoff = Backoff::new(Duration::from_millis(100), options.max_backoff, jitter_seed);
    let mut summary = ActorSummary::default();
    let mut worker: Option<(ActorSettings, AnyWorker)> = None;
    let mut actor_id = None;
    loop {
        let retry = |backoff: &mut Backoff, what: &str, error: String| {
            let delay = backoff.next_delay();
            warn!(
                learner = options.learner,
                attempt = backoff.attempt(),
                retry_in_ms = delay.as_millis() as u64,
                error,
                "{what}; retrying"
            );
            delay
        };
        let outcome = async {
            let mut client = connect(&endpoint, options.token.clone())
                .await
                .map_err(|e| {
                    SessionError::Lost(Status::unavailable(format!(
                        "learner unreachable: {}",
                        error_chain(&e)
                    )))
                })?;
            let response = client
                .register(proto::RegisterRequest {
                    protocol_version: PROTOCOL_VERSION as i32,
                    name: options.name.clone(),
                    previous_actor_id: actor_id,
                })
                .await?
                .into_inner();
            let settings =
                ActorSettings::from_proto(&response).map_err(|e| SessionError::Fatal(e.into()))?;
            Ok::<_, SessionError>((client, settings))
        }
        .await;
        let (mut client, settings) = match outcome {
            Ok(ok) => ok,
            Err(SessionError::Fatal(e)) => return Err(e),
            Err(SessionError::Lost(status)) => {
                let delay = retry(
                    &mut backoff,
                    "learner unreachable",
                    status.message().to_string(),
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => continue,
                    _ = shutdown.cancelled() => return Ok(summary),
                }
            }
        };
        let reconnect = actor_id.is_some();
        summary.reconnects += reconnect as u32;
        actor_id = Some(settings.actor_id);
        backoff.reset();
        info!(
            learner = options.learner,
            actor_id = settings.actor_id,
            env_id = settings.env_id,
            num_envs = settings.num_envs,
            n_steps = settings.n_steps,
            reconnect,
            "connected to learner"
        );
        // Same run settings: the environments carry on; otherwise start afresh.
        let same_run = |s: &ActorSettings| {
            ActorSettings {
                actor_id: settings.actor_id,
                ..s.clone()
            } == settings
        };
        let mut w = match worker.take() {
            Some((s, mut w)) if same_run(&s) => {
                w.set_actor_id(settings.actor_id);
                w
            }
            _ => AnyWorker::new(&settings)?,
        };
        let end = match &mut w {
            AnyWorker::Rollouts(w) if settings.algorithm == AlgorithmKind::A3c => {
                a3c_session(&mut client, &settings, w, &mut summary, &shutdown).await
            }
            AnyWorker::Rollouts(w) => {
                session(&mut client, &settings, w, &mut summary, &shutdown).await
            }
            AnyWorker::Transitions(w) => {
                dqn_session(&mut client, &settings, w, &mut summary, &shutdown).await
            }
        };
        worker = Some((settings, w));
        match end {
            Ok(SessionEnd::Finished(reason)) => {
                info!(
                    reason,
                    rollouts = summary.rollouts,
                    env_steps = summary.env_steps,
                    "learner ended the run; actor exits"
                );
                summary.finished = Some(reason);
                return Ok(summary);
            }
            Ok(SessionEnd::Cancelled) => return Ok(summary),
            Err(SessionError::Fatal(e)) => return Err(e),
            Err(SessionError::Lost(status)) => {
                warn!(
                    learner = options.learner,
                    error = status.message(),
                    "lost the learner; reconnecting"
                );
            }
        }
    }
}

/// One connection's worth of work.
async fn session(
    client: &mut Client,
    settings: &ActorSettings,
    worker: &mut Worker,
    summary: &mut ActorSummary,
    shutdown: &CancellationToken,
) -> Result<SessionEnd, SessionError> {
    let layout = settings.model.layout();
    let mut stream = client
        .subscribe_parameters(proto::SubscribeRequest {
            actor_id: settings.actor_id,
            model_fingerprint: settings.model_fingerprint.clone(),
        })
        .await?
        .into_inner();
    let (tx, mut rx) = watch::channel(Latest::Nothing);
    let forward = tokio::spawn(async move {
        loop {
            let latest = match stream.message().await {
                Ok(Some(proto::ParameterUpdate {
                    update: Some(proto::parameter_update::Update::Parameters(p)),
                })) => Latest::Params(p.version, p.data, p.normalization),
                Ok(Some(proto::ParameterUpdate {
                    update: Some(proto::parameter_update::Update::Finished(f)),
                })) => Latest::Finished(f.reason),
                Ok(Some(_)) => continue,
                Ok(None) => Latest::Lost(Status::unavailable(
                    "parameter stream closed by the learner",
                )),
                Err(status) => Latest::Lost(status),
            };
            let last = !matches!(latest, Latest::Params(..));
            if tx.send(latest).is_err() || last {
                break;
            }
        }
    });
    let _forward = AbortOnDrop(forward);

    let param_wait = Duration::from_millis(settings.param_wait_ms as u64);
    let mut policy: Option<Policy> = None;
    loop {
        // Adopt the newest version, if any.
        let latest = rx.borrow_and_update().clone();
        match latest {
            Latest::Params(version, data, stats)
                if policy.as_ref().is_none_or(|p| p.version() < version) =>
            {
                let params = layout
                    .decode(&data)
                    .map_err(|e| SessionError::Fatal(e.into()))?;
                let stats = NormStats::from_proto(stats.as_ref(), settings.model.obs_dim)
                    .map_err(|e| SessionError::Fatal(e.into()))?;
                let normalizer = Normalizer::new(settings.normalize, &stats);
                policy = Some(Policy::new(&settings.model, &params, version, normalizer));
                debug!(version, "parameters loaded");
            }
            Latest::Finished(reason) => return Ok(SessionEnd::Finished(reason)),
            Latest::Lost(status) => return Err(SessionError::Lost(status)),
            _ => {}
        }
        let Some(current) = policy.take() else {
            tokio::select! {
                changed = rx.changed() => if changed.is_err() {
                    return Err(SessionError::Lost(Status::unavailable("parameter stream ended")));
                },
                _ = shutdown.cancelled() => return Ok(SessionEnd::Cancelled),
            }
            continue;
        };
        // Collected inline: a CartPole rollout takes under a millisecond (the ppo_update
        // benchmark); parameter updates that arrive meanwhile wait in the stream until the push.
        let rollout = worker.collect(&current);
        let version = current.version();
        policy = Some(current);
        let mut msg = rollout.to_proto(&settings.model_fingerprint);
        msg.actor_stats = Some(summary.report(
            rollout.env_steps() as u64,
            rollout.episode_returns.len() as u64,
            worker.inference.take_mean(),
        ));
        let ack = match retry_while_full(shutdown, async || client.push_rollout(msg.clone()).await)
            .await
        {
            Ok(ack) => ack,
            // A learner that ends the run tells its subscribers and then closes every
            // connection; a push in flight can fail first. The stream says which it was.
            Err(SessionError::Lost(status)) => {
                return match run_finished(&mut rx, FINISH_GRACE).await {
                    Some(reason) => Ok(SessionEnd::Finished(reason)),
                    None => Err(SessionError::Lost(status)),
                };
            }
            Err(e) => return Err(e),
        };
        let Some(ack) = ack else {
            return Ok(SessionEnd::Cancelled);
        };
        summary.rollouts += 1;
        debug!(
            version,
            accepted = ack.accepted,
            wants_more = ack.wants_more,
            "rollout pushed"
        );
        if ack.wants_more {
            continue;
        }
        // Wait (bounded) for a version newer than the one just used, or the end.
        let newer = rx.wait_for(|latest| match latest {
            Latest::Params(v, ..) => *v > version,
            Latest::Nothing => false,
            Latest::Finished(_) | Latest::Lost(_) => true,
        });
        tokio::select! {
            _ = tokio::time::timeout(param_wait, newer) => {}
            _ = shutdown.cancelled() => return Ok(SessionEnd::Cancelled),
        }
    }
}

/// The environments an actor keeps across reconnects: rollout collection (PPO, A3C) or
/// transition collection (DQN).
enum AnyWorker {
    Rollouts(Worker),
    Transitions(DqnWorker),
}

impl AnyWorker {
    fn new(settings: &ActorSettings) -> Result<Self, ActorError> {
        Ok(match (settings.algorithm, settings.dqn) {
            (AlgorithmKind::Dqn, Some(dqn)) => Self::Transitions(DqnWorker::new(settings, dqn)?),
            (AlgorithmKind::Dqn, None) => {
                return Err(ActorError::Refused("DQN run without actor settings".into()));
            }
            _ => Self::Rollouts(Worker::new(settings)?),
        })
    }

    fn set_actor_id(&mut self, actor_id: u32) {
        match self {
            Self::Rollouts(w) => w.set_actor_id(actor_id),
            Self::Transitions(w) => w.set_actor_id(actor_id),
        }
    }
}

/// The newest parameters, fetched once at the start of an A3C or DQN session.
async fn first_parameters(
    client: &mut Client,
    settings: &ActorSettings,
) -> Result<proto::Parameters, SessionError> {
    client
        .get_parameters(proto::GetParametersRequest {
            actor_id: settings.actor_id,
            model_fingerprint: settings.model_fingerprint.clone(),
            have_version: 0,
        })
        .await?
        .into_inner()
        .parameters
        .ok_or_else(|| SessionError::Lost(Status::unavailable("learner sent no parameters")))
}

/// Calls `push` until the learner takes it, backing off (1 ms doubling to 100 ms) while its
/// queue is full. `None` when cancelled.
async fn retry_while_full<T>(
    shutdown: &CancellationToken,
    mut push: impl AsyncFnMut() -> Result<tonic::Response<T>, Status>,
) -> Result<Option<T>, SessionError> {
    let mut delay = Duration::from_millis(1);
    loop {
        match push().await {
            Ok(reply) => return Ok(Some(reply.into_inner())),
            Err(status) if status.code() == Code::ResourceExhausted => {
                debug!(
                    delay_ms = delay.as_millis() as u64,
                    "learner queue full; backing off"
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return Ok(None),
                }
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            Err(status) => return Err(status.into()),
        }
    }
}

/// One connection's worth of DQN: fetch the parameters, then collect ε-greedy transitions and
/// push them; each ack brings newer parameters when the learner has them.
async fn dqn_session(
    client: &mut Client,
    settings: &ActorSettings,
    worker: &mut DqnWorker,
    summary: &mut ActorSummary,
    shutdown: &CancellationToken,
) -> Result<SessionEnd, SessionError> {
    let layout = settings.model.layout();
    let adopt = |p: proto::Parameters| -> Result<Policy, SessionError> {
        let params = layout
            .decode(&p.data)
            .map_err(|e| SessionError::Fatal(e.into()))?;
        Ok(Policy::new(
            &settings.model,
            &params,
            p.version,
            Normalizer::off(settings.model.obs_dim),
        ))
    };
    let mut policy = adopt(first_parameters(client, settings).await?)?;
    loop {
        if shutdown.is_cancelled() {
            return Ok(SessionEnd::Cancelled);
        }
        let batch = worker.collect(&policy);
        let mut msg = batch.to_proto(&settings.model_fingerprint);
        msg.actor_stats = Some(summary.report(
            batch.len() as u64,
            batch.episode_returns.len() as u64,
            worker.inference.take_mean(),
        ));
        let Some(ack) = retry_while_full(shutdown, async || {
            client.push_transitions(msg.clone()).await
        })
        .await?
        else {
            return Ok(SessionEnd::Cancelled);
        };
        summary.rollouts += 1;
        if let Some(f) = ack.finished {
            return Ok(SessionEnd::Finished(f.reason));
        }
        if let Some(epsilon) = ack.epsilon {
            worker.set_epsilon(epsilon);
        }
        if let Some(p) = ack.parameters {
            policy = adopt(p)?;
        }
    }
}

/// One connection's worth of A3C: fetch the parameters, then collect, compute the gradient and
/// push it; each ack brings newer parameters when the learner has them.
async fn a3c_session(
    client: &mut Client,
    settings: &ActorSettings,
    worker: &mut Worker,
    summary: &mut ActorSummary,
    shutdown: &CancellationToken,
) -> Result<SessionEnd, SessionError> {
    let layout = settings.model.layout();
    let loss = settings.a3c.ok_or_else(|| {
        SessionError::Fatal(ActorError::Refused("A3C run without loss settings".into()))
    })?;
    let mut computer = GradientComputer::new(&settings.model, loss);
    let adopt = |p: proto::Parameters| -> Result<(Vec<f32>, Policy), SessionError> {
        let params = layout
            .decode(&p.data)
            .map_err(|e| SessionError::Fatal(e.into()))?;
        let policy = Policy::new(
            &settings.model,
            &params,
            p.version,
            Normalizer::off(settings.model.obs_dim),
        );
        Ok((params, policy))
    };
    let (mut params, mut policy) = adopt(first_parameters(client, settings).await?)?;
    loop {
        if shutdown.is_cancelled() {
            return Ok(SessionEnd::Cancelled);
        }
        let rollout = worker.collect(&policy);
        let env_steps = rollout.env_steps();
        let stats = summary.report(
            env_steps as u64,
            rollout.episode_returns.len() as u64,
            worker.inference.take_mean(),
        );
        let g = computer.compute(policy.version(), &params, &rollout);
        let mut msg = GradientPush {
            actor_id: settings.actor_id,
            version: policy.version(),
            grad: g.grad,
            env_steps: env_steps as u32,
            episode_returns: rollout.episode_returns,
            episode_lengths: rollout.episode_lengths,
            policy_loss: g.policy_loss,
            value_loss: g.value_loss,
            entropy: g.entropy,
        }
        .to_proto(&settings.model_fingerprint);
        msg.actor_stats = Some(stats);
        let Some(ack) =
            retry_while_full(shutdown, async || client.push_gradient(msg.clone()).await).await?
        else {
            return Ok(SessionEnd::Cancelled);
        };
        summary.rollouts += 1;
        if let Some(f) = ack.finished {
            return Ok(SessionEnd::Finished(f.reason));
        }
        if !ack.accepted {
            debug!(reason = ack.reason, "gradient not applied");
        }
        if let Some(p) = ack.parameters {
            (params, policy) = adopt(p)?;
        }
    }
}

/// How long an actor whose push failed waits for the parameter stream to say whether the run
/// ended.
const FINISH_GRACE: Duration = Duration::from_secs(2);

/// The run's end reason if the parameter stream reports it within `within`.
async fn run_finished(rx: &mut watch::Receiver<Latest>, within: Duration) -> Option<String> {
    let ended = rx.wait_for(|l| matches!(l, Latest::Finished(_) | Latest::Lost(_)));
    match tokio::time::timeout(within, ended).await {
        Ok(Ok(latest)) => match &*latest {
            Latest::Finished(reason) => Some(reason.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// `error: cause: cause…`, so that "transport error" says what happened underneath.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // Wrapping layers often repeat their inner error's message.
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
