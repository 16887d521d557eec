//! Process set-up shared by the binaries: tracing (and [`cancel_on_signals`]).
//!
//! Tracing set-up for the binaries: `RUST_LOG` filtering (default `info`), human-readable text
//! or one JSON object per line (`--log-format json`, for containers and log shippers).
//!
//! A progress line ([`set_progress`]) can sit under the log on a terminal: every log line is
//! written above it and it is drawn again after.

use std::str::FromStr;

use tracing_subscriber::EnvFilter;

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

/// Installs the global subscriber, writing to stderr. Safe to call twice (the second call
/// does nothing).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(|| ProgressAwareStderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The progress line drawn under the log, when one is set.
static PROGRESS: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Whether a progress line makes sense: stderr is a terminal and logs are text.
pub fn progress_available(format: LogFormat) -> bool {
    format == LogFormat::Text && std::io::IsTerminal::is_terminal(&std::io::stderr())
}

/// Shows `line` as the progress line (replacing the previous one).
pub fn set_progress(line: String) {
    use std::io::Write;
    let mut progress = PROGRESS.lock().unwrap_or_else(|e| e.into_inner());
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{line}");
    let _ = err.flush();
    *progress = Some(line);
}

/// Removes the progress line.
pub fn clear_progress() {
    use std::io::Write;
    let mut progress = PROGRESS.lock().unwrap_or_else(|e| e.into_inner());
    if progress.take().is_some() {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K");
        let _ = err.flush();
    }
}

/// stderr for log lines: with a progress line showing, each log line replaces it and it is
/// drawn again below.
struct ProgressAwareStderr;

impl std::io::Write for ProgressAwareStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let progress = PROGRESS.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = std::io::stderr().lock();
        match progress.as_deref() {
            Some(line) => {
                err.write_all(b"\r\x1b[2K")?;
                err.write_all(buf)?;
                if buf.ends_with(b"\n") {
                    err.write_all(line.as_bytes())?;
                }
            }
            None => err.write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
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
