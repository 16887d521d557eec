//! Process set-up shared by the binaries: tracing, [`cancel_on_signals`], and [`error_chain`]
//! (an error with its causes, as logs and the command line print it).
//!
//! Tracing set-up for the binaries: `RUST_LOG` filtering (default `info`), human-readable text
//! or one JSON object per line (`--log-format json`, for containers and log shippers). On a
//! terminal, progress bars drawn by `indicatif` (through `tracing-indicatif`) sit under the log.

use std::str::FromStr;

use tracing_indicatif::IndicatifLayer;
use tracing_indicatif::filter::{IndicatifFilter, hide_indicatif_span_fields};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format::DefaultFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The target of the learner's structured status event (every quantity as a field): JSON logs
/// carry it, text logs do not.
pub const STATUS_TARGET: &str = "shoal::status";
/// The target of the learner's compact status line: text logs carry it, JSON logs do not.
pub const STATUS_TEXT_TARGET: &str = "shoal::status_text";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format `{other}` (use text or json)")),
        }
    }
}

impl LogFormat {
    /// The name accepted by [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// Whether a progress display makes sense: stderr is a terminal and logs are text.
pub fn progress_available(format: LogFormat) -> bool {
    format == LogFormat::Text && std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// Installs the global subscriber, writing to stderr. Safe to call twice (the second call
/// does nothing). On a terminal with text logs, log lines go through `tracing-indicatif`'s
/// writer, so that progress bars (spans that opt in with an `indicatif.pb_show` field) stay
/// under the log instead of being overwritten by it.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_ansi(terminal);
    let registry = tracing_subscriber::registry().with(filter);
    // Each format gets its form of the status line.
    let not_target = |target: &'static str| filter_fn(move |meta| meta.target() != target);
    let _ = match format {
        LogFormat::Json => registry
            .with(
                fmt.json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr)
                    .with_filter(not_target(STATUS_TEXT_TARGET)),
            )
            .try_init(),
        LogFormat::Text if progress_available(format) => {
            let bars = IndicatifLayer::new()
                .with_span_field_formatter(hide_indicatif_span_fields(DefaultFields::new()));
            // On a terminal: time since start and no module path, so lines stay short.
            registry
                .with(
                    fmt.with_timer(Uptime(std::time::Instant::now()))
                        .with_target(false)
                        .with_writer(bars.get_stderr_writer())
                        .with_filter(not_target(STATUS_TARGET)),
                )
                .with(bars.with_filter(IndicatifFilter::new(false)))
                .try_init()
        }
        LogFormat::Text => registry
            .with(
                fmt.with_writer(std::io::stderr)
                    .with_filter(not_target(STATUS_TARGET)),
            )
            .try_init(),
    };
}

/// Seconds since start with two decimals (`  12.34s`): on a terminal, what a person wants to
/// know of a log line's time, in little space.
struct Uptime(std::time::Instant);

impl tracing_subscriber::fmt::time::FormatTime for Uptime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "{:>7.2}s", self.0.elapsed().as_secs_f64())
    }
}

/// An error and its causes on one line (`error: cause: cause…`), each cause once: wrapping
/// layers often repeat their inner error's message, which is then not printed again.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Set when ctrl-c (SIGINT) asked the process to stop.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether ctrl-c stopped the process: its exit status is then 130, as a shell expects of a
/// program the user interrupted (SIGTERM, an orchestrator's stop, exits 0 after a clean stop).
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Cancels `token` on ctrl-c or SIGTERM: the one cancellation token that drives graceful
/// shutdown. Must be called inside a tokio runtime.
pub fn cancel_on_signals(token: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                INTERRUPTED.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            _ = term => {}
        }
        tracing::info!("shutdown requested by signal");
        token.cancel();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_chain_prints_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot listen on 127.0.0.1:1: {0}")]
        struct Outer(#[source] std::io::Error);
        #[derive(Debug, thiserror::Error)]
        #[error("transport error")]
        struct Transport(#[source] std::io::Error);
        let in_use =
            || std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        assert_eq!(
            error_chain(&Outer(in_use())),
            "cannot listen on 127.0.0.1:1: Address already in use"
        );
        assert_eq!(
            error_chain(&Transport(in_use())),
            "transport error: Address already in use"
        );
    }
}
