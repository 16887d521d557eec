//! The gRPC edge: everything between the network and the trainer's queue. Handlers validate
//! everything from the network and never touch tensors.
//!
//! - `server`: the tonic server (transport settings, TLS, health) behind [`guard`].
//! - [`connections`]: the accept loop and the open connections (cap, auth timeout, closing).
//! - [`guard`]: the auth layer in front of every rpc, and transport-level refusal counts.
//! - [`service`]: the rpc handlers; pushes are delegated to the run's algorithm.
//! - [`admission`]: what the handlers delegate pushes to (each algorithm implements it).
//! - [`door`]: the checks every push shares, and the bounded queue into the trainer.
//! - [`registry`]: the known actors, their subscriptions and last calls.
//! - [`stream`]: one subscriber's parameter stream.
//! - [`error`]: why a request was refused, and the one mapping to `tonic::Status`.
//! - [`limits`]: the request size limit.

pub mod actor_ids;
pub mod admission;
pub mod connections;
pub mod door;
pub mod error;
pub mod guard;
pub mod limits;
pub mod registry;
pub(crate) mod server;
pub mod service;
pub mod stream;

pub use admission::Admission;
pub use door::Door;
pub use error::ServiceError;
pub use limits::max_request_bytes;
pub use registry::ActorRegistry;
