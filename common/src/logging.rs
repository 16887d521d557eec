//! Process set-up shared by the binaries: tracing and [`cancel_on_signals`].
//!
//! Tracing set-up for the binaries: `RUST_LOG` filtering (default `info`), human-readable text
//! or one JSON object per line (`--log-format json`, for containers and log shippers). On a
//! terminal, progress bars drawn by `indicatif` (through `tracing-indicatif`) sit under the log.

use std::str::FromStr;

use tracing_indicatif::IndicatifLayer;
use tracing_indicatif::filter::{IndicatifFilter, hide_indicatif_span_fields};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::DefaultFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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
    let _ = match format {
        LogFormat::Json => registry
            .with(fmt.json().flatten_event(true).with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Text if progress_available(format) => {
            let bars = IndicatifLayer::new()
                .with_span_field_formatter(hide_indicatif_span_fields(DefaultFields::new()));
            registry
                .with(fmt.with_writer(bars.get_stderr_writer()))
                .with(bars.with_filter(IndicatifFilter::new(false)))
                .try_init()
        }
        LogFormat::Text => registry.with(fmt.with_writer(std::io::stderr)).try_init(),
    };
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
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        tracing::info!("shutdown requested by signal");
        token.cancel();
    });
}
