//! The run configuration: one TOML file per run, every field documented and defaulted, one
//! module per section, each validating its own fields against named ranges.
//!
//! The learner reads it; actors receive the part they must follow at registration (and check it
//! against the same ranges). The file the run used is saved in its run directory.
//!
//! # Layout
//! - [`range`]: allowed ranges and the error that names field, value and range.
//! - [`ppo`], [`a3c`], [`dqn`], [`impala`]: each algorithm's section.
//! - [`model`], [`normalize`], [`learner`]: the network, normalisation and learner process;
//!   [`limits`]: what clients may hold of the learner.
//! - [`overrides`]: `--set` on the command line, unread sections, plain-worded parser errors.

pub mod a3c;
pub mod dqn;
pub mod impala;
pub mod learner;
pub mod limits;
pub mod model;
pub mod normalize;
pub mod overrides;
pub mod ppo;
pub mod range;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::env;

pub use a3c::{A3cConfig, A3cOptimizer};
pub use dqn::{DqnConfig, EpsilonSchedule};
pub use impala::ImpalaConfig;
pub use learner::{DeviceChoice, EngineChoice, LearnerConfig};
pub use limits::LimitsConfig;
pub use model::ModelConfig;
pub use normalize::NormalizeConfig;
pub use ppo::PpoConfig;
pub use range::{Invalid, Range, Section};

/// Errors loading or checking a run configuration.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for a run config.
    #[error("malformed config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range or inconsistent: names the field, its value and the rule.
    #[error("invalid config: {0}")]
    Invalid(Invalid),
    /// The run's environment cannot be built as specified (an unknown id, frames stacked on an
    /// environment without images).
    #[error(transparent)]
    Env(#[from] env::EnvError),
}

impl From<Invalid> for ConfigError {
    fn from(e: Invalid) -> Self {
        ConfigError::Invalid(e)
    }
}

/// The training algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AlgorithmKind {
    /// Synchronous distributed PPO.
    #[default]
    Ppo,
    /// Asynchronous advantage actor-critic: actors push gradients, the learner applies them as
    /// they arrive.
    A3c,
    /// Distributed DQN (Ape-X): ε-greedy actors push n-step transitions into the learner's
    /// replay buffer.
    Dqn,
    /// Asynchronous actor-critic with V-trace (IMPALA; APPO with `impala.clip_coef`): actors
    /// never wait for a version, the learner corrects their lag.
    Impala,
}

impl AlgorithmKind {
    /// The name the run config uses (`algorithm = "..."`), also recorded in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            AlgorithmKind::Ppo => "ppo",
            AlgorithmKind::A3c => "a3c",
            AlgorithmKind::Dqn => "dqn",
            AlgorithmKind::Impala => "impala",
        }
    }

    /// Every algorithm.
    pub const ALL: [AlgorithmKind; 4] = [
        AlgorithmKind::Ppo,
        AlgorithmKind::A3c,
        AlgorithmKind::Dqn,
        AlgorithmKind::Impala,
    ];

    /// Whether it trains on rollouts that can be normalised (observation normalisation and
    /// reward scaling).
    pub fn normalizes(self) -> bool {
        matches!(self, AlgorithmKind::Ppo | AlgorithmKind::Impala)
    }
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// The one seed that drives everything: model initialisation, minibatch order, and every
    /// actor's environments and action sampling (each actor derives its own seed from it).
    pub seed: u64,
    /// Gymnasium id of the environment.
    pub env_id: String,
    /// Image environments: the last `frame_stack` frames stacked on the channel axis form each
    /// observation (1: the environment's own frame).
    pub frame_stack: usize,
    /// Training algorithm.
    pub algorithm: AlgorithmKind,
    /// Environments stepped together in each actor.
    pub num_envs: usize,
    /// Steps per environment in one rollout.
    pub n_steps: usize,
    /// Stop after this many environment steps (summed over actors).
    pub total_steps: u64,
    /// Stop when the mean return of the last 100 finished episodes reaches this.
    pub target_return: Option<f64>,
    /// Repeat bit for bit: with the same seed and actor count (PPO: `ppo.rollouts_per_update`
    /// actors; DQN: `dqn.num_actors`), the run's parameters, episodes and counts are the same
    /// on every repeat on the same machine. Actors wait for each new version instead of
    /// acting on an older one, so runs are slower; A3C cannot (it applies gradients in arrival
    /// order).
    pub deterministic: bool,
    /// PPO hyperparameters.
    pub ppo: PpoConfig,
    /// A3C hyperparameters.
    pub a3c: A3cConfig,
    /// DQN hyperparameters.
    pub dqn: DqnConfig,
    /// IMPALA / APPO hyperparameters.
    pub impala: ImpalaConfig,
    /// Network shape.
    pub model: ModelConfig,
    /// Observation normalisation and reward scaling.
    pub normalize: NormalizeConfig,
    /// Learner process settings.
    pub learner: LearnerConfig,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            env_id: "CartPole-v1".into(),
            frame_stack: 1,
            algorithm: AlgorithmKind::Ppo,
            num_envs: 4,
            n_steps: 32,
            total_steps: 150_000,
            target_return: None,
            deterministic: false,
            ppo: PpoConfig::default(),
            a3c: A3cConfig::default(),
            dqn: DqnConfig::default(),
            impala: ImpalaConfig::default(),
            model: ModelConfig::default(),
            normalize: NormalizeConfig::default(),
            learner: LearnerConfig::default(),
        }
    }
}

