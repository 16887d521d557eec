//! `shoal`: train, learner, actor and envs.

/// burn-flex copies every op's output into a fresh buffer; under glibc's malloc the cost of
/// those copies varied by ~10% with the allocation history of the process. mimalloc's size
/// classes keep it small and stable (README, Benchmark results).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use shoal::policy::{EvalReport, LoadedPolicy};
use shoal_actor::cli::ActorArgs;
use shoal_actor::health::Health;
use shoal_common::logging::{self, LogFormat};
use shoal_common::security::{Token, read_pem};
use shoal_learner::cli::{LearnerArgs, LearnerCommand};
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// shoal: distributed actor-learner reinforcement learning.
#[derive(Debug, Parser)]
#[command(name = "shoal", version)]
struct Cli {
    /// Log format: text or json.
    #[arg(long, global = true, default_value = "text", env = "SHOAL_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Train on this machine: a learner plus N actor processes on loopback.
    Train {
        /// Number of actor processes (at least 1; to start actors on other machines, run
        /// `shoal learner` and `shoal actor` instead).
        #[arg(long, default_value_t = 2)]
        actors: usize,
        /// Where the learner listens.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Print the final summary as JSON.
        #[arg(long)]
        json: bool,
        /// No progress line (it is drawn only on a terminal with text logs anyway).
        #[arg(long)]
        no_progress: bool,
        /// Train once per seed, one run after another (e.g. `--seeds 1,2,3`); each run gets
        /// its own directory (under --run-dir, or named after --name, when given).
        #[arg(long, value_delimiter = ',', conflicts_with_all = ["seed", "resume"])]
        seeds: Vec<u64>,
        #[command(flatten)]
        args: LearnerArgs,
    },
    /// Plot learning curves of runs as a PNG (runs that differ only in their seed are drawn as
    /// mean ± standard deviation).
    Plot {
        /// Run directories.
        #[arg(required = true, value_name = "RUN_DIR")]
        runs: Vec<PathBuf>,
        /// The PNG to write (default: RUN_DIR/plot.png for one run, ./shoal-plot.png for more).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// A TrueType font for the labels (default: DejaVu Sans from the system).
        #[arg(long, value_name = "FILE")]
        font: Option<PathBuf>,
    },
    /// List the runs in a directory: status, steps, best return and wall time of each.
    Runs {
        /// The directory holding run directories (or one run directory).
        #[arg(value_name = "DIR", default_value = "runs")]
        dir: PathBuf,
    },
    /// Run the deterministic policy of a checkpoint (greedy, or the Gaussian's mean) and report
    /// its returns.
    Eval {
        /// A checkpoint directory (RUN_DIR/checkpoints/NAME) or a run directory (its newest).
        #[arg(value_name = "CHECKPOINT")]
        checkpoint: PathBuf,
        /// Episodes (run side by side, one per environment copy).
        #[arg(long, default_value_t = 100)]
        episodes: usize,
        /// Seed of the evaluation environments (default: derived from the run's seed).
        #[arg(long)]
        seed: Option<u64>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Also write each episode's return and length to FILE (CSV).
        #[arg(long, value_name = "FILE")]
        record: Option<PathBuf>,
    },
    /// Write a checkpoint's policy in a portable format.
    Export {
        /// A checkpoint directory or a run directory (its newest checkpoint).
        #[arg(value_name = "CHECKPOINT")]
        checkpoint: PathBuf,
        /// The format (safetensors).
        #[arg(long, default_value = "safetensors", value_parser = ["safetensors"])]
        format: String,
        /// The file to write (default: policy.safetensors in the checkpoint directory).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Run the learner alone (actors connect from anywhere).
    Learner(LearnerCommand),
    /// Run one actor against a learner.
    Actor(ActorArgs),
    /// List the registered environments and their spaces.
    Envs,
    /// Serve the registered environments over dm_env_rpc v1, for any dm_env_rpc client (a
    /// world's `CreateWorld` settings: `env` = an id from `shoal envs`, `seed`, `frame_stack`).
    /// Prints the address it listens on as its first line.
    EnvServer {
        /// Where to listen (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:50052")]
        listen: SocketAddr,
    },
    /// Supervised warm start of a text task's policy: next-token prediction (teacher forcing,
    /// cross-entropy) on demonstrations, `PROMPT=ANSWER` per line. Writes a run directory
    /// whose final checkpoint `shoal train --init` starts from and `shoal eval` evaluates.
    Pretrain {
        /// Run config (TOML): the text task (`env_id`), the model and the seed.
        #[arg(value_name = "CONFIG")]
        config: PathBuf,
        /// The demonstrations file.
        #[arg(long, value_name = "FILE")]
        data: PathBuf,
        /// The run directory to write.
        #[arg(long, value_name = "DIR")]
        run_dir: PathBuf,
        /// Replace a run the directory holds.
        #[arg(long)]
        overwrite: bool,
        /// Passes over the demonstrations.
        #[arg(long, default_value_t = 20)]
        epochs: usize,
        /// Tokens per gradient step.
        #[arg(long, default_value_t = 256)]
        batch_size: usize,
        /// Adam's learning rate.
        #[arg(long, default_value_t = 1e-3)]
        learning_rate: f64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write demonstrations of a text task (`PROMPT=ANSWER` per line) for `shoal pretrain`,
    /// a share of them deliberately wrong.
    Demos {
        /// The text task with its settings, e.g. `Text-Addition-v0?length=2`.
        #[arg(value_name = "ENV_ID")]
        env: String,
        /// How many.
        #[arg(long, default_value_t = 1000)]
        count: usize,
        /// The share that is wrong (one character changed), 0 to 1.
        #[arg(long, default_value_t = 0.0)]
        corrupt: f64,
        /// Seed of the prompts and of the corruption.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The file to write (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Ask a learner whether it is serving (the standard gRPC health service); exit status 0
    /// when it is. For container health checks and probes.
    Health(HealthArgs),
    /// Print a fresh random token for SHOAL_TOKEN.
    Token,
}

#[derive(Debug, clap::Args)]
struct HealthArgs {
    /// The learner's URL.
    #[arg(long, env = "SHOAL_LEARNER", default_value = "http://127.0.0.1:50051")]
    learner: String,
    /// File holding the token (else `SHOAL_TOKEN_FILE`, else `SHOAL_TOKEN`).
    #[arg(long, value_name = "FILE")]
    token_file: Option<std::path::PathBuf>,
    /// TLS: CA certificate (PEM) to trust.
    #[arg(long, value_name = "FILE", env = "SHOAL_TLS_CA")]
    tls_ca: Option<std::path::PathBuf>,
    /// TLS: the name the learner's certificate carries.
    #[arg(long, value_name = "NAME", env = "SHOAL_TLS_DOMAIN")]
    tls_domain: Option<String>,
    /// The service to ask about (empty: the whole server).
    #[arg(long, default_value = shoal_actor::health::PARAMETER_SERVER)]
    service: String,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 3.0)]
    timeout_secs: f64,
}

fn main() -> ExitCode {
    // SAFETY: first thing in main, before any thread is started.
    #[allow(unsafe_code)]
    unsafe {
        shoal_learner::device::default_device_flex()
    };
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let result = run(cli);
    if let Err(e) = &result {
        eprintln!("error: {}", logging::error_chain(e.as_ref()));
    }
    match result {
        // ctrl-c: the run was stopped cleanly (final checkpoint written), but by the user.
        _ if logging::interrupted() => ExitCode::from(130),
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Cmd::Envs => {
            print!("{}", shoal::envs_table());
            return Ok(());
        }
        Cmd::Plot { runs, out, font } => {
            let out = out.clone().unwrap_or_else(|| match runs.as_slice() {
                [one] => one.join("plot.png"),
                _ => PathBuf::from("shoal-plot.png"),
            });
            let groups = shoal::plot::plot(runs, &out, font.as_deref())?;
            println!(
                "{}: {} run{} in {groups} group{}",
                out.display(),
                runs.len(),
                if runs.len() == 1 { "" } else { "s" },
                if groups == 1 { "" } else { "s" }
            );
            return Ok(());
        }
        Cmd::Eval {
            checkpoint,
            episodes,
            seed,
            json,
            record,
        } => {
            let policy = LoadedPolicy::load(checkpoint)?;
            let seed = seed.unwrap_or_else(|| {
                shoal_common::rng::derive_seed(policy.config.seed, shoal_common::rng::streams::EVAL)
            });
            let eps = policy.evaluate((*episodes).max(1), seed)?;
            if let Some(path) = record {
                shoal::policy::record(&eps, path)?;
            }
            let report = EvalReport::new(&eps, &policy.checkpoint.dir);
            if *json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", report.line());
            }
            return Ok(());
        }
        Cmd::Export {
            checkpoint, out, ..
        } => {
            let policy = LoadedPolicy::load(checkpoint)?;
            let out = out
                .clone()
                .unwrap_or_else(|| policy.checkpoint.dir.join("policy.safetensors"));
            policy.export_safetensors(&out)?;
            println!("{}", out.display());
            return Ok(());
        }
        Cmd::Token => {
            println!("{}", Token::generate()?.expose());
            return Ok(());
        }
        Cmd::Demos {
            env,
            count,
            corrupt,
            seed,
            out,
        } => {
            anyhow::ensure!(
                (0.0..=1.0).contains(corrupt),
                "--corrupt {corrupt}: the share of wrong demonstrations is 0 to 1"
            );
            let text = shoal::demos::demonstrations(env, *count, *corrupt, *seed)?;
            match out {
                Some(path) => std::fs::write(path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{text}"),
            }
            return Ok(());
        }
        Cmd::Pretrain {
            config,
            data,
            run_dir,
            overwrite,
            epochs,
            batch_size,
            learning_rate,
            json,
        } => {
            let config = shoal_common::config::RunConfig::load(config)?;
            let report =
                shoal_learner::pretrain::pretrain(shoal_learner::pretrain::PretrainOptions {
                    config,
                    data: data.clone(),
                    run_dir: run_dir.clone(),
                    overwrite: *overwrite,
                    epochs: *epochs,
                    batch_size: *batch_size,
                    learning_rate: *learning_rate,
                })?;
            if *json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                let last = report.epochs.last();
                println!(
                    "{}: {} demonstrations, {} tokens, {} epochs, final loss {:.4}, token accuracy {:.4}",
                    report.checkpoint.display(),
                    report.examples,
                    report.tokens,
                    report.epochs.len(),
                    last.map_or(f64::NAN, |e| e.loss),
                    last.map_or(f64::NAN, |e| e.token_accuracy)
                );
            }
            return Ok(());
        }
        Cmd::Runs { dir } => {
            let rows = shoal::runs::list(dir)
                .with_context(|| format!("cannot list runs in {}", dir.display()))?;
            if rows.is_empty() {
                anyhow::bail!("no runs in {}", dir.display());
            }
            print!("{}", shoal::runs::table(dir, &rows));
            return Ok(());
        }
        _ => {}
    }
    let runtime = match cli.command {
        Cmd::Actor(_) | Cmd::Health(_) => shoal_actor::runtime()?,
        _ => tokio::runtime::Runtime::new()?,
    };
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        logging::cancel_on_signals(shutdown.clone());
        match cli.command {
            Cmd::Train {
                actors,
                listen,
                json,
                no_progress,
                seeds,
                args,
            } => {
                let options = shoal::TrainOptions {
                    learner: args,
                    actors,
                    listen,
                    actor_exe: std::env::current_exe()?,
                    log_format: cli.log_format,
                    progress: !no_progress && !json && logging::progress_available(cli.log_format),
                };
                let mut dirs = Vec::new();
                for options in shoal::per_seed(options, &seeds) {
                    if shutdown.is_cancelled() {
                        break;
                    }
                    // Each run ends by cancelling its token; ctrl-c cancels them all.
                    let summary = shoal::train(options, shutdown.child_token()).await?;
                    if json {
                        println!("{}", serde_json::to_string(&summary)?);
                    } else {
                        println!("{}", shoal::summary_line(&summary));
                        if seeds.len() <= 1 {
                            print!("{}", shoal::next_steps(&summary));
                        }
                    }
                    dirs.push(summary.run_dir.display().to_string());
                }
                if !json && dirs.len() > 1 {
                    println!("  plot (mean ± std): shoal plot {}", dirs.join(" "));
                }
            }
            Cmd::Learner(cmd) => {
                let options = cmd.options()?;
                let listener = tokio::net::TcpListener::bind(cmd.listen)
                    .await
                    .with_context(|| format!("cannot listen on {}", cmd.listen))?;
                let summary = shoal_learner::run(options, listener, shutdown).await?;
                println!("{}", shoal::summary_line(&summary));
                print!("{}", shoal::next_steps(&summary));
            }
            Cmd::Actor(args) => {
                shoal_actor::run(args.options()?, shutdown).await?;
            }
            Cmd::EnvServer { listen } => {
                let (listener, bound) = shoal_common::remote::server::bind(listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                println!("dm_env_rpc environment server listening on {bound}");
                std::io::Write::flush(&mut std::io::stdout())?;
                shoal_common::remote::server::serve(listener, shutdown).await?;
            }
            Cmd::Health(args) => {
                let ca = args
                    .tls_ca
                    .as_deref()
                    .map(|p| read_pem("TLS CA certificate", p))
                    .transpose()?;
                let endpoint = shoal_actor::secure_endpoint(
                    &args.learner,
                    ca.as_deref(),
                    args.tls_domain.as_deref(),
                )?;
                let token = Token::from_file_or_env(args.token_file.as_deref())?;
                let timeout = std::time::Duration::from_secs_f64(args.timeout_secs.max(0.1));
                match shoal_actor::health::check(&endpoint, token, &args.service, timeout).await {
                    Health::Serving => println!("SERVING"),
                    Health::NotServing(why) => anyhow::bail!("not serving: {why}"),
                    Health::Refused(why) => anyhow::bail!("reachable, but {why}"),
                    Health::Unreachable(why) => anyhow::bail!("unreachable: {why}"),
                }
            }
            Cmd::Envs
            | Cmd::Token
            | Cmd::Runs { .. }
            | Cmd::Plot { .. }
            | Cmd::Eval { .. }
            | Cmd::Pretrain { .. }
            | Cmd::Demos { .. }
            | Cmd::Export { .. } => {
                unreachable!("handled above")
            }
        }
        Ok(())
    })
}
