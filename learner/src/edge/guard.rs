//! The layer in front of every service the learner serves (the parameter server and the
//! standard gRPC health service): it refuses requests without the run's token before any
//! handler or decoder sees them, and counts the refusals the transport makes on its own
//! (messages over the size limit, bytes that are not protobuf), which no handler sees. Its log
//! lines are rate-limited like every refusal's, and the client's rpc path is logged bounded: a
//! flood of bad requests cannot flood the log.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use shoal_common::security::Token;
use tonic::Status;
use tower::{Layer, Service};
use tracing::warn;

use super::connections::ConnInfo;
use super::door::RefusalLog;
use super::error::ServiceError;
use crate::telemetry::EdgeCounters;
use crate::telemetry::edge_counters::bump;

/// Wraps services in [`Guard`].
#[derive(Clone)]
pub struct GuardLayer {
    token: Option<Arc<Token>>,
    counters: Arc<EdgeCounters>,
    log: Arc<RefusalLog>,
}

impl GuardLayer {
    /// Requires `token` (none: every request passes) and counts refusals into `counters`.
    pub fn new(token: Option<Token>, counters: Arc<EdgeCounters>) -> Self {
        Self {
            token: token.map(Arc::new),
            counters,
            log: Arc::default(),
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Guard {
            inner,
            token: self.token.clone(),
            counters: self.counters.clone(),
            log: self.log.clone(),
        }
    }
}

/// See the module docs.
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    token: Option<Arc<Token>>,
    counters: Arc<EdgeCounters>,
    log: Arc<RefusalLog>,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// The caller's address, as the accept loop recorded it; handlers find it in the request's
/// extensions. Formatted only when logged.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<std::net::SocketAddr>);

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}

impl<S, B> Service<http::Request<B>> for Guard<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let conn = ConnInfo::of(req.extensions()).cloned();
        let peer = Peer(conn.as_ref().and_then(|c| c.remote));
        if let Some(token) = &self.token {
            let authorized = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .is_some_and(|v| token.accepts(v.as_bytes()));
            if !authorized {
                bump(&self.counters.refused_unauthenticated);
                if let Some(suppressed) = self.log.allow() {
                    warn!(
                        rpc = shoal_common::text::bounded(req.uri().path()),
                        %peer,
                        sent_authorization =
                            req.headers().contains_key(http::header::AUTHORIZATION),
                        suppressed,
                        "request refused: missing or wrong token"
                    );
                }
                let status: Status = ServiceError::Unauthenticated.into();
                return Box::pin(async move { Ok(status.into_http()) });
            }
        }
        // Authenticated (or no token is required): the connection is no longer closed by the
        // auth timeout nor displaced at the connection limit.
        if let Some(conn) = conn {
            conn.authenticated();
        }
        req.extensions_mut().insert(peer);
        // The service that was polled ready serves this call; its clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let counters = self.counters.clone();
        let log = self.log.clone();
        // Kept as it came (a cheap clone), bounded only if it is logged.
        let uri = req.uri().clone();
        Box::pin(async move {
            let response = inner.call(req).await?;
            // A refusal before the handler ran comes back as a trailers-only response: its
            // status is in the headers. Handlers never answer OUT_OF_RANGE or INTERNAL.
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok())
                .map(tonic::Code::from);
            let counter = match code {
                Some(tonic::Code::OutOfRange) => Some(&counters.refused_oversized),
                Some(tonic::Code::Internal) => Some(&counters.refused_undecodable),
                _ => None,
            };
            if let Some(counter) = counter {
                bump(counter);
                if let Some(suppressed) = log.allow() {
                    warn!(
                        rpc = shoal_common::text::bounded(uri.path()),
                        %peer,
                        code = ?code,
                        suppressed,
                        "request refused by the transport"
                    );
                }
            }
            Ok(response)
        })
    }
}
