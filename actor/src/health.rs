//! A client of the standard gRPC health service (`grpc.health.v1.Health/Check`), as the
//! `shoal health` command, container health checks and probes use it.

use std::time::Duration;

use shoal_common::security::{BearerAuth, Token};
use tonic::Code;
use tonic::transport::Endpoint;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// The service name of the parameter server, as the health service knows it.
pub const PARAMETER_SERVER: &str = "shoal.v1.ParameterServer";

/// What a health check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// The service answers and says it is serving.
    Serving,
    /// The service answers with another status (not serving, unknown service, ...).
    NotServing(String),
    /// The learner answered but refused the call (a missing or wrong token, a bad certificate).
    Refused(String),
    /// No answer: nothing listens there, or the connection failed.
    Unreachable(String),
}

/// Asks the learner at `endpoint` whether `service` (empty: the whole server) is serving,
/// within `timeout`.
pub async fn check(
    endpoint: &Endpoint,
    token: Option<Token>,
    service: &str,
    timeout: Duration,
) -> Health {
    let call = async {
        let channel = endpoint.connect().await.map_err(|e| {
            Health::Unreachable(format!(
                "cannot connect: {}",
                crate::connection::error_chain(&e)
            ))
        })?;
        let mut client = HealthClient::with_interceptor(channel, BearerAuth::new(token));
        let reply = client
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await
            .map_err(|s| match s.code() {
                Code::NotFound => Health::NotServing(format!("unknown service `{service}`")),
                Code::Unauthenticated | Code::PermissionDenied => Health::Refused(format!(
                    "refused the credentials: {} (pass the run's token: --token-file, \
                     SHOAL_TOKEN_FILE or SHOAL_TOKEN)",
                    s.message()
                )),
                _ => Health::Unreachable(format!("{:?}: {}", s.code(), s.message())),
            })?;
        Ok::<_, Health>(reply.into_inner().status())
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(ServingStatus::Serving)) => Health::Serving,
        Ok(Ok(status)) => Health::NotServing(status.as_str_name().to_string()),
        Ok(Err(health)) => health,
        Err(_) => Health::Unreachable(format!("no answer within {timeout:?}")),
    }
}
