//! The shoal learner: owns the global network and its optimizer, trains it with the run's
//! algorithm and serves the gRPC parameter server.
//!
//! # Layout
//! - [`run`](mod@run): the learner process: wiring, start-up and shutdown.
//! - [`algo`]: the algorithm seam (admission + training) and one folder per algorithm.
//! - [`trainer`]: the trainer thread's loop, the same for every algorithm.
//! - [`edge`]: the gRPC edge: handlers, auth, actor registry, parameter streams, errors.
//! - [`params`]: versioned, immutable parameter snapshots (publish = swap an `Arc`).
//! - [`telemetry`]: the typed status row and its sinks (log, metrics files, Prometheus).
//! - [`checkpoint`]: typed checkpoints, written atomically, read back (also older formats).
//! - [`run_dir`]: the run directory: config, metrics files, TensorBoard events.
//! - [`pretrain`]: the supervised warm start of text policies (`shoal pretrain`).
//! - [`device`]: run-time choice between wgpu (a real GPU) and flex (CPU).
//! - [`summary`], [`options`], [`error`]: what a run reports, is started with, fails with.
//! - [`cli`]: command-line arguments and their resolution into options.
//!
//! Imports run one way, without cycles: `run` → `algo` → `trainer` → `edge` → {`run_dir`,
//! `params`, `options`, `summary`} → `error` → {`checkpoint`, `device`} → `telemetry`.

pub mod algo;
pub mod checkpoint;
pub mod cli;
pub mod device;
pub mod edge;
pub mod error;
pub mod options;
pub mod params;
pub mod pretrain;
pub mod run;
pub mod run_dir;
pub mod summary;
pub mod telemetry;
pub mod trainer;

pub use error::LearnerError;
pub use options::{LearnerOptions, StatusHook, TlsIdentity};
pub use run::{RunningLearner, model_spec, run, start};
pub use summary::RunSummary;
