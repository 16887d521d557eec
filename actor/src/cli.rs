//! Command-line arguments of the actor: it needs nothing but the learner's address.

use std::time::Duration;

use clap::Args;

use crate::ActorOptions;

/// `shoal actor` arguments.
#[derive(Debug, Clone, Args)]
pub struct ActorArgs {
    /// The learner's URL.
    #[arg(long, env = "SHOAL_LEARNER", default_value = "http://127.0.0.1:50051")]
    pub learner: String,
    /// Name reported to the learner (default: host name and process id).
    #[arg(long)]
    pub name: Option<String>,
    /// Longest delay between reconnect attempts, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub max_backoff_secs: f64,
}

impl ActorArgs {
    /// The options [`crate::run`] takes.
    pub fn options(&self) -> ActorOptions {
        let name = self.name.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|| "actor".into());
            format!("{host}-{}", std::process::id())
        });
        ActorOptions {
            learner: self.learner.clone(),
            name,
            max_backoff: Duration::from_secs_f64(self.max_backoff_secs.max(0.1)),
        }
    }
}
