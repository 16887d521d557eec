//! Shared pieces of shoal: the protocol, domain types, environments, the model and its
//! parameter codec, and the run configuration.
//!
//! # Layout
//! - [`proto`]: code generated from `proto/shoal/v1/shoal.proto` (the documented contract), and
//!   [`env_rpc_proto`] from `proto/dm_env_rpc/v1/dm_env_rpc.proto`. The only place generated code
//!   lives; everything else converts to domain types at the boundary.
//! - [`mod@env`]: the [`env::Env`] trait, the registry by Gymnasium id, CartPole and the other
//!   environments (image games and frame stacking among them), [`env::VecEnv`].
//! - [`remote`]: environments over dm_env_rpc v1: shoal's served (`shoal env-server`), and
//!   served worlds as a run's environment copies.
//! - [`sources`]: where a run's environment copies come from (the registry or a server).
//! - [`obs`]: observations in host memory and on the wire (`f32` vectors, `u8` images).
//! - [`model`]: the actor-critic network, its [`model::ModelSpec`], initialisation and action
//!   distributions.
//! - [`episodes`]: what an actor may claim about the episodes it finished (time limit,
//!   reward bounds, steps pushed).
//! - [`evaluate`]: deterministic evaluation episodes (DQN's evaluator, `shoal eval`).
//! - [`codec`]: parameters as little-endian `f32` bytes, layouts and fingerprints.
//! - [`returns`]: GAE and n-step returns as pure functions, and the `[T, N]` column helpers.
//! - [`vtrace`]: V-trace targets and advantages (IMPALA) as a pure function.
//! - [`objective`]: the actor-critic objectives (PPO, APPO, IMPALA, A3C) and their gradients
//!   at the heads, as pure functions.
//! - [`kl_leash`]: the per-step KL penalty against a reference policy and its adaptive β.
//! - [`rollout`]: the rollout domain type and its validation (PPO, IMPALA, and A3C's actor
//!   side).
//! - [`gradient`]: the pushed-gradient domain type and its validation (A3C).
//! - [`transition`]: the n-step transition batch and its validation (DQN).
//! - [`exploration`]: DQN actors' ε (Ape-X per actor, or one linear schedule).
//! - [`normalize`]: observation/return statistics, their merge, and the normalisation actors
//!   apply.
//! - [`settings`]: what an actor receives at registration, as domain types.
//! - [`stats`]: what an actor reports about itself (speed, episodes, inference time).
//! - [`security`]: the shared token (bearer metadata, constant-time check) and TLS files.
//! - [`config`]: the run configuration (TOML), one module per section, with the ranges the
//!   wire checks share.
//! - [`rng`]: deterministic randomness and seed derivation.
//! - [`logging`]: tracing set-up shared by the binaries (`RUST_LOG`, text or JSON).

pub mod codec;
pub mod config;
pub mod env;
pub mod episodes;
pub mod evaluate;
pub mod exploration;
pub mod gradient;
pub mod kl_leash;
pub mod logging;
pub mod model;
pub mod normalize;
pub mod objective;
pub mod obs;
pub mod remote;
pub mod returns;
pub mod rng;
pub mod rollout;
pub mod security;
pub mod settings;
pub mod sources;
pub mod stats;
pub mod text;
pub mod transition;
pub mod vtrace;

/// Generated protocol types, client and server (`shoal.v1`).
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod proto {
    tonic::include_proto!("shoal.v1");
}

/// Generated dm_env_rpc v1 types, client and server (`dm_env_rpc.v1`, with the
/// `google.rpc.Status` its errors carry); [`remote`] converts them to shoal's types.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod env_rpc_proto {
    /// `dm_env_rpc`.
    pub mod dm_env_rpc {
        /// `dm_env_rpc.v1`.
        pub mod v1 {
            tonic::include_proto!("dm_env_rpc.v1");
        }
    }
    /// `google.rpc`.
    pub mod google {
        /// `google.rpc`.
        pub mod rpc {
            tonic::include_proto!("google.rpc");
        }
    }
    /// The compiled descriptor set of every `.proto` in the repository (`FileDescriptorSet`),
    /// for tests that compare the definitions with other implementations'.
    pub const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));
}

/// Largest gRPC message either side accepts or sends: 256 MiB, room for ~64M `f32` parameters
/// (tonic's default of 4 MiB would cap models at ~1M parameters).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// HTTP/2 flow-control window per stream on both ends (connections get twice this). hyper's
/// default is 64 KiB, less than two parameter versions of a 10k-parameter model, so a version
/// could wait for a window update before it reached an actor.
pub const HTTP2_WINDOW_BYTES: u32 = 8 * 1024 * 1024;

/// Largest HTTP/2 frame either end accepts: 1 MiB instead of the protocol's 16 KiB default, so a
/// gradient or a parameter version of a ~10k-parameter model (~37 KB) crosses in one frame
/// instead of three.
pub const HTTP2_MAX_FRAME_BYTES: u32 = 1024 * 1024;
