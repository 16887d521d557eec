//! The actor's life: connect and register (retrying with backoff while the learner is
//! unreachable), run the algorithm's session on the connection, and on a lost connection
//! reconnect and carry on with the same environments; until the learner ends the run or the
//! actor is cancelled.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::Status;
use tracing::{info, warn};

use shoal_common::proto;
use shoal_common::security::Token;
use shoal_common::settings::{ActorSettings, PROTOCOL_VERSION};

use crate::algo::{self, ActorAlgorithm, Link};
use crate::backoff::Backoff;
use crate::connection::{Client, connect, error_chain, secure_endpoint};
use crate::error::{ActorError, SessionEnd, SessionError};
use crate::summary::ActorSummary;

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
    /// Stop with an error when the learner has been unreachable this long (`None`: retry for
    /// ever, what an actor under an orchestrator wants).
    pub give_up_after: Option<Duration>,
    /// The environment this actor is for (stated at registration: a learner whose run trains
    /// another refuses it); `None`: whatever the learner's run says.
    pub env: Option<String>,
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
            give_up_after: None,
            env: None,
        }
    }
}

/// The id an actor was given and the secret that proves it (sent back when it reconnects).
type HeldId = (u32, Vec<u8>);

/// Connects to the learner and registers (`previous`: the id this actor held, with its
/// secret); returns the client, the settings and the secret of the id given.
async fn register(
    endpoint: &tonic::transport::Endpoint,
    options: &ActorOptions,
    previous: Option<&HeldId>,
) -> Result<(Client, ActorSettings, Vec<u8>), SessionError> {
    let mut client = connect(endpoint, options.token.clone())
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
            previous_actor_id: previous.map(|(id, _)| *id),
            previous_actor_secret: previous.map(|(_, s)| s.clone().into()).unwrap_or_default(),
            env_id: options.env.clone().unwrap_or_default(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let settings = ActorSettings::from_proto(&response).map_err(ActorError::from)?;
    Ok((client, settings, response.actor_secret.to_vec()))
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
    let mut kept: Option<(ActorSettings, Box<dyn ActorAlgorithm>)> = None;
    let mut held: Option<HeldId> = None;
    // Unreachable since: from the first attempt, and from each lost connection.
    let mut unreachable_since = Some(std::time::Instant::now());
    loop {
        let (mut client, settings, secret) =
            match register(&endpoint, &options, held.as_ref()).await {
                Ok(ok) => ok,
                Err(SessionError::Fatal(e)) => return Err(e),
                Err(SessionError::Lost(status)) => {
                    let since = *unreachable_since.get_or_insert_with(std::time::Instant::now);
                    if let Some(limit) = options.give_up_after
                        && since.elapsed() >= limit
                    {
                        return Err(ActorError::GaveUp {
                            learner: options.learner.clone(),
                            secs: since.elapsed().as_secs_f64(),
                            last_error: status.message().to_string(),
                        });
                    }
                    let mut delay = backoff.next_delay();
                    if let Some(limit) = options.give_up_after {
                        delay = delay.min(limit.saturating_sub(since.elapsed()));
                    }
                    warn!(
                        learner = options.learner,
                        attempt = backoff.attempt(),
                        retry_in_ms = delay.as_millis() as u64,
                        error = status.message(),
                        "learner unreachable; retrying"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => continue,
                        _ = shutdown.cancelled() => return Ok(summary),
                    }
                }
            };
        let reconnect = held.is_some();
        summary.reconnects += reconnect as u32;
        held = Some((settings.actor_id, secret));
        backoff.reset();
        info!(
            learner = options.learner,
            actor_id = settings.actor_id,
            env_id = settings.env.id,
            frame_stack = settings.env.frame_stack,
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
        let mut algorithm = match kept.take() {
            Some((s, mut a)) if same_run(&s) => {
                a.set_actor_id(settings.actor_id);
                a
            }
            _ => algo::start(&settings)?,
        };
        let link = Link {
            client: &mut client,
            settings: &settings,
            summary: &mut summary,
            shutdown: &shutdown,
        };
        let end = algorithm.session(link).await;
        kept = Some((settings, algorithm));
        match end {
            Ok(SessionEnd::Finished(reason)) => {
                info!(
                    reason,
                    rollouts = summary.rollouts,
                    env_steps = summary.env_steps,
                    idle_fraction = summary.idle_fraction().map(|f| format!("{f:.3}")),
                    "learner ended the run; actor exits"
                );
                summary.finished = Some(reason);
                return Ok(summary);
            }
            Ok(SessionEnd::Cancelled) => return Ok(summary),
            Err(SessionError::Fatal(e)) => return Err(e),
            Err(SessionError::Lost(status)) => {
                unreachable_since = Some(std::time::Instant::now());
                warn!(
                    learner = options.learner,
                    error = status.message(),
                    "lost the learner; reconnecting"
                );
            }
        }
    }
}
