//! Why an actor stops ([`ActorError`]), and how a session ends or fails.

use shoal_common::codec::CodecError;
use shoal_common::env::EnvError;
use shoal_common::normalize::NormStatsError;
use shoal_common::settings::SettingsError;
use thiserror::Error;
use tonic::{Code, Status};

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
    /// The learner's environment cannot be built as specified, or not for the learner's
    /// network (an unknown id, an observation shape the network does not read).
    #[error(transparent)]
    Env(#[from] EnvError),
    /// Parameters from the learner do not fit the model.
    #[error(transparent)]
    Params(#[from] CodecError),
    /// Normalisation statistics from the learner are unusable.
    #[error("learner sent unusable parameters: {0}")]
    NormStats(#[from] NormStatsError),
    /// The learner stayed unreachable for longer than the actor was told to wait.
    #[error("learner {learner} unreachable for {secs:.0} s; giving up: {last_error}")]
    GaveUp {
        /// The learner's URL.
        learner: String,
        /// Seconds it was unreachable.
        secs: f64,
        /// The last attempt's error.
        last_error: String,
    },
    /// The learner refused this actor for good.
    #[error("learner refused the actor: {0}")]
    Refused(String),
}

/// How a session (one connection's worth of work) ended.
#[derive(Debug)]
pub(crate) enum SessionEnd {
    /// The learner ended the run, for this reason.
    Finished(String),
    /// The actor was cancelled.
    Cancelled,
}

/// Why a session failed.
#[derive(Debug)]
pub(crate) enum SessionError {
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

impl From<ActorError> for SessionError {
    fn from(e: ActorError) -> Self {
        SessionError::Fatal(e)
    }
}
