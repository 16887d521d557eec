//! `shoal-actor`: one actor process (the same as `shoal actor`).

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
    #[arg(long, default_value = "text")]
    log_format: LogFormat,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    // An actor's async work is a handful of small RPCs: one thread serves it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let shutdown = tokio_util::sync::CancellationToken::new();
        logging::cancel_on_signals(shutdown.clone());
        shoal_actor::run(cli.actor.options(), shutdown).await?;
        Ok(())
    })
}
