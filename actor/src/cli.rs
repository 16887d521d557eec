//! Command-line arguments of the actor: it needs nothing but the learner's address.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use shoal_common::security::{SecurityError, Token, read_pem};

use crate::session::ActorOptions;

/// `shoal actor` arguments.
#[derive(Debug, Clone, Args)]
pub struct ActorArgs {
    /// The learner's URL.
    #[arg(long, env = "SHOAL_LEARNER", default_value = "http://127.0.0.1:50051")]
    pub learner: String,
    /// Name reported to the learner (default: host name and process id).
    #[arg(long)]
    pub name: Option<String>,
    /// The environment this actor is for: a learner whose run trains another is refused at
    /// registration (default: run whatever the learner's run says).
    #[arg(long, value_name = "ENV_ID", env = "SHOAL_ENV")]
    pub env: Option<String>,
    /// Longest delay between reconnect attempts, in seconds.
    #[arg(long, default_value_t = 2.0)]
    pub max_backoff_secs: f64,
    /// Give up (exit with an error) when the learner has been unreachable this many seconds
    /// (default: keep retrying, as an actor under an orchestrator should).
    #[arg(long, value_name = "SECS", env = "SHOAL_GIVE_UP_AFTER")]
    pub give_up_after_secs: Option<f64>,
    /// File holding the run's shared token (else `SHOAL_TOKEN_FILE`, else `SHOAL_TOKEN`).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// TLS: CA certificate (PEM) to trust for the learner (use an `https://` learner URL).
    #[arg(long, value_name = "FILE", env = "SHOAL_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// TLS: the name the learner's certificate carries, when not the URL's host.
    #[arg(long, value_name = "NAME", env = "SHOAL_TLS_DOMAIN")]
    pub tls_domain: Option<String>,
}

impl ActorArgs {
    /// The options [`crate::session::run`] takes (reads the token and CA files).
    pub fn options(&self) -> Result<ActorOptions, SecurityError> {
        let name = self.name.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|| "actor".into());
            format!("{host}-{}", std::process::id())
        });
        Ok(ActorOptions {
            max_backoff: Duration::from_secs_f64(self.max_backoff_secs.max(0.1)),
            token: Token::from_file_or_env(self.token_file.as_deref())?,
            tls_ca: self
                .tls_ca
                .as_deref()
                .map(|p| read_pem("TLS CA certificate", p))
                .transpose()?,
            tls_domain: self.tls_domain.clone(),
            env: self.env.clone(),
            give_up_after: self
                .give_up_after_secs
                .filter(|s| s.is_finite())
                .map(|s| Duration::from_secs_f64(s.clamp(0.0, 1e9))),
            ..ActorOptions::new(self.learner.clone(), name)
        })
    }
}
