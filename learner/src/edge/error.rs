//! Why a request was refused ([`ServiceError`]), the one place where errors become
//! `tonic::Status`, and the counter each refusal goes to.

use std::sync::atomic::AtomicU64;

use shoal_common::codec::CodecError;
use shoal_common::config::AlgorithmKind;
use shoal_common::episodes::EpisodeError;
use shoal_common::gradient::GradientError;
use shoal_common::rollout::RolloutError;
use shoal_common::stats::StatsError;
use shoal_common::transition::TransitionError;
use thiserror::Error;
use tonic::Status;

use super::registry::StreamLimit;

use crate::telemetry::EdgeCounters;

/// Why a request was refused.
#[derive(Debug, Error)]
pub enum ServiceError {
    /// The actor speaks another protocol version.
    #[error(
        "protocol version {got} is not supported (this learner speaks {want}); upgrade the actor"
    )]
    Protocol {
        /// Sent.
        got: i32,
        /// Ours.
        want: i32,
    },
    /// The actor id was never handed out (or the learner restarted).
    #[error("unknown actor id {0}; register first")]
    UnknownActor(u32),
    /// The caller builds a different model.
    #[error(transparent)]
    Fingerprint(#[from] CodecError),
    /// A malformed rollout.
    #[error(transparent)]
    Rollout(#[from] RolloutError),
    /// A malformed gradient.
    #[error(transparent)]
    Gradient(#[from] GradientError),
    /// A malformed transition batch.
    #[error(transparent)]
    Transitions(#[from] TransitionError),
    /// Episodes the environment or the steps pushed cannot account for.
    #[error("episode statistics: {0}")]
    Episodes(#[from] EpisodeError),
    /// An implausible actor report.
    #[error(transparent)]
    ActorStats(#[from] StatsError),
    /// The rpc belongs to another algorithm than the run's.
    #[error("this run trains with {run:?}; {rpc} is not part of it")]
    WrongAlgorithm {
        /// The run's algorithm.
        run: AlgorithmKind,
        /// The rpc called.
        rpc: &'static str,
    },
    /// The actor states that it runs something else than the run.
    #[error("this run's {what} is `{run}`; the actor runs `{actor}`")]
    Mismatch {
        /// What differs: environment, environment count, model fingerprint.
        what: &'static str,
        /// The run's.
        run: String,
        /// The actor's (bounded: it is the client's).
        actor: String,
    },
    /// A stream limit was reached.
    #[error("{0}; close a stream or retry later")]
    TooManyStreams(#[from] StreamLimit),
    /// A version the learner never published.
    #[error("rollout claims parameter version {got}, newest published is {latest}")]
    FutureVersion {
        /// Claimed.
        got: u64,
        /// Newest.
        latest: u64,
    },
    /// The trainer's queue is full: back off and retry.
    #[error("learner queue is full ({0} items); retry later")]
    QueueFull(usize),
    /// The learner is stopping.
    #[error("learner is shutting down")]
    ShuttingDown,
    /// Every actor id has been handed out.
    #[error("every actor id of this run has been handed out")]
    IdsExhausted,
    /// The request did not carry the run's token.
    #[error("missing or wrong token: send `authorization: Bearer <token>` (SHOAL_TOKEN)")]
    Unauthenticated,
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        let msg = e.to_string();
        match e {
            ServiceError::Protocol { .. }
            | ServiceError::Fingerprint(_)
            | ServiceError::WrongAlgorithm { .. }
            | ServiceError::Mismatch { .. } => Status::failed_precondition(msg),
            ServiceError::UnknownActor(_) => Status::not_found(msg),
            ServiceError::Rollout(_)
            | ServiceError::Gradient(_)
            | ServiceError::Transitions(_)
            | ServiceError::ActorStats(_)
            | ServiceError::Episodes(_)
            | ServiceError::FutureVersion { .. } => Status::invalid_argument(msg),
            ServiceError::QueueFull(_) => Status::resource_exhausted(msg),
            ServiceError::ShuttingDown => Status::unavailable(msg),
            ServiceError::IdsExhausted | ServiceError::TooManyStreams(_) => {
                Status::resource_exhausted(msg)
            }
            ServiceError::Unauthenticated => Status::unauthenticated(msg),
        }
    }
}

impl ServiceError {
    /// The counter a refusal goes to; `None` for those counted elsewhere (malformed experience
    /// is counted where it is validated) or not refusals of the client (a full queue, a
    /// learner shutting down).
    pub fn counter<'c>(&self, c: &'c EdgeCounters) -> Option<&'c AtomicU64> {
        Some(match self {
            ServiceError::Protocol { .. } => &c.refused_protocol,
            ServiceError::UnknownActor(_) => &c.refused_unknown_actor,
            ServiceError::Fingerprint(_) => &c.refused_fingerprint,
            ServiceError::WrongAlgorithm { .. } => &c.refused_wrong_algorithm,
            ServiceError::Mismatch { .. } => &c.refused_environment,
            ServiceError::TooManyStreams(_) => &c.refused_streams,
            ServiceError::FutureVersion { .. } => &c.refused_future_version,
            ServiceError::Unauthenticated => &c.refused_unauthenticated,
            ServiceError::QueueFull(_)
            | ServiceError::ShuttingDown
            | ServiceError::IdsExhausted
            | ServiceError::Rollout(_)
            | ServiceError::Gradient(_)
            | ServiceError::Transitions(_)
            | ServiceError::ActorStats(_)
            | ServiceError::Episodes(_) => return None,
        })
    }
}
