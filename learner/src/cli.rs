//! Command-line arguments of the learner, and their resolution into learner options (the
//! config file, then flags on top; the learner checks the result when it starts).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use shoal_common::config::{DeviceChoice, RunConfig};
use shoal_common::security::{SecurityError, Token, read_pem};

use crate::error::LearnerError;
use crate::options::{LearnerOptions, TlsIdentity};
use crate::run_dir::{RUNS_ROOT, default_run_dir};
use tracing::warn;

/// `shoal learner` / `shoal train` arguments shared by both.
#[derive(Debug, Clone, Args)]
pub struct LearnerArgs {
    /// Run config (TOML), e.g. configs/cartpole-ppo.toml (same as --config). Without one, the
    /// documented defaults are used.
    #[arg(value_name = "CONFIG", conflicts_with = "config")]
    pub config_file: Option<PathBuf>,
    /// Run config (TOML), as CONFIG.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one config field, e.g. `--set ppo.learning_rate=3e-4` (repeatable; the run's
    /// `config.toml` records the result).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Run directory (default: `runs/<env>-<algorithm>-s<seed>-<UTC time>`, never one that
    /// exists).
    #[arg(long, value_name = "DIR", conflicts_with = "name")]
    pub run_dir: Option<PathBuf>,
    /// Name of the run: its directory is `runs/NAME`.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Start a new run in a run directory that holds one, deleting that run's config, metrics,
    /// TensorBoard events and checkpoints (without it, such a directory is refused).
    #[arg(long, conflicts_with_all = ["resume", "auto_resume"])]
    pub overwrite: bool,
    /// Overrides `seed`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Overrides `total_steps`.
    #[arg(long)]
    pub total_steps: Option<u64>,
    /// Overrides `target_return` (negative values as `--target-return -80`).
    #[arg(long, allow_negative_numbers = true)]
    pub target_return: Option<f64>,
    /// Overrides `learner.device`: auto, flex or wgpu.
    #[arg(long, value_parser = parse_device)]
    pub device: Option<DeviceChoice>,
    /// Continue the run in RUN_DIR from its newest checkpoint (its `config.toml` is the config
    /// unless --config is given; the flags above still override it).
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["run_dir", "name"])]
    pub resume: Option<PathBuf>,
    /// Resume the run in --run-dir when it already holds one (its `config.toml`), else start
    /// it: what a learner restarted by an orchestrator (Docker, Kubernetes) wants.
    #[arg(long, env = "SHOAL_AUTO_RESUME")]
    pub auto_resume: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9464); with a token,
    /// scrapes must send it as a bearer token.
    #[arg(long, value_name = "ADDR", env = "SHOAL_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Start from this checkpoint's parameters (a checkpoint directory, or a run directory:
    /// its newest), e.g. what `shoal pretrain` wrote; the model must be the same. A resumed run
    /// that has a checkpoint of its own continues from that instead.
    #[arg(long, value_name = "CHECKPOINT")]
    pub init: Option<PathBuf>,
}

fn parse_device(s: &str) -> Result<DeviceChoice, String> {
    match s {
        "auto" => Ok(DeviceChoice::Auto),
        "flex" => Ok(DeviceChoice::Flex),
        "wgpu" => Ok(DeviceChoice::Wgpu),
        other => Err(format!("unknown device `{other}` (auto, flex or wgpu)")),
    }
}

impl LearnerArgs {
    /// The config file named by CONFIG or --config.
    fn config_path(&self) -> Option<PathBuf> {
        self.config.clone().or_else(|| self.config_file.clone())
    }

