//! Command-line arguments of the learner, and their resolution into learner options (the
//! config file, then flags on top; the learner checks the result when it starts).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use shoal_common::config::{DeviceChoice, RunConfig};
use shoal_common::security::{SecurityError, Token, read_pem};

use crate::error::LearnerError;
use crate::options::{LearnerOptions, TlsIdentity};
use crate::run_dir::default_run_dir;

/// `shoal learner` / `shoal train` arguments shared by both.
#[derive(Debug, Clone, Args)]
pub struct LearnerArgs {
    /// Run config (TOML). Without one, the documented defaults are used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Run directory (default: `runs/<UTC time>-<env id>`).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Overrides `seed`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Overrides `total_steps`.
    #[arg(long)]
    pub total_steps: Option<u64>,
    /// Overrides `target_return`.
    #[arg(long)]
    pub target_return: Option<f64>,
    /// Overrides `learner.device`: auto, flex or wgpu.
    #[arg(long, value_parser = parse_device)]
    pub device: Option<DeviceChoice>,
    /// Continue the run in RUN_DIR from its newest checkpoint (its `config.toml` is the config
    /// unless --config is given; the flags above still override it).
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "run_dir")]
    pub resume: Option<PathBuf>,
    /// Resume the run in --run-dir when it already holds one (its `config.toml`), else start
    /// it: what a learner restarted by an orchestrator (Docker, Kubernetes) wants.
    #[arg(long, requires = "run_dir", env = "SHOAL_AUTO_RESUME")]
    pub auto_resume: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 0.0.0.0:9464); with a token,
    /// scrapes must send it as a bearer token.
    #[arg(long, value_name = "ADDR", env = "SHOAL_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
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
    /// Loads the config file (on resume: the run directory's) and applies the flags; the
    /// learner checks the result when it starts. No token or TLS yet: see [`ServeArgs::apply`].
    pub fn resolve(&self) -> Result<LearnerOptions, LearnerError> {
        let resume = self.resume.clone().or_else(|| {
            self.run_dir
                .clone()
                .filter(|dir| self.auto_resume && dir.join("config.toml").exists())
        });
        let config_path = match &resume {
            // The run's own config; --config is for a new run.
            Some(dir) if self.auto_resume => Some(dir.join("config.toml")),
            _ => self.config.clone(),
        }
        .or_else(|| resume.as_ref().map(|dir| dir.join("config.toml")));
        let mut config = match &config_path {
            Some(path) => RunConfig::load(path)?,
            None => RunConfig::default(),
        };
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
        let run_dir = resume
            .clone()
            .or_else(|| self.run_dir.clone())
            .unwrap_or_else(|| default_run_dir(&config.env_id));
        Ok(LearnerOptions {
            resume: resume.is_some(),
            metrics_listen: self.metrics_listen,
            ..LearnerOptions::new(config, run_dir)
        })
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
