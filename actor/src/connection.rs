//! The connection to the learner: transport settings (NODELAY, large HTTP/2 windows and frames,
//! keepalive), TLS, the authenticated client, the actor's runtime, and the retries every
//! session shares (a full learner queue backs off with [`Backoff`]).

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};
use tracing::debug;

pub use shoal_common::logging::error_chain;
use shoal_common::proto::{self, parameter_server_client::ParameterServerClient};
use shoal_common::security::{BearerAuth, Token};
use shoal_common::settings::ActorSettings;

use crate::backoff::Backoff;
use crate::error::{ActorError, SessionError};

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
    check_url(learner)?;
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

/// A learner URL that can never work is a mistake to report at once, not to retry: it needs
/// the scheme `http` or `https` and a host.
fn check_url(learner: &str) -> Result<(), ActorError> {
    let bad = |message: String| ActorError::Address {
        address: learner.to_string(),
        message,
    };
    let uri: tonic::codegen::http::Uri = learner
        .parse()
        .map_err(|e| bad(format!("not a URL ({e}); expected e.g. http://HOST:PORT")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(bad(format!("unknown scheme `{other}` (http or https)"))),
        None => {
            return Err(bad(format!(
                "the scheme is missing: did you mean http://{learner} (https:// with TLS)?"
            )));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(bad("no host: expected e.g. http://HOST:PORT".into()));
    }
    Ok(())
}

/// The runtime an actor process runs on: its async work is a handful of small RPCs, and one
/// thread serves them with the fewest wake-ups.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The longest wait between pushes refused for a full queue, by default.
pub(crate) const FULL_QUEUE_BACKOFF: Duration = Duration::from_millis(100);

/// Calls `push` until the learner takes it, backing off (from 1 ms, at most `max_delay`) while
/// its queue is full. `None` when cancelled.
pub(crate) async fn retry_while_full<T>(
    shutdown: &CancellationToken,
    max_delay: Duration,
    mut push: impl AsyncFnMut() -> Result<tonic::Response<T>, Status>,
) -> Result<Option<T>, SessionError> {
    let mut backoff = Backoff::new(Duration::from_millis(1), max_delay, 0);
    loop {
        match push().await {
            Ok(reply) => return Ok(Some(reply.into_inner())),
            Err(status) if status.code() == Code::ResourceExhausted => {
                let delay = backoff.next_delay();
                debug!(
                    delay_ms = delay.as_secs_f64() * 1e3,
                    "learner queue full; backing off"
                );
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.cancelled() => return Ok(None),
                }
            }
            Err(status) => return Err(status.into()),
        }
    }
}

/// The newest parameters, fetched once at the start of a session that does not subscribe.
pub(crate) async fn first_parameters(
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