impl RunConfig {
    /// The environment the run trains on, with its frame stacking.
    pub fn env(&self) -> env::EnvSpec {
        env::EnvSpec::stacked(&self.env_id, self.frame_stack)
    }

    /// The discount of the running return rewards are scaled by: the algorithm's γ for IMPALA,
    /// `ppo.gamma` otherwise (every run sends it to its actors).
    pub fn reward_gamma(&self) -> f64 {
        match self.algorithm {
            AlgorithmKind::Impala => self.impala.gamma,
            _ => self.ppo.gamma,
        }
    }

    /// The normalisation actors apply (reward discount from [`RunConfig::reward_gamma`]).
    pub fn normalize_settings(&self) -> crate::normalize::NormalizeSettings {
        crate::normalize::NormalizeSettings {
            observations: self.normalize.observations,
            rewards: self.normalize.rewards,
            clip_observations: self.normalize.clip_observations as f32,
            clip_rewards: self.normalize.clip_rewards as f32,
            gamma: self.reward_gamma(),
            epsilon: self.normalize.epsilon,
        }
    }

    /// Parses TOML text (`origin` names it in errors) without checking ranges: the learner
    /// checks the config it runs once, after command-line overrides ([`RunConfig::validate`]).
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| overrides::parse_error(origin, e))
    }

    /// Parses and checks TOML text.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let config = Self::parse(text, origin)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads a TOML file ([`RunConfig::parse`]: not checked yet).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The config as TOML (what the run directory keeps).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a run config always serialises")
    }

    /// A registered environment exists, and stacks frames only if it observes images.
    fn check_registered_env(&self, top: Section) -> Result<(), ConfigError> {
        let env = env::make(&self.env_id)?;
        if self.frame_stack > 1 && env.observation_space().image_shape().is_none() {
            return Err(top
                .invalid(
                    "frame_stack",
                    self.frame_stack,
                    format!(
                        "only image environments stack frames; {} observes {} (set \
                         frame_stack = 1)",
                        self.env_id,
                        env.observation_space()
                    ),
                )
                .into());
        }
        Ok(())
    }

    /// Checks that the environment exists and every field of the sections the run uses: the
    /// top level, `[model]`, `[normalize]` (with `ppo.gamma`, the discount reward scaling uses,
    /// which every run sends its actors), `[learner]` and the chosen algorithm's section
    /// (another algorithm's section is not read by the run).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let top = Section("");
        top.count(
            "frame_stack",
            self.frame_stack as u64,
            Range::new(
                range::Bound::Closed(1.0),
                range::Bound::Closed(env::MAX_FRAME_STACK as f64),
            ),
        )?;
        if crate::remote::is_remote(&self.env_id) {
            // A served environment's spaces are read from its server when the run starts.
            crate::remote::RemoteEnv::parse(&self.env_id)
                .map_err(|e| top.invalid("env_id", &self.env_id, e.to_string()))?;
            if self.frame_stack > 1 {
                return Err(top
                    .invalid(
                        "frame_stack",
                        self.frame_stack,
                        "a served environment stacks frames on its server (shoal env-server: \
                         add &frame_stack=K to the URL); set frame_stack = 1",
                    )
                    .into());
            }
        } else {
            self.check_registered_env(top)?;
        }
        top.count("num_envs", self.num_envs as u64, Range::AT_LEAST_ONE)?;
        top.count("n_steps", self.n_steps as u64, Range::AT_LEAST_ONE)?;
        self.model.validate()?;
        let mut min_queue = 1;
        match self.algorithm {
            AlgorithmKind::Ppo => {
                self.ppo.validate(self.num_envs * self.n_steps)?;
                min_queue = self.ppo.rollouts_per_update;
            }
            AlgorithmKind::A3c => {
                self.a3c.validate()?;
                if self.deterministic {
                    return Err(top
                        .invalid(
                            "deterministic",
                            true,
                            "A3C applies gradients in arrival order and cannot repeat bit for \
                             bit (use ppo or dqn)",
                        )
                        .into());
                }
            }
            AlgorithmKind::Dqn => self.dqn.validate()?,
            AlgorithmKind::Impala => {
                self.impala.validate(self.num_envs)?;
                min_queue = self.impala.rollouts_per_batch;
                if self.deterministic {
                    return Err(top
                        .invalid(
                            "deterministic",
                            true,
                            "IMPALA trains on rollouts of whatever versions arrive, in arrival \
                             order, and cannot repeat bit for bit (use ppo or dqn)",
                        )
                        .into());
                }
            }
        }
        self.normalize
            .validate(self.algorithm.normalizes(), self.reward_gamma())?;
        self.learner.validate(min_queue)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip_through_toml() {
        let config = RunConfig::default();
        config.validate().unwrap();
        let back = RunConfig::from_toml(&config.to_toml(), Path::new("x.toml")).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn frame_stacking_is_a_top_level_setting_for_image_environments() {
        let c = RunConfig::from_toml(
            "env_id = \"MinBreakout-v0\"\nframe_stack = 4\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(c.env(), env::EnvSpec::stacked("MinBreakout-v0", 4));
        let err = RunConfig::from_toml("frame_stack = 4\n", Path::new("x")).unwrap_err();
        assert!(
            err.to_string().contains("frame_stack")
                && err.to_string().contains("CartPole-v1 observes Box"),
            "{err}"
        );
        for k in [0, env::MAX_FRAME_STACK + 1] {
            let text = format!("env_id = \"Catch-v0\"\nframe_stack = {k}\n");
            let err = RunConfig::from_toml(&text, Path::new("x")).unwrap_err();
            assert!(err.to_string().contains("frame_stack"), "{err}");
        }
    }

    #[test]
    fn partial_files_take_defaults() {
        let c = RunConfig::from_toml("seed = 9\n[ppo]\ngamma = 0.98\n", Path::new("x")).unwrap();
        assert_eq!(c.seed, 9);
        assert_eq!(c.ppo.gamma, 0.98);
        assert_eq!(c.ppo.clip_coef, 0.2);
    }

    #[test]
    fn a3c_is_one_line_away() {
        let c = RunConfig::from_toml("algorithm = \"a3c\"\n", Path::new("x")).unwrap();
        assert_eq!(c.algorithm, AlgorithmKind::A3c);
        assert_eq!(c.a3c.rmsprop_momentum, 0.0);
        let err = RunConfig::from_toml(
            "algorithm = \"a3c\"\n[normalize]\nobservations = true\n",
            Path::new("x"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("normalize"), "{err}");
    }

    #[test]
    fn malformed_and_invalid_configs_are_clear_errors() {
        let err = RunConfig::from_toml("seed = \"one\"", Path::new("bad.toml")).unwrap_err();
        assert!(
            err.to_string().starts_with("malformed config bad.toml"),
            "{err}"
        );
        let err = RunConfig::from_toml("sede = 1", Path::new("bad.toml")).unwrap_err();
        assert!(err.to_string().contains("unknown field `sede`"), "{err}");
        let err = RunConfig::from_toml("env_id = \"Nope-v0\"", Path::new("x")).unwrap_err();
        assert!(
            err.to_string().contains("unknown environment id `Nope-v0`"),
            "{err}"
        );
        let err = RunConfig::from_toml("num_envs = 0", Path::new("x")).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid(_)));
    }

    #[test]
    fn errors_name_the_field_its_value_and_the_range_and_only_used_sections_are_checked() {
        let err = RunConfig::from_toml("[ppo]\nclip_coef = -1\n", Path::new("x")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid config: ppo.clip_coef = -1: must be in (0, 1]"
        );
        // A DQN run does not read [ppo]'s update settings...
        RunConfig::from_toml(
            "algorithm = \"dqn\"\n[ppo]\nclip_coef = -1\n",
            Path::new("x"),
        )
        .unwrap();
        // ...but its actors get ppo.gamma as reward scaling's discount, so it is checked.
        let err = RunConfig::from_toml("algorithm = \"dqn\"\n[ppo]\ngamma = 1.5\n", Path::new("x"))
            .unwrap_err();
        assert!(err.to_string().contains("ppo.gamma = 1.5"), "{err}");
    }

    /// Every leaf of a TOML table as (`section.field`, value).
    fn leaves(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
        for (key, value) in table {
            let name = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(t) => leaves(&name, t, out),
                v => out.push((name, v.clone())),
            }
        }
    }

    #[test]
    fn the_readme_defaults_table_matches_the_defaults_in_code() {
        // Read at run time: a target directory shared between clones may hold a path compiled
        // in by another clone.
        let manifest_dir = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
        let readme = Path::new(&manifest_dir).join("../README.md");
        let readme = std::fs::read_to_string(readme).unwrap();
        let section = readme
            .split("## Configuration reference")
            .nth(1)
            .expect("README has a configuration reference");
        // Rows `| `field` | default | meaning |`; `none` is a field without a default.
        let mut documented = std::collections::BTreeMap::new();
        for line in section.lines().take_while(|l| !l.starts_with("## ")) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() < 4 || !cells[1].starts_with('`') {
                continue;
            }
            let field = cells[1].trim_matches('`').to_string();
            let value = match cells[2] {
                "none" => None,
                cell => Some(
                    toml::from_str::<toml::Table>(&format!("v = {}", cell.replace('`', "")))
                        .unwrap_or_else(|e| panic!("README default of {field}: {e}"))["v"]
                        .clone(),
                ),
            };
            assert!(
                documented.insert(field.clone(), value).is_none(),
                "{field} is documented twice"
            );
        }
        let defaults: toml::Table = toml::from_str(&RunConfig::default().to_toml()).unwrap();
        let mut in_code = Vec::new();
        leaves("", &defaults, &mut in_code);
        let as_f64 = |v: &toml::Value| match v {
            toml::Value::Integer(i) => Some(*i as f64),
            toml::Value::Float(f) => Some(*f),
            _ => None,
        };
        for (field, value) in &in_code {
            let doc = documented
                .remove(field)
                .unwrap_or_else(|| panic!("{field} is missing from README's configuration table"));
            let doc = doc.unwrap_or_else(|| panic!("README says {field} has no default"));
            let same = match (as_f64(value), as_f64(&doc)) {
                (Some(a), Some(b)) => a == b,
                _ => *value == doc,
            };
            assert!(same, "{field}: README says {doc}, the code {value}");
        }
        // What is left has no default in code (an optional field) or is not a field at all.
        for (field, doc) in documented {
            assert!(
                doc.is_none() && ["target_return", "impala.clip_coef"].contains(&field.as_str()),
                "README documents `{field}`, which is not a config field with that default"
            );
        }
    }
}
