//! The `shoal` command's library: `shoal train` (a learner plus N actor processes on loopback)
//! and `shoal envs`. The binary only parses arguments, sets up tracing and calls these.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use thiserror::Error;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use shoal_common::env;
use shoal_common::logging::LogFormat;
use shoal_learner::cli::LearnerArgs;
use shoal_learner::{LearnerError, RunSummary};

/// Why `shoal train` failed.
#[derive(Debug, Error)]
pub enum TrainError {
    /// The learner failed.
    #[error(transparent)]
    Learner(#[from] LearnerError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// An actor process could not be started.
    #[error("cannot start actor process {exe}: {source}")]
    Spawn {
        /// The executable.
        exe: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// `shoal train` options.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// Run settings.
    pub learner: LearnerArgs,
    /// Number of actor processes.
    pub actors: usize,
    /// Where the learner listens (loopback; port 0 picks a free one).
    pub listen: SocketAddr,
    /// The executable that runs `actor` (normally this very binary).
    pub actor_exe: PathBuf,
    /// Log format handed to the actors.
    pub log_format: LogFormat,
}

/// Starts a learner in this process and `actors` actor processes connected to it over
/// loopback; returns when the run ends. Actor processes are stopped in every case.
pub async fn train(
    options: TrainOptions,
    shutdown: CancellationToken,
) -> Result<RunSummary, TrainError> {
    let resolved = options.learner.resolve()?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| TrainError::Listen {
            addr: options.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| TrainError::Listen {
        addr: options.listen,
        source,
    })?;
    let url = format!("http://{addr}");
    info!(learner = url, actors = options.actors, "starting actors");
    let mut children = Vec::with_capacity(options.actors);
    for i in 0..options.actors {
        let child = Command::new(&options.actor_exe)
            .args(["actor", "--learner", &url, "--name", &format!("actor-{i}")])
            .args(["--log-format", options.log_format.name()])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| TrainError::Spawn {
                exe: options.actor_exe.clone(),
                source,
            })?;
        children.push(child);
    }
    let result = shoal_learner::run(resolved.config, resolved.run_dir, listener, shutdown).await;
    stop_actors(children).await;
    Ok(result?)
}

/// Actors leave by themselves when told the run is over; any that do not within a few seconds
/// are killed.
async fn stop_actors(children: Vec<Child>) {
    for mut child in children {
        match tokio::time::timeout(Duration::from_secs(5), child.wait()).await {
            Ok(Ok(status)) if !status.success() => warn!(%status, "actor exited with an error"),
            Ok(_) => {}
            Err(_) => {
                warn!("actor did not exit in time; killing it");
                let _ = child.kill().await;
            }
        }
    }
}

/// The text `shoal envs` prints: every registered environment with its spaces.
pub fn envs_table() -> String {
    let mut out = String::new();
    for info in env::registry() {
        let e = env::make(info.id).expect("registered environments build");
        let limit = info
            .max_episode_steps
            .map(|s| s.to_string())
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "{}\n  observation: {}\n  action:      {}\n  max_episode_steps: {limit}\n",
            info.id,
            e.observation_space(),
            e.action_space()
        ));
    }
    out
}

/// A one-line human summary of a finished run.
pub fn summary_line(s: &RunSummary) -> String {
    format!(
        "{}: {} env steps, {} updates, {} episodes, mean return (last 100) {}, {:.2} s; run directory {}",
        if s.solved { "solved" } else { "stopped" },
        s.env_steps,
        s.updates,
        s.episodes,
        s.return_mean_100
            .map(|r| format!("{r:.1}"))
            .unwrap_or_else(|| "n/a".into()),
        s.wall_secs,
        s.run_dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envs_table_lists_cartpole_with_spaces() {
        let t = envs_table();
        assert!(t.contains("CartPole-v1"));
        assert!(t.contains("action:      Discrete(2)"));
        assert!(t.contains("shape=(4,)"));
        assert!(t.contains("max_episode_steps: 500"));
    }
}
