//! `shoal`: train, learner, actor and envs.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shoal_actor::cli::ActorArgs;
use shoal_common::logging::{self, LogFormat};
use shoal_learner::cli::{LearnerArgs, LearnerCommand};
use tokio_util::sync::CancellationToken;

/// shoal: distributed actor-learner reinforcement learning.
#[derive(Debug, Parser)]
#[command(name = "shoal", version)]
struct Cli {
    /// Log format: text or json.
    #[arg(long, global = true, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Train on this machine: a learner plus N actor processes on loopback.
    Train {
        /// Run config (TOML), e.g. configs/cartpole-ppo.toml (same as --config).
        #[arg(value_name = "CONFIG")]
        config_file: Option<std::path::PathBuf>,
        /// Number of actor processes.
        #[arg(long, default_value_t = 2)]
        actors: usize,
        /// Where the learner listens.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Print the final summary as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        args: LearnerArgs,
    },
    /// Run the learner alone (actors connect from anywhere).
    Learner(LearnerCommand),
    /// Run one actor against a learner.
    Actor(ActorArgs),
    /// List the registered environments and their spaces.
    Envs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Cmd::Envs = cli.command {
        print!("{}", shoal::envs_table());
        return Ok(());
    }
    let runtime = match cli.command {
        Cmd::Actor(_) => shoal_actor::runtime()?,
        _ => tokio::runtime::Runtime::new()?,
    };
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        logging::cancel_on_signals(shutdown.clone());
        match cli.command {
            Cmd::Train {
                config_file,
                actors,
                listen,
                json,
                mut args,
            } => {
                args.config = args.config.or(config_file);
                let options = shoal::TrainOptions {
                    learner: args,
                    actors,
                    listen,
                    actor_exe: std::env::current_exe()?,
                    log_format: cli.log_format,
                };
                let summary = shoal::train(options, shutdown).await?;
                if json {
                    println!("{}", serde_json::to_string(&summary)?);
                } else {
                    println!("{}", shoal::summary_line(&summary));
                }
            }
            Cmd::Learner(cmd) => {
                let resolved = cmd.args.resolve()?;
                let listener = tokio::net::TcpListener::bind(cmd.listen).await?;
                let summary =
                    shoal_learner::run(resolved.config, resolved.run_dir, listener, shutdown)
                        .await?;
                println!("{}", shoal::summary_line(&summary));
            }
            Cmd::Actor(args) => {
                shoal_actor::run(args.options(), shutdown).await?;
            }
            Cmd::Envs => unreachable!("handled above"),
        }
        Ok(())
    })
}
