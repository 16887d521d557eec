//! Why the learner could not run ([`LearnerError`]).

use std::path::PathBuf;

use shoal_common::config::ConfigError;
use shoal_common::security::SecurityError;
use thiserror::Error;

use crate::checkpoint::CheckpointError;
use crate::device::DeviceError;

/// Why the learner could not run.
#[derive(Debug, Error)]
pub enum LearnerError {
    /// The run config is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The environment's spaces are not supported yet.
    #[error("environment {env_id}: {what} is not supported in this version")]
    Unsupported {
        /// The environment.
        env_id: String,
        /// What is missing.
        what: String,
    },
    /// No training device.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The run directory could not be written or read.
    #[error("run directory {path}: {source}")]
    RunDir {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Command-line arguments that do not fit together.
    #[error("{0}")]
    Usage(String),
    /// A new run was asked for in a directory that holds a run.
    #[error(
        "run directory {} already holds a run: continue it with `--resume {}`, start a new \
         one elsewhere (--run-dir, --name, or none for a fresh default name), or replace it \
         with --overwrite",
        .0.display(),
        .0.display()
    )]
    RunDirTaken(PathBuf),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The token or TLS files are unusable.
    #[error(transparent)]
    Security(#[from] SecurityError),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Server(#[from] tonic::transport::Error),
    /// The Prometheus endpoint could not listen.
    #[error("metrics endpoint: cannot listen on {addr}: {source}")]
    MetricsListen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The trainer thread panicked.
    #[error("trainer thread panicked: {0}")]
    TrainerPanic(String),
}
