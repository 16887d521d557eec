//! The gRPC server: the parameter service and the standard health service behind the auth
//! layer, with the transport settings both ends share (large HTTP/2 windows and frames,
//! NODELAY, keepalive pings within the actor timeout), the learner's limits (connections, auth
//! timeout, streams per connection) and TLS when configured.

use std::sync::Arc;

use shoal_common::proto::parameter_server_server::ParameterServerServer;
use shoal_common::security::Token;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic_health::server::HealthReporter;

use super::admission::Admission;
use super::connections::{Connections, fit_connection_limit, incoming};
use super::door::Door;
use super::guard::GuardLayer;
use super::limits::max_request_bytes;
use super::service::ParameterService;
use crate::error::LearnerError;
use crate::options::TlsIdentity;

/// A running server.
pub(crate) struct Server {
    /// Ends when the server stops.
    pub handle: JoinHandle<Result<(), tonic::transport::Error>>,
    /// Its open connections.
    pub connections: Arc<Connections>,
    health: HealthReporter,
}

impl Server {
    /// Serves on `listener` until `shutdown`; with `token`, every rpc must carry it.
    pub(crate) async fn start(
        door: Arc<Door>,
        algorithm: Arc<dyn Admission>,
        listener: TcpListener,
        token: Option<Token>,
        tls: Option<&TlsIdentity>,
        shutdown: CancellationToken,
    ) -> Result<Self, LearnerError> {
        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<ParameterServerServer<ParameterService>>()
            .await;
        let max_request = max_request_bytes(&door.config, &door.spec);
        // Dead connections (a partitioned actor) are noticed by keepalive pings within the
        // actor timeout.
        let keepalive = door.registry.timeout() / 2;
        let counters = door.counters.clone();
        let limits = &door.config.learner.limits;
        let connections = Connections::new(
            fit_connection_limit(limits.max_connections),
            std::time::Duration::from_secs_f64(limits.auth_timeout_secs),
            counters.clone(),
        );
        let max_streams = limits.max_streams_per_connection;
        let service = ParameterServerServer::new(ParameterService::new(door, algorithm))
            .max_decoding_message_size(max_request)
            .max_encoding_message_size(shoal_common::MAX_MESSAGE_BYTES);
        let mut builder = tonic::transport::Server::builder()
            .initial_stream_window_size(Some(shoal_common::HTTP2_WINDOW_BYTES))
            .initial_connection_window_size(Some(2 * shoal_common::HTTP2_WINDOW_BYTES))
            .max_frame_size(shoal_common::HTTP2_MAX_FRAME_BYTES)
            .http2_keepalive_interval(Some(keepalive))
            .http2_keepalive_timeout(Some(keepalive))
            .max_concurrent_streams(Some(max_streams));
        if let Some(tls) = tls {
            builder = builder.tls_config(
                tonic::transport::ServerTlsConfig::new()
                    .identity(tonic::transport::Identity::from_pem(&tls.cert, &tls.key)),
            )?;
        }
        let handle = tokio::spawn(
            builder
                .layer(GuardLayer::new(token, counters))
                .add_service(health_service)
                .add_service(service)
                .serve_with_incoming_shutdown(
                    incoming(listener, connections.clone(), shutdown.clone()),
                    async move { shutdown.cancelled().await },
                ),
        );
        Ok(Self {
            handle,
            connections,
            health,
        })
    }

    /// Tells health checks the learner no longer serves.
    pub(crate) async fn not_serving(&self) {
        self.health
            .set_not_serving::<ParameterServerServer<ParameterService>>()
            .await;
    }
}
