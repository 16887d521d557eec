//! shoal's one compute seam, used by the learner and the actors alike: a model engine over the
//! flat parameter vector and its layout.
//!
//! # Layout
//! - [`engine`]: the seam ([`Inference`], [`Training`]) and the one place that chooses an
//!   engine ([`Engine::choose`]).
//! - [`kernels`]: the host kernels, every layer forward and backward on host slices.
//! - [`host`]: the host engine, the model computed by those kernels, split over threads.
//! - [`burn_engine`]: the burn engine, on any burn device (wgpu for GPUs); the reference.
//! - [`optim`]: Adam and RMSProp on the flat vector, their state in burn's file format.
//! - [`testing`]: seeded models, observations and parameters for tests on the seam.

pub mod burn_engine;
pub mod engine;
pub mod host;
pub mod kernels;
pub mod optim;
pub mod testing;

pub use engine::{
    Engine, EngineError, HeadGrads, Heads, Inference, Optimizer, Rows, Snapshot, Training, Want,
};
