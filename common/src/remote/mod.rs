//! Environments over dm_env_rpc v1 ([DeepMind's protocol](https://github.com/google-deepmind/dm_env_rpc)
//! for environments served over gRPC): shoal's own environments served to any client
//! ([`server`], `shoal env-server`), and worlds served by anyone stepped as a run's environment
//! copies ([`RemoteWorlds`]).
//!
//! A run names a served environment by URL: `dm_env_rpc://HOST:PORT?SETTING=VALUE&...`. Each
//! environment copy of an actor is one world on its own stream, created with the URL's settings
//! plus `seed` (the copy's seed, derived from the run's), joined, and stepped concurrently with
//! the other copies. What crosses the process boundary per step: the action tensor one way, the
//! observation and `reward` tensors and the episode state the other (`TERMINATED` ends an
//! episode, `INTERRUPTED` truncates it).

mod announce;
mod client;
mod driver;
pub mod server;
pub mod specs;
mod tensor;
mod url;
mod world;

pub use crate::env::RemoteError;
pub use client::RemoteWorlds;
pub use specs::WorldLayout;
pub use url::{RemoteEnv, SCHEME, Setting, is_remote};

/// The world setting that carries each copy's seed.
pub const SEED_SETTING: &str = "seed";

/// Longest a client waits for any one response (a world that stops answering ends the actor
/// with a clear error instead of hanging it).
pub const RESPONSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Characters of a server's error message kept in an error (a sentence or two).
const MAX_PEER_TEXT: usize = 400;

/// Most settings a world's creation may carry.
const MAX_SETTINGS: usize = 32;
