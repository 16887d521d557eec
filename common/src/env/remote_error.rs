//! What can go wrong with an environment served over dm_env_rpc ([`RemoteError`]): defined
//! here, beside [`super::EnvError`] which carries it, so that the environment module needs
//! nothing from the dm_env_rpc client.

use thiserror::Error;

/// What went wrong with a served environment.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RemoteError {
    /// A URL that cannot name a served environment.
    #[error("`{url}` is not a dm_env_rpc environment URL: {why}")]
    Url {
        /// The URL given.
        url: String,
        /// Why.
        why: String,
    },
    /// The server could not be reached.
    #[error("cannot reach the environment server at {address}: {why}")]
    Connect {
        /// `host:port`.
        address: String,
        /// The transport's reason.
        why: String,
    },
    /// A spec shoal cannot train on.
    #[error("spec `{name}`: {why}")]
    Spec {
        /// The tensor's name.
        name: String,
        /// Why.
        why: String,
    },
    /// A tensor that does not match its spec (or is not a number shoal can use).
    #[error("tensor `{name}`: {why}")]
    Tensor {
        /// The tensor's name.
        name: String,
        /// Why.
        why: String,
    },
    /// The server answered a request with an error.
    #[error("the server refused {request}: {message} (code {code})")]
    Refused {
        /// Which request.
        request: &'static str,
        /// The gRPC status code it sent.
        code: i32,
        /// Its message (bounded).
        message: String,
    },
    /// A response that breaks the protocol (the wrong kind, a missing observation, an invalid
    /// state).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The stream ended or failed.
    #[error("the connection to the environment server was lost: {0}")]
    Lost(String),
    /// No response within [`crate::remote::RESPONSE_TIMEOUT`].
    #[error("the environment server did not answer {request} within {secs} s")]
    Timeout {
        /// Which request.
        request: &'static str,
        /// The limit.
        secs: u64,
    },
}
