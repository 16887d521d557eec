//! `shoal env-server`: shoal's registered environments served over dm_env_rpc v1, so that any
//! dm_env_rpc client (DeepMind's `dm_env_adaptor`, another framework, another shoal run) can
//! create worlds of them and step them. Each world is one environment with one agent;
//! `CreateWorld` takes the settings `env` (a registered id, required), `seed` and
//! `frame_stack`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info};

use crate::env_rpc_proto::dm_env_rpc::v1::environment_server::{Environment, EnvironmentServer};
use crate::env_rpc_proto::dm_env_rpc::v1::{EnvironmentRequest, EnvironmentResponse};

use super::world::{Conversation, Worlds};

/// Most conversations (streams) served at once; more are refused with RESOURCE_EXHAUSTED.
pub const MAX_CONVERSATIONS: usize = 1024;

/// Responses a conversation may have ready before its client reads them.
const RESPONSES_AHEAD: usize = 8;

/// Largest request the server reads: an image action or settings, with room to spare.
const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Streams (conversations) one connection may hold: an actor opens one per environment copy.
const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// Keepalive pings: a client that vanished (its machine died, the network split) is noticed
/// within twice this, and its conversations end, freeing their worlds.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(10);

/// The dm_env_rpc `Environment` service over shoal's environments.
pub struct EnvServer {
    worlds: Arc<Worlds>,
    slots: Arc<Semaphore>,
    shutdown: CancellationToken,
}

impl EnvServer {
    /// A server with no worlds yet; its conversations end when `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            worlds: Arc::new(Worlds::default()),
            slots: Arc::new(Semaphore::new(MAX_CONVERSATIONS)),
            shutdown,
        }
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<EnvironmentResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Environment for EnvServer {
    type ProcessStream = ResponseStream;

    async fn process(
        &self,
        request: Request<Streaming<EnvironmentRequest>>,
    ) -> Result<Response<Self::ProcessStream>, Status> {
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "the server holds {MAX_CONVERSATIONS} conversations, its most"
            ))
        })?;
        let mut requests = request.into_inner();
        let (tx, rx) = mpsc::channel(RESPONSES_AHEAD);
        let mut conversation = Conversation::new(self.worlds.clone());
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            loop {
                let next = tokio::select! {
                    next = requests.message() => next,
                    _ = shutdown.cancelled() => break,
                };
                match next {
                    Ok(Some(request)) => {
                        // Environments step in microseconds to a few milliseconds: answering
                        // on the task keeps each conversation's order without a thread hop.
                        let response = conversation.handle(request);
                        if tx.send(Ok(response)).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(status) => {
                        debug!(error = %status, "dm_env_rpc conversation ended by the client");
                        break;
                    }
                }
            }
            conversation.close();
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Serves shoal's environments on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    if let Ok(addr) = listener.local_addr() {
        info!(address = %addr, "dm_env_rpc environment server listening");
    }
    let service = EnvironmentServer::new(EnvServer::new(shutdown.clone()))
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(crate::MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .initial_stream_window_size(Some(crate::HTTP2_WINDOW_BYTES))
        .initial_connection_window_size(Some(2 * crate::HTTP2_WINDOW_BYTES))
        .max_frame_size(crate::HTTP2_MAX_FRAME_BYTES)
        .http2_keepalive_interval(Some(KEEPALIVE))
        .http2_keepalive_timeout(Some(KEEPALIVE))
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .add_service(service)
        .serve_with_incoming_shutdown(
            // NODELAY on every accepted connection: the copies' small responses go out at once,
            // not after the client's delayed ACK (40 ms with 8 streams per connection).
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            async move { shutdown.cancelled().await },
        )
        .await
}

/// Binds `address` (port 0: any free port) and returns the listener with its bound address.
pub async fn bind(address: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}
