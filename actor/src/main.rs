//! `shoal-actor`: one actor process (the same as `shoal actor`).

/// burn-flex copies every op's output into a fresh buffer; under glibc's malloc the cost of
/// those copies varied by ~10% with the allocation history of the process. mimalloc's size
/// classes keep it small and stable (README, Benchmark results).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use shoal_actor::cli::ActorArgs;
use shoal_common::logging::{self, LogFormat};

/// Run environments for a shoal learner.
#[derive(Debug, Parser)]
#[command(name = "shoal-actor", version)]
struct Cli {
    #[command(flatten)]
    actor: ActorArgs,
    /// Log format: text or json.
    #[arg(long, default_value = "text", env = "SHOAL_LOG_FORMAT")]
    log_format: LogFormat,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let runtime = shoal_actor::runtime()?;
    runtime.block_on(async {
        let shutdown = tokio_util::sync::CancellationToken::new();
        logging::cancel_on_signals(shutdown.clone());
        shoal_actor::run(cli.actor.options()?, shutdown).await?;
        Ok(())
    })
}
