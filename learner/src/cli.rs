//! Command-line arguments of the learner, and their resolution into a checked configuration
//! (the config file, then flags on top).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use shoal_common::config::{DeviceChoice, RunConfig};

use crate::LearnerError;
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
}

fn parse_device(s: &str) -> Result<DeviceChoice, String> {
    match s {
        "auto" => Ok(DeviceChoice::Auto),
        "flex" => Ok(DeviceChoice::Flex),
        "wgpu" => Ok(DeviceChoice::Wgpu),
        other => Err(format!("unknown device `{other}` (auto, flex or wgpu)")),
    }
}

/// What the learner runs with.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The checked run config.
    pub config: RunConfig,
    /// Where the run writes.
    pub run_dir: PathBuf,
}

impl LearnerArgs {
    /// Loads the config file, applies the flags and checks the result.
    pub fn resolve(&self) -> Result<Resolved, LearnerError> {
        let mut config = match &self.config {
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
        config.validate()?;
        let run_dir = self
            .run_dir
            .clone()
            .unwrap_or_else(|| default_run_dir(&config.env_id));
        Ok(Resolved { config, run_dir })
    }
}

/// `shoal learner` arguments.
#[derive(Debug, Clone, Args)]
pub struct LearnerCommand {
    /// Address to serve the parameter server on.
    #[arg(long, default_value = "0.0.0.0:50051")]
    pub listen: SocketAddr,
    /// Run settings.
    #[command(flatten)]
    pub args: LearnerArgs,
}
