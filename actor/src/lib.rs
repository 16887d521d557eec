//! The shoal actor: connects to a learner, receives its settings and parameters, steps
//! `num_envs` environments with batched inference on a local flex copy of the policy, and
//! feeds the learner what the run's algorithm needs.
//!
//! # Layout
//! - [`session`]: the actor's life: register, run the algorithm's session, reconnect.
//! - [`algo`]: the algorithm seam and one module per algorithm (PPO, A3C, DQN), each a
//!   worker and its session loop.
//! - [`summary`]: what an actor did, and the report its pushes carry.
//! - [`connection`]: transport and TLS settings, the client, retries on a full queue.
//! - [`worker`]: rollout collection (environments + sampling), free of networking.
//! - [`policy`]: the detached inference copy of the network.
//! - [`backoff`]: capped exponential backoff with jitter.
//! - [`health`]: a client of the standard gRPC health service (`shoal health`).
//! - [`error`]: why an actor stops.
//! - [`cli`]: command-line arguments.
//!
//! A lost learner means reconnecting with backoff; the environments carry on where they were.

pub mod algo;
pub mod backoff;
pub mod cli;
pub mod connection;
pub mod error;
pub mod health;
pub mod policy;
pub mod session;
pub mod summary;
pub mod worker;

pub use connection::{Client, connect, endpoint, error_chain, runtime, secure_endpoint};
pub use error::ActorError;
pub use session::{ActorOptions, run};
pub use summary::ActorSummary;
