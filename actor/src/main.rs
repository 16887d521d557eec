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