    /// Loads the config file (on resume: the run directory's) and applies the flags; the
    /// learner checks the result when it starts. No token or TLS yet: see [`ServeArgs::apply`].
    pub fn resolve(&self) -> Result<LearnerOptions, LearnerError> {
        let named = self
            .name
            .as_deref()
            .map(|name| check_name(name).map(|name| Path::new(RUNS_ROOT).join(name)))
            .transpose()?;
        if self.auto_resume && self.run_dir.is_none() && named.is_none() {
            return Err(LearnerError::Usage(
                "--auto-resume needs the run's directory: --run-dir DIR or --name NAME".into(),
            ));
        }
        let run_dir = self.run_dir.clone().or(named);
        let resume = self.resume.clone().or_else(|| {
            run_dir
                .clone()
                .filter(|dir| self.auto_resume && dir.join("config.toml").exists())
        });
        let config_path = match &resume {
            // The run's own config; --config is for a new run.
            Some(dir) if self.auto_resume => Some(dir.join("config.toml")),
            _ => self.config_path(),
        }
        .or_else(|| resume.as_ref().map(|dir| dir.join("config.toml")));
        if self.auto_resume
            && let Some(dir) = &resume
            && self.config_path().is_some()
        {
            warn!(
                run_dir = %dir.display(),
                "--auto-resume: the run continues with its own config.toml; the config file given is not read"
            );
        }
        let (mut config, unread) = RunConfig::load_with(config_path.as_deref(), &self.sets)?;
        // A run directory's config.toml lists every section in full: only a user's file is
        // checked for another algorithm's fields.
        if resume.is_none() && !unread.is_empty() {
            warn!(
                algorithm = config.algorithm.name(),
                fields = unread.join(", "),
                "config: these fields belong to another algorithm and are not read by this run"
            );
        }
        if let Some(seed) = self.seed {
            config.seed = seed;
        }
        if let Some(steps) = self.total_steps {
            config.total_steps = steps;
        }
        if let Some(target) = self.target_return {
            config.target_return = Some(target);
        }
        if let Some(device) = self.device {
            config.learner.device = device;
        }
        // Checked once, by the learner when it starts.
        let chosen = resume.clone().or(run_dir);
        let default_name = chosen.is_none();
        let run_dir = chosen.unwrap_or_else(|| default_run_dir(Path::new(RUNS_ROOT), &config));
        Ok(LearnerOptions {
            resume: resume.is_some(),
            default_name,
            overwrite: self.overwrite,
            metrics_listen: self.metrics_listen,
            init: self.init.clone(),
            ..LearnerOptions::new(config, run_dir)
        })
    }
}

/// A run name is one plain path component: it names a directory inside `runs/`.
fn check_name(name: &str) -> Result<&str, LearnerError> {
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(std::path::Component::Normal(_)), None) => Ok(name),
        _ => Err(LearnerError::Usage(format!(
            "--name `{name}`: a run name is one directory name (no `/`, `..` or empty name)"
        ))),
    }
}

/// How a learner reachable from other machines protects itself.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// File holding the shared token every rpc must carry (else `SHOAL_TOKEN_FILE`, else the
    /// `SHOAL_TOKEN` environment variable).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Serve without a token: anyone who reaches the port can push experience and read the
    /// model. For a private, trusted network only.
    #[arg(long)]
    pub insecure: bool,
    /// TLS certificate chain (PEM); with --tls-key, the learner serves TLS.
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_key",
        env = "SHOAL_TLS_CERT"
    )]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(
        long,
        value_name = "FILE",
        requires = "tls_cert",
        env = "SHOAL_TLS_KEY"
    )]
    pub tls_key: Option<PathBuf>,
}

impl ServeArgs {
    /// Adds the token and TLS identity to `options`. Without a token the learner refuses to
    /// start unless `--insecure` says so.
    pub fn apply(&self, mut options: LearnerOptions) -> Result<LearnerOptions, LearnerError> {
        options.token = Token::from_file_or_env(self.token_file.as_deref())?;
        if options.token.is_none() && !self.insecure {
            return Err(SecurityError::BadToken(
                "none given: set SHOAL_TOKEN or pass --token-file (or --insecure to run \
                 without authentication on a trusted network)",
            )
            .into());
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            options.tls = Some(TlsIdentity {
                cert: read_pem("TLS certificate", cert)?,
                key: read_pem("TLS key", key)?,
            });
        }
        Ok(options)
    }
}

/// `shoal learner` arguments.
#[derive(Debug, Clone, Args)]
pub struct LearnerCommand {
    /// Address to serve the parameter server on.
    #[arg(long, default_value = "0.0.0.0:50051", env = "SHOAL_LISTEN")]
    pub listen: SocketAddr,
    /// Run settings.
    #[command(flatten)]
    pub args: LearnerArgs,
    /// Token and TLS.
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl LearnerCommand {
    /// The options [`crate::run::run`] takes.
    pub fn options(&self) -> Result<LearnerOptions, LearnerError> {
        self.serve.apply(self.args.resolve()?)
    }
}
