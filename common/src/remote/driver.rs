//! The driver thread's side of [`super::client::RemoteWorlds`]: the async work on the worlds'
//! streams. It connects, creates and joins one world per copy, sends each step's requests to
//! every world before awaiting any answer, and leaves and destroys the worlds when the copies
//! are dropped.

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint};

use crate::env_rpc_proto::dm_env_rpc::v1::{
    self as rpc, EnvironmentRequest, EnvironmentResponse, environment_client::EnvironmentClient,
    environment_request::Payload as Req, environment_response::Payload as Resp,
};
use crate::rng::derive_seed;

use super::client::Command;
use super::specs::WorldLayout;
use super::{RESPONSE_TIMEOUT, RemoteEnv, RemoteError};

/// One world's stream: requests in, responses out, one for one.
struct Conversation {
    requests: mpsc::Sender<EnvironmentRequest>,
    responses: Streaming<EnvironmentResponse>,
}

impl Conversation {
    async fn open(
        client: &mut EnvironmentClient<Channel>,
        first: Req,
    ) -> Result<Self, RemoteError> {
        let (requests, rx) = mpsc::channel(4);
        // The first request goes in before the call: some servers send their headers only with
        // the first response.
        requests
            .send(EnvironmentRequest {
                payload: Some(first),
            })
            .await
            .map_err(|_| RemoteError::Lost("request stream closed".into()))?;
        let responses =
            tokio::time::timeout(RESPONSE_TIMEOUT, client.process(ReceiverStream::new(rx)))
                .await
                .map_err(|_| RemoteError::Timeout {
                    request: "the stream",
                    secs: RESPONSE_TIMEOUT.as_secs(),
                })?
                .map_err(|s| RemoteError::Lost(format!("{}: {}", s.code(), s.message())))?
                .into_inner();
        Ok(Self {
            requests,
            responses,
        })
    }

    async fn send(&mut self, payload: Req) -> Result<(), RemoteError> {
        self.requests
            .send(EnvironmentRequest {
                payload: Some(payload),
            })
            .await
            .map_err(|_| RemoteError::Lost("request stream closed".into()))
    }

    async fn receive(&mut self, request: &'static str) -> Result<Resp, RemoteError> {
        let message = tokio::time::timeout(RESPONSE_TIMEOUT, self.responses.message())
            .await
            .map_err(|_| RemoteError::Timeout {
                request,
                secs: RESPONSE_TIMEOUT.as_secs(),
            })?
            .map_err(|s| RemoteError::Lost(format!("{}: {}", s.code(), s.message())))?
            .ok_or_else(|| RemoteError::Lost("the server closed the stream".into()))?;
        match message.payload {
            Some(Resp::Error(status)) => Err(RemoteError::Refused {
                request,
                code: status.code,
                message: crate::text::bounded_to(&status.message, super::MAX_PEER_TEXT),
            }),
            Some(payload) => Ok(payload),
            None => Err(RemoteError::Protocol(format!(
                "an empty response to {request}"
            ))),
        }
    }
}

fn unexpected(request: &str, got: &Resp) -> RemoteError {
    let kind = match got {
        Resp::CreateWorld(_) => "CreateWorld",
        Resp::JoinWorld(_) => "JoinWorld",
        Resp::Step(_) => "Step",
        Resp::Reset(_) => "Reset",
        Resp::ResetWorld(_) => "ResetWorld",
        Resp::LeaveWorld(_) => "LeaveWorld",
        Resp::DestroyWorld(_) => "DestroyWorld",
        Resp::Extension(_) => "Extension",
        Resp::Error(_) => "Error",
    };
    RemoteError::Protocol(format!("a {kind} response to {request}"))
}

/// A created and joined world.
struct Joined {
    conversation: Conversation,
    name: String,
}

async fn open_world(
    client: &mut EnvironmentClient<Channel>,
    env: &RemoteEnv,
    seed: u64,
) -> Result<(Joined, rpc::ActionObservationSpecs), RemoteError> {
    let mut conversation = Conversation::open(
        client,
        Req::CreateWorld(rpc::CreateWorldRequest {
            settings: env.world_settings(seed),
        }),
    )
    .await?;
    let name = match conversation.receive("CreateWorld").await? {
        Resp::CreateWorld(r) => r.world_name,
        other => return Err(unexpected("CreateWorld", &other)),
    };
    conversation
        .send(Req::JoinWorld(rpc::JoinWorldRequest {
            world_name: name.clone(),
            settings: HashMap::new(),
        }))
        .await?;
    let specs = match conversation.receive("JoinWorld").await? {
        Resp::JoinWorld(r) => r
            .specs
            .ok_or_else(|| RemoteError::Protocol("JoinWorld sent no specs".into()))?,
        other => return Err(unexpected("JoinWorld", &other)),
    };
    Ok((Joined { conversation, name }, specs))
}

