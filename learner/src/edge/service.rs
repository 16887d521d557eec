//! The tonic handlers of `shoal.v1.ParameterServer`: registration and parameter fetches here,
//! pushes delegated to the run's algorithm ([`Admission`]); every refusal goes
//! through [`Door::refuse`].

use std::sync::Arc;

use shoal_common::proto::{self, parameter_server_server::ParameterServer};
use shoal_common::rng::{derive_seed, streams};
use shoal_common::settings::{PROTOCOL_VERSION, model_spec_to_proto, normalize_to_proto};
use tonic::{Request, Response, Status};
use tracing::info;

use super::admission::Admission;
use super::door::Door;
use super::error::ServiceError;
use super::guard::Peer;
use super::stream::{UpdateStream, subscribe};
use crate::telemetry::edge_counters::bump;

/// The tonic service.
#[derive(Clone)]
pub struct ParameterService {
    door: Arc<Door>,
    algorithm: Arc<dyn Admission>,
}

impl ParameterService {
    /// A service admitting pushes with `algorithm` through `door`.
    pub(crate) fn new(door: Arc<Door>, algorithm: Arc<dyn Admission>) -> Self {
        Self { door, algorithm }
    }

    fn register(
        &self,
        req: proto::RegisterRequest,
        peer: Peer,
    ) -> Result<proto::RegisterResponse, ServiceError> {
        let door = &self.door;
        if req.protocol_version != PROTOCOL_VERSION as i32 {
            return Err(ServiceError::Protocol {
                got: req.protocol_version,
                want: PROTOCOL_VERSION as i32,
            });
        }
        if door.shutdown.is_cancelled() {
            return Err(ServiceError::ShuttingDown);
        }
        door.check_states(&req)?;
        let previous = req
            .previous_actor_id
            .map(|id| (id, &req.previous_actor_secret[..]));
        // The name is the client's: kept (and logged, and a metric label) bounded.
        let name = shoal_common::text::bounded(&req.name);
        let (actor_id, actor_secret) = door
            .registry
            .register(&name, previous)
            .ok_or(ServiceError::IdsExhausted)?;
        bump(&door.counters.registrations);
        info!(actor_id, name, %peer, "actor registered");
        let c = &door.config;
        let mut settings = proto::RunSettings {
            env_id: c.env_id.clone(),
            frame_stack: c.frame_stack as u32,
            num_envs: c.num_envs as u32,
            n_steps: c.n_steps as u32,
            seed: derive_seed(c.seed, streams::ACTOR_BASE + actor_id as u64),
            param_wait_ms: c.learner.param_wait_ms,
            deterministic: c.deterministic,
            normalization: Some(normalize_to_proto(&c.normalize_settings())),
            engine: c.learner.engine.name().into(),
            ..proto::RunSettings::default()
        };
        self.algorithm
            .actor_settings(actor_id)
            .write_proto(&mut settings);
        Ok(proto::RegisterResponse {
            actor_id,
            settings: Some(settings),
            model: Some(model_spec_to_proto(&door.spec)),
            model_fingerprint: door.fingerprint.clone(),
            actor_secret: actor_secret.into(),
        })
    }
}

/// `Ok(Response)`, or the refusal counted and turned into its status.
fn respond<T>(door: &Door, result: Result<T, ServiceError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(|e| door.refuse(e))
}

#[tonic::async_trait]
impl ParameterServer for ParameterService {
    async fn register(
        &self,
        request: Request<proto::RegisterRequest>,
    ) -> Result<Response<proto::RegisterResponse>, Status> {
        let peer = request
            .extensions()
            .get::<Peer>()
            .copied()
            .unwrap_or(Peer(None));
        respond(&self.door, self.register(request.into_inner(), peer))
    }

    async fn get_parameters(
        &self,
        request: Request<proto::GetParametersRequest>,
    ) -> Result<Response<proto::GetParametersResponse>, Status> {
        let req = request.into_inner();
        let door = &self.door;
        let reply = door
            .check_actor(req.actor_id, &req.model_fingerprint)
            .map(|()| {
                let snap = door.params.latest();
                proto::GetParametersResponse {
                    latest_version: snap.version,
                    parameters: (req.have_version != snap.version)
                        .then(|| door.parameters_message(&snap)),
                }
            });
        respond(door, reply)
    }

    type SubscribeParametersStream = UpdateStream;

    async fn subscribe_parameters(
        &self,
        request: Request<proto::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeParametersStream>, Status> {
        let req = request.into_inner();
        let checked = self
            .door
            .check_actor(req.actor_id, &req.model_fingerprint)
            .and_then(|()| subscribe(self.door.clone(), req.actor_id));
        respond(&self.door, checked)
    }

    async fn push_rollout(
        &self,
        request: Request<proto::Rollout>,
    ) -> Result<Response<proto::PushAck>, Status> {
        let ack = self
            .algorithm
            .push_rollout(&self.door, request.into_inner());
        respond(&self.door, ack)
    }

    async fn push_gradient(
        &self,
        request: Request<proto::Gradient>,
    ) -> Result<Response<proto::GradientAck>, Status> {
        let ack = self
            .algorithm
            .push_gradient(&self.door, request.into_inner());
        respond(&self.door, ack)
    }

    async fn push_transitions(
        &self,
        request: Request<proto::TransitionBatch>,
    ) -> Result<Response<proto::TransitionAck>, Status> {
        let ack = self
            .algorithm
            .push_transitions(&self.door, request.into_inner());
        respond(&self.door, ack)
    }
}
