//! What the handlers delegate pushes to: the admission side of the run's algorithm, which
//! validates a push against the run, decides staleness or lag, queues what its trainer needs
//! and builds the ack (each algorithm implements it in `crate::algo`).

use shoal_common::config::AlgorithmKind;
use shoal_common::proto;
use shoal_common::settings::AlgorithmSettings;

use super::door::Door;
use super::error::ServiceError;

/// The admission side of an algorithm: called by the gRPC handlers, never touches tensors.
/// A push this algorithm does not take is refused as another algorithm's.
pub trait Admission: Send + Sync + 'static {
    /// Which algorithm.
    fn kind(&self) -> AlgorithmKind;

    /// What a registering actor (id `actor_id`) is told about the algorithm.
    fn actor_settings(&self, actor_id: u32) -> AlgorithmSettings;

    /// `PushRollout`.
    fn push_rollout(
        &self,
        _door: &Door,
        _msg: proto::Rollout,
    ) -> Result<proto::PushAck, ServiceError> {
        Err(self.not_ours("PushRollout"))
    }

    /// `PushGradient`.
    fn push_gradient(
        &self,
        _door: &Door,
        _msg: proto::Gradient,
    ) -> Result<proto::GradientAck, ServiceError> {
        Err(self.not_ours("PushGradient"))
    }

    /// `PushTransitions`.
    fn push_transitions(
        &self,
        _door: &Door,
        _msg: proto::TransitionBatch,
    ) -> Result<proto::TransitionAck, ServiceError> {
        Err(self.not_ours("PushTransitions"))
    }

    /// The refusal of another algorithm's rpc.
    fn not_ours(&self, rpc: &'static str) -> ServiceError {
        ServiceError::WrongAlgorithm {
            run: self.kind(),
            rpc,
        }
    }
}
