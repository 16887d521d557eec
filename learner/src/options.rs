//! What a learner is started with ([`LearnerOptions`]) besides its listener.

use std::path::PathBuf;
use std::sync::Arc;

use shoal_common::config::RunConfig;
use shoal_common::security::Token;

use crate::telemetry::StatusRow;

/// A TLS certificate chain and private key (PEM) the learner serves with.
#[derive(Clone)]
pub struct TlsIdentity {
    /// Certificate chain, PEM.
    pub cert: Vec<u8>,
    /// Private key, PEM.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsIdentity(<certificate and key>)")
    }
}

/// A callback that sees every status row.
#[derive(Clone)]
pub struct StatusHook(pub Arc<dyn Fn(&StatusRow) + Send + Sync>);

impl std::fmt::Debug for StatusHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatusHook")
    }
}

/// Everything [`crate::run()`] and [`crate::start()`] need besides the listener.
#[derive(Debug, Clone)]
pub struct LearnerOptions {
    /// The run config (checked when the learner starts).
    pub config: RunConfig,
    /// Where the run writes.
    pub run_dir: PathBuf,
    /// Continue from the newest checkpoint in `run_dir`.
    pub resume: bool,
    /// Start a new run in `run_dir` even when it holds one (that run's files are deleted).
    pub overwrite: bool,
    /// `run_dir` is a default name: when it exists, a suffix makes it new (`-2`, `-3`, …).
    pub default_name: bool,
    /// Every rpc must carry this token (`None`: no authentication).
    pub token: Option<Token>,
    /// Serve TLS with this identity.
    pub tls: Option<TlsIdentity>,
    /// Serve Prometheus metrics (`GET /metrics`) on this address.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Called by the trainer thread with every status row (e.g. a progress display).
    pub on_status: Option<StatusHook>,
    /// A new run starts from this checkpoint's parameters (a checkpoint directory or a run
    /// directory: its newest) instead of fresh ones, e.g. after `shoal pretrain`.
    pub init: Option<PathBuf>,
}

impl LearnerOptions {
    /// A fresh run of `config` in `run_dir`, without token or TLS.
    pub fn new(config: RunConfig, run_dir: PathBuf) -> Self {
        Self {
            config,
            run_dir,
            resume: false,
            overwrite: false,
            default_name: false,
            token: None,
            tls: None,
            metrics_listen: None,
            on_status: None,
            init: None,
        }
    }
}