/// The driver thread's work: open the worlds, report the layout, then answer step commands
/// until the copies are dropped; then leave and destroy the worlds.
pub(super) async fn drive(
    env: RemoteEnv,
    num_envs: usize,
    seed: u64,
    ready: std_mpsc::Sender<Result<WorldLayout, RemoteError>>,
    mut commands: mpsc::Receiver<Command>,
    replies: std_mpsc::Sender<Result<Vec<Option<rpc::StepResponse>>, RemoteError>>,
) {
    let worlds = match open_worlds(&env, num_envs, seed).await {
        Ok((worlds, layout)) => {
            if ready.send(Ok(layout)).is_err() {
                return;
            }
            worlds
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut worlds = worlds;
    while let Some(Command::Step(requests)) = commands.recv().await {
        let reply = step_worlds(&mut worlds, requests).await;
        let failed = reply.is_err();
        if replies.send(reply).is_err() || failed {
            break;
        }
    }
    // Best effort, all at once, within one bound: a server that is gone needs no goodbye (and
    // destroys a stream's worlds when the stream ends anyway).
    let mut goodbyes = tokio::task::JoinSet::new();
    for mut world in worlds {
        goodbyes.spawn(async move {
            world
                .conversation
                .send(Req::LeaveWorld(rpc::LeaveWorldRequest {}))
                .await?;
            world.conversation.receive("LeaveWorld").await?;
            world
                .conversation
                .send(Req::DestroyWorld(rpc::DestroyWorldRequest {
                    world_name: world.name.clone(),
                }))
                .await?;
            world.conversation.receive("DestroyWorld").await
        });
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while goodbyes.join_next().await.is_some() {}
    })
    .await;
}

async fn open_worlds(
    env: &RemoteEnv,
    num_envs: usize,
    seed: u64,
) -> Result<(Vec<Joined>, WorldLayout), RemoteError> {
    let connect_error = |why: String| RemoteError::Connect {
        address: env.address.clone(),
        why,
    };
    let endpoint = Endpoint::from_shared(format!("http://{}", env.address))
        .map_err(|e| connect_error(e.to_string()))?
        .connect_timeout(std::time::Duration::from_secs(5))
        .tcp_nodelay(true)
        .initial_stream_window_size(Some(crate::HTTP2_WINDOW_BYTES))
        .initial_connection_window_size(Some(2 * crate::HTTP2_WINDOW_BYTES));
    let channel = endpoint.connect().await.map_err(|e| {
        connect_error(crate::text::bounded_to(
            &crate::logging::error_chain(&e),
            super::MAX_PEER_TEXT,
        ))
    })?;
    let mut client = EnvironmentClient::new(channel)
        .max_decoding_message_size(crate::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(crate::MAX_MESSAGE_BYTES);
    let mut worlds = Vec::with_capacity(num_envs);
    let mut first: Option<rpc::ActionObservationSpecs> = None;
    for i in 0..num_envs {
        let (world, specs) = open_world(&mut client, env, derive_seed(seed, i as u64)).await?;
        match &first {
            None => first = Some(specs),
            Some(f) if *f != specs => {
                return Err(RemoteError::Protocol(format!(
                    "world {i} announced other specs than world 0"
                )));
            }
            Some(_) => {}
        }
        worlds.push(world);
    }
    let specs = first.ok_or_else(|| RemoteError::Protocol("no worlds asked for".into()))?;
    Ok((worlds, WorldLayout::read(&specs)?))
}

async fn step_worlds(
    worlds: &mut [Joined],
    requests: Vec<Option<rpc::StepRequest>>,
) -> Result<Vec<Option<rpc::StepResponse>>, RemoteError> {
    // Every request goes out before any response is awaited: the worlds step concurrently.
    let mut sent = Vec::with_capacity(worlds.len());
    for (world, request) in worlds.iter_mut().zip(requests) {
        sent.push(request.is_some());
        if let Some(r) = request {
            world.conversation.send(Req::Step(r)).await?;
        }
    }
    let mut responses = Vec::with_capacity(worlds.len());
    for (world, sent) in worlds.iter_mut().zip(sent) {
        responses.push(if sent {
            match world.conversation.receive("Step").await? {
                Resp::Step(r) => Some(r),
                other => return Err(unexpected("Step", &other)),
            }
        } else {
            None
        });
    }
    Ok(responses)
}
