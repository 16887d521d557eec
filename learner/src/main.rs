//! `shoal-learner`: the learner alone (the same as `shoal learner`).

/// burn-flex copies every op's output into a fresh buffer; under glibc's malloc the cost of
/// those copies varied by ~10% with the allocation history of the process. mimalloc's size
/// classes keep it small and stable (README, Benchmark results).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use shoal_common::logging::{self, LogFormat};
use shoal_learner::cli::LearnerCommand;

/// Serve the parameter server and train.
#[derive(Debug, Parser)]
#[command(name = "shoal-learner", version)]
struct Cli {
    #[command(flatten)]
    learner: LearnerCommand,
    /// Log format: text or json.
    #[arg(long, default_value = "text", env = "SHOAL_LOG_FORMAT")]
    log_format: LogFormat,
}

fn main() -> anyhow::Result<()> {
    // SAFETY: first thing in main, before any thread is started.
    #[allow(unsafe_code)]
    unsafe {
        shoal_learner::device::default_device_flex()
    };
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let options = cli.learner.options()?;
        let listener = tokio::net::TcpListener::bind(cli.learner.listen).await?;
        let shutdown = tokio_util::sync::CancellationToken::new();
        logging::cancel_on_signals(shutdown.clone());
        shoal_learner::run(options, listener, shutdown).await?;
        Ok(())
    })
}
