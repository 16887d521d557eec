//! The `shoal` command's library: `shoal train` (a learner plus N actor processes on loopback),
//! `shoal envs`, and the tools for results: [`plot`] (learning curves as PNG) and [`policy`]
//! (`shoal eval`, `shoal export`). The binary only parses arguments, sets up tracing and calls
//! these.

pub mod plot;
pub mod policy;

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
use shoal_common::security::{TOKEN_ENV, Token};
use shoal_learner::cli::LearnerArgs;
use shoal_learner::telemetry::StatusRow;
use shoal_learner::{LearnerError, RunSummary};
use tracing_indicatif::span_ext::IndicatifSpanExt;
use tracing_indicatif::style::ProgressStyle;

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
    /// No token could be drawn for the run.
    #[error("cannot draw a random token: {0}")]
    Token(std::io::Error),
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
    /// Draw a progress line under the log (a terminal with text logs only).
    pub progress: bool,
}

/// Starts a learner in this process and `actors` actor processes connected to it over
/// loopback; returns when the run ends. Actor processes are stopped in every case. The run's
/// token is `SHOAL_TOKEN` when set, else a fresh random one handed to the actors.
pub async fn train(
    options: TrainOptions,
    shutdown: CancellationToken,
) -> Result<RunSummary, TrainError> {
    let mut learner = options.learner.resolve()?;
    let token = match Token::from_file_or_env(None).map_err(LearnerError::from)? {
        Some(token) => token,
        None => Token::generate().map_err(TrainError::Token)?,
    };
    learner.token = Some(token.clone());
    // The progress display lives as long as this span; without a terminal it draws nothing.
    let progress = options.progress.then(|| {
        let total = learner.config.total_steps;
        let target = learner.config.target_return;
        let span = tracing::info_span!("train", indicatif.pb_show = tracing::field::Empty);
        span.pb_set_style(&ProgressStyle::with_template("{msg}").expect("a valid template"));
        span.pb_set_message(&progress_line(&StatusRow::default(), total, target));
        let bar = span.clone();
        learner.on_status = Some(shoal_learner::StatusHook(std::sync::Arc::new(move |row| {
            bar.pb_set_message(&progress_line(row, total, target));
        })));
        // Shown without entering the span, so that log lines carry no span prefix.
        span.pb_start();
        span
    });
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
    // The config is checked as the learner starts: nothing is spawned for a run that cannot be.
    let running = shoal_learner::start(learner, listener, shutdown.clone()).await?;
    let url = format!("http://{addr}");
    info!(learner = url, actors = options.actors, "starting actors");
    let mut children = Vec::with_capacity(options.actors);
    for i in 0..options.actors {
        let child = Command::new(&options.actor_exe)
            .args(["actor", "--learner", &url, "--name", &format!("actor-{i}")])
            .args(["--log-format", options.log_format.name()])
            .env(TOKEN_ENV, token.expose())
            .env_remove(shoal_common::security::TOKEN_FILE_ENV)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn();
        match child {
            Ok(child) => children.push(child),
            Err(source) => {
                // The learner has started: end its run (final checkpoint) before giving up.
                shutdown.cancel();
                let _ = running.wait().await;
                stop_actors(children).await;
                return Err(TrainError::Spawn {
                    exe: options.actor_exe.clone(),
                    source,
                });
            }
        }
    }
    let result = running.wait().await;
    drop(progress);
    stop_actors(children).await;
    let summary = result?;
    // The run's learning curves beside its metrics; a run without episodes has none to draw.
    let png = summary.run_dir.join("plot.png");
    match plot::plot(std::slice::from_ref(&summary.run_dir), &png, None) {
        Ok(_) => info!(plot = %png.display(), "learning curves written"),
        Err(e) => warn!(error = %e, "no plot written"),
    }
    Ok(summary)
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

/// The progress line of `shoal train`: a bar of env steps out of `total`, the return (and the
/// target), throughput and the time left at the current speed.
pub fn progress_line(row: &StatusRow, total: u64, target: Option<f64>) -> String {
    let steps = row.env_steps.unwrap_or(0) as f64;
    let frac = (steps / total.max(1) as f64).clamp(0.0, 1.0);
    const WIDTH: usize = 24;
    let filled = (frac * WIDTH as f64).round() as usize;
    let bar: String = "#".repeat(filled) + &"-".repeat(WIDTH - filled);
    let sps = row.sps.unwrap_or(0.0);
    let eta = if sps > 0.0 {
        format!("{:.0}s", (total as f64 - steps).max(0.0) / sps)
    } else {
        "?".into()
    };
    let ret = row
        .eval_return_mean
        .or(row.return_mean_100)
        .map_or("-".into(), |r| format!("{r:.1}"));
    let target = target.map_or(String::new(), |t| format!("/{t}"));
    format!(
        "[{bar}] {:>3.0}% {steps:.0}/{total} steps | return {ret}{target} | {sps:.0} steps/s | ETA {eta}",
        100.0 * frac
    )
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
    fn progress_line_shows_bar_return_speed_and_eta() {
        let row = StatusRow {
            env_steps: Some(50_000),
            sps: Some(10_000.0),
            return_mean_100: Some(212.34),
            ..StatusRow::default()
        };
        let line = progress_line(&row, 100_000, Some(475.0));
        assert_eq!(
            line,
            "[############------------]  50% 50000/100000 steps | return 212.3/475 | 10000 steps/s | ETA 5s"
        );
        let line = progress_line(&StatusRow::default(), 10, None);
        assert!(
            line.contains("return - |") && line.ends_with("ETA ?"),
            "{line}"
        );
    }

    #[test]
    fn envs_table_lists_cartpole_with_spaces() {
        let t = envs_table();
        assert!(t.contains("CartPole-v1"));
        assert!(t.contains("action:      Discrete(2)"));
        assert!(t.contains("shape=(4,)"));
        assert!(t.contains("max_episode_steps: 500"));
    }
}
