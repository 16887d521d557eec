//! The run configuration: one TOML file per run, every field documented and defaulted.
//!
//! The learner reads it; actors receive the part they must follow at registration. The file the
//! run used is saved in its run directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::env;
use crate::model::Activation;

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
    /// A value is out of range or inconsistent.
    #[error("invalid config: {0}")]
    Invalid(String),
    /// The environment id is not registered.
    #[error(transparent)]
    Env(#[from] env::EnvError),
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
}

impl AlgorithmKind {
    /// The name the run config uses (`algorithm = "..."`), also recorded in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            AlgorithmKind::Ppo => "ppo",
            AlgorithmKind::A3c => "a3c",
            AlgorithmKind::Dqn => "dqn",
        }
    }
}

/// How DQN actors explore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EpsilonSchedule {
    /// Ape-X: a fixed ε per actor, `epsilon^(1 + epsilon_alpha·i/(N − 1))` for actor i of N.
    #[default]
    Apex,
    /// One ε for every actor, decaying linearly from `epsilon_start` to `epsilon_final` over
    /// the first `exploration_fraction · total_steps` environment steps (as Stable-Baselines3).
    Linear,
}

/// DQN hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DqnConfig {
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Adam ε. Larger values (Rainbow: 1.5e-4) damp the steps Adam takes when a gradient
    /// follows a long run of near-zero ones, as happens once Q has converged.
    pub adam_eps: f64,
    /// Discount γ.
    pub gamma: f64,
    /// Steps summed into each transition's return.
    pub n_step: usize,
    /// Replay capacity (transitions).
    pub buffer_size: usize,
    /// Transitions in the buffer before updates start.
    pub learning_starts: usize,
    /// Sampled transitions per update.
    pub batch_size: usize,
    /// Gradient updates per inserted transition, whatever the number of actors.
    pub replay_ratio: f64,
    /// Update the target network every this many updates.
    pub target_update_interval: u64,
    /// Polyak coefficient of a target update: `θ' ← τ·θ + (1 − τ)·θ'` (1: a hard copy).
    pub tau: f64,
    /// Publish parameters to actors every this many updates.
    pub publish_interval: u64,
    /// Global gradient-norm clip.
    pub max_grad_norm: f64,
    /// Prioritised replay (sum-tree, importance weights).
    pub prioritized: bool,
    /// Priority exponent α.
    pub priority_alpha: f64,
    /// Importance-sampling exponent β at the start, annealed linearly to 1 over `total_steps`.
    pub priority_beta: f64,
    /// The exploration schedule: per-actor Ape-X ε, or one linearly decaying ε.
    pub epsilon_schedule: EpsilonSchedule,
    /// Ape-X: actor i of `num_actors` explores with `epsilon^(1 + epsilon_alpha·i/(N − 1))`.
    pub epsilon: f64,
    /// Ape-X's α.
    pub epsilon_alpha: f64,
    /// N of the schedule (the number of actors the run is meant for).
    pub num_actors: usize,
    /// Linear schedule: ε at the start.
    pub epsilon_start: f64,
    /// Linear schedule: ε after the decay.
    pub epsilon_final: f64,
    /// Linear schedule: the fraction of `total_steps` over which ε decays.
    pub exploration_fraction: f64,
    /// Run greedy evaluation episodes every this many updates.
    pub eval_interval: u64,
    /// Greedy episodes per evaluation.
    pub eval_episodes: usize,
    /// Save the replay buffer in checkpoints, so that a resumed run keeps its experience
    /// (costs `buffer_size × (2·obs_dim + 3)` floats of disk per checkpoint).
    pub checkpoint_replay: bool,
}

impl Default for DqnConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            adam_eps: 1e-5,
            gamma: 0.99,
            n_step: 3,
            buffer_size: 100_000,
            learning_starts: 1_000,
            batch_size: 64,
            replay_ratio: 0.5,
            target_update_interval: 250,
            tau: 1.0,
            publish_interval: 10,
            max_grad_norm: 10.0,
            prioritized: false,
            priority_alpha: 0.6,
            priority_beta: 0.4,
            epsilon_schedule: EpsilonSchedule::Apex,
            epsilon: 0.4,
            epsilon_alpha: 7.0,
            num_actors: 2,
            epsilon_start: 1.0,
            epsilon_final: 0.05,
            exploration_fraction: 0.1,
            eval_interval: 500,
            eval_episodes: 10,
            checkpoint_replay: false,
        }
    }
}

/// A3C's optimizer on the learner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum A3cOptimizer {
    /// RMSProp as in the A3C paper (shared statistics, no momentum unless configured).
    #[default]
    Rmsprop,
    /// Adam.
    Adam,
}

/// A3C hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct A3cConfig {
    /// Optimizer applied to every pushed gradient.
    pub optimizer: A3cOptimizer,
    /// Learning rate.
    pub learning_rate: f64,
    /// RMSProp smoothing constant α.
    pub rmsprop_alpha: f64,
    /// RMSProp momentum. The A3C paper uses none; burn's own default is 0.9, so it is set
    /// explicitly.
    pub rmsprop_momentum: f64,
    /// RMSProp / Adam ε.
    pub epsilon: f64,
    /// Discount γ of the n-step returns.
    pub gamma: f64,
    /// Value loss weight.
    pub vf_coef: f64,
    /// Entropy bonus weight.
    pub ent_coef: f64,
    /// Global gradient-norm clip, applied by the learner to each gradient.
    pub max_grad_norm: f64,
    /// A gradient computed on a version more than this many versions old is dropped (counted).
    pub max_staleness: u64,
}

impl Default for A3cConfig {
    fn default() -> Self {
        Self {
            optimizer: A3cOptimizer::Rmsprop,
            learning_rate: 7e-4,
            rmsprop_alpha: 0.99,
            rmsprop_momentum: 0.0,
            epsilon: 1e-5,
            gamma: 0.99,
            vf_coef: 0.5,
            ent_coef: 0.01,
            max_grad_norm: 0.5,
            max_staleness: 16,
        }
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
    /// PPO hyperparameters.
    pub ppo: PpoConfig,
    /// A3C hyperparameters.
    pub a3c: A3cConfig,
    /// DQN hyperparameters.
    pub dqn: DqnConfig,
    /// Network shape.
    pub model: ModelConfig,
    /// Observation normalisation and reward scaling.
    pub normalize: NormalizeConfig,
    /// Learner process settings.
    pub learner: LearnerConfig,
}

/// Observation normalisation and reward scaling, as Stable-Baselines3's `VecNormalize`, with
/// statistics merged across all actors by the learner and shipped with each parameter version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NormalizeConfig {
    /// Normalise observations to zero mean and unit variance.
    pub observations: bool,
    /// Divide rewards by the standard deviation of the discounted return (discount `ppo.gamma`).
    pub rewards: bool,
    /// Clip normalised observations to `±clip_observations`.
    pub clip_observations: f64,
    /// Clip scaled rewards to `±clip_rewards`.
    pub clip_rewards: f64,
    /// Added to variances before the square root.
    pub epsilon: f64,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        Self {
            observations: false,
            rewards: false,
            clip_observations: 10.0,
            clip_rewards: 10.0,
            epsilon: 1e-8,
        }
    }
}

/// PPO hyperparameters (names as in CleanRL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PpoConfig {
    /// Rollouts (from any actors, made with the current version) consumed per update.
    pub rollouts_per_update: usize,
    /// Adam learning rate at the start.
    pub learning_rate: f64,
    /// Anneal the learning rate linearly to 0 over `total_steps`.
    pub anneal_lr: bool,
    /// Anneal the clip coefficient linearly to 0 over `total_steps` (rl-zoo's `lin_0.2`).
    pub anneal_clip_coef: bool,
    /// Discount factor γ.
    pub gamma: f64,
    /// GAE λ.
    pub gae_lambda: f64,
    /// Surrogate clipping coefficient ε.
    pub clip_coef: f64,
    /// Entropy bonus coefficient.
    pub ent_coef: f64,
    /// Value loss coefficient.
    pub vf_coef: f64,
    /// Global gradient-norm clip.
    pub max_grad_norm: f64,
    /// Passes over each batch.
    pub update_epochs: usize,
    /// Minibatches per pass.
    pub num_minibatches: usize,
    /// Normalise advantages within each minibatch.
    pub norm_adv: bool,
    /// Adam ε.
    pub adam_eps: f64,
}

/// Network shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Hidden layer widths of the policy and of the value network.
    pub hidden: Vec<usize>,
    /// Hidden-layer non-linearity: `tanh` or `relu`.
    pub activation: Activation,
}

/// Where the learner trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// A real GPU through wgpu when one is found, else flex. Software adapters never win.
    #[default]
    Auto,
    /// burn's pure-Rust CPU backend.
    Flex,
    /// burn's wgpu backend, whatever adapter it finds (including software ones).
    Wgpu,
}

/// Learner process settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearnerConfig {
    /// Training device.
    pub device: DeviceChoice,
    /// Capacity of the queue between the gRPC handlers and the trainer thread (rollouts).
    pub queue_capacity: usize,
    /// Seconds between status lines (and `metrics.jsonl` rows).
    pub status_interval_secs: f64,
    /// How long an actor waits for a newer version after a push before it collects with the
    /// parameters it has (milliseconds).
    pub param_wait_ms: u32,
    /// An actor silent this long (no call, no open stream; a dead connection is noticed by
    /// HTTP/2 keepalive pings within this time too) is forgotten. Synchronous PPO waits at most
    /// this long for missing actors' rollouts before it updates on the ones it has.
    pub actor_timeout_secs: f64,
    /// Write a checkpoint every this many seconds (0: not on time).
    pub checkpoint_interval_secs: f64,
    /// Write a checkpoint every this many updates (0: not on updates).
    pub checkpoint_interval_updates: u64,
    /// Periodic checkpoints kept (the oldest are deleted); `final` is kept besides.
    pub keep_checkpoints: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            env_id: "CartPole-v1".into(),
            algorithm: AlgorithmKind::Ppo,
            num_envs: 4,
            n_steps: 32,
            total_steps: 150_000,
            target_return: None,
            ppo: PpoConfig::default(),
            a3c: A3cConfig::default(),
            dqn: DqnConfig::default(),
            model: ModelConfig::default(),
            normalize: NormalizeConfig::default(),
            learner: LearnerConfig::default(),
        }
    }
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            rollouts_per_update: 2,
            learning_rate: 2.5e-4,
            anneal_lr: true,
            anneal_clip_coef: false,
            gamma: 0.99,
            gae_lambda: 0.95,
            clip_coef: 0.2,
            ent_coef: 0.0,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            update_epochs: 10,
            num_minibatches: 4,
            norm_adv: true,
            adam_eps: 1e-5,
        }
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            hidden: vec![64, 64],
            activation: Activation::Tanh,
        }
    }
}

impl Default for LearnerConfig {
    fn default() -> Self {
        Self {
            device: DeviceChoice::Auto,
            queue_capacity: 64,
            status_interval_secs: 2.0,
            param_wait_ms: 2_000,
            actor_timeout_secs: 10.0,
            checkpoint_interval_secs: 60.0,
            checkpoint_interval_updates: 0,
            keep_checkpoints: 3,
        }
    }
}

impl RunConfig {
    /// The normalisation actors apply (reward discount from `ppo.gamma`).
    pub fn normalize_settings(&self) -> crate::normalize::NormalizeSettings {
        crate::normalize::NormalizeSettings {
            observations: self.normalize.observations,
            rewards: self.normalize.rewards,
            clip_observations: self.normalize.clip_observations as f32,
            clip_rewards: self.normalize.clip_rewards as f32,
            gamma: self.ppo.gamma,
            epsilon: self.normalize.epsilon,
        }
    }

    /// Parses TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let config: RunConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and checks a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// The config as TOML (what the run directory keeps).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a run config always serialises")
    }

    /// Checks ranges and that the environment exists.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        env::make(&self.env_id)?;
        let p = &self.ppo;
        if self.num_envs == 0 || self.n_steps == 0 {
            return invalid("num_envs and n_steps must be at least 1");
        }
        if p.rollouts_per_update == 0 || p.update_epochs == 0 || p.num_minibatches == 0 {
            return invalid(
                "ppo.rollouts_per_update, update_epochs and num_minibatches must be at least 1",
            );
        }
        let batch = self.num_envs * self.n_steps * p.rollouts_per_update;
        if p.num_minibatches > batch {
            return invalid("ppo.num_minibatches exceeds the batch size");
        }
        if !(0.0..=1.0).contains(&p.gamma) || !(0.0..=1.0).contains(&p.gae_lambda) {
            return invalid("ppo.gamma and ppo.gae_lambda must be in [0, 1]");
        }
        // Written so that NaN counts as not positive.
        let positive = |x: f64| x > 0.0;
        if ![p.learning_rate, p.clip_coef, p.max_grad_norm]
            .into_iter()
            .all(positive)
        {
            return invalid("ppo.learning_rate, clip_coef and max_grad_norm must be positive");
        }
        if self.model.hidden.is_empty() || self.model.hidden.contains(&0) {
            return invalid("model.hidden needs at least one non-zero layer width");
        }
        let a = &self.a3c;
        if !(positive(a.learning_rate)
            && positive(a.epsilon)
            && positive(a.max_grad_norm)
            && (0.0..=1.0).contains(&a.gamma)
            && (0.0..1.0).contains(&a.rmsprop_alpha)
            && (0.0..1.0).contains(&a.rmsprop_momentum))
        {
            return invalid(
                "a3c: learning_rate, epsilon and max_grad_norm must be positive, gamma in [0, 1], \
                 rmsprop_alpha and rmsprop_momentum in [0, 1)",
            );
        }
        let d = &self.dqn;
        if !(positive(d.learning_rate)
            && positive(d.replay_ratio)
            && positive(d.max_grad_norm)
            && (0.0..=1.0).contains(&d.gamma)
            && (0.0..=1.0).contains(&d.epsilon)
            && (0.0..=1.0).contains(&d.epsilon_start)
            && (0.0..=1.0).contains(&d.epsilon_final)
            && (0.0..=1.0).contains(&d.exploration_fraction)
            && d.tau > 0.0
            && d.tau <= 1.0
            && d.n_step >= 1
            && d.batch_size >= 1
            && d.buffer_size >= d.batch_size
            && d.num_actors >= 1
            && d.target_update_interval >= 1
            && d.publish_interval >= 1
            && d.eval_interval >= 1
            && d.eval_episodes >= 1)
        {
            return invalid(
                "dqn: learning_rate, replay_ratio and max_grad_norm must be positive, tau in \
                 (0, 1], gamma, the epsilons and exploration_fraction in [0, 1], n_step, \
                 batch_size, num_actors and the intervals at least 1, buffer_size at least \
                 batch_size",
            );
        }
        let n = &self.normalize;
        if self.algorithm != AlgorithmKind::Ppo && (n.observations || n.rewards) {
            return invalid("normalize is supported with algorithm = \"ppo\" only in this version");
        }
        if ![n.clip_observations, n.clip_rewards, n.epsilon]
            .into_iter()
            .all(positive)
        {
            return invalid(
                "normalize.clip_observations, clip_rewards and epsilon must be positive",
            );
        }
        if self.learner.queue_capacity < p.rollouts_per_update {
            return invalid("learner.queue_capacity must hold at least ppo.rollouts_per_update");
        }
        let l = &self.learner;
        if !positive(l.status_interval_secs) || !positive(l.actor_timeout_secs) {
            return invalid("learner.status_interval_secs and actor_timeout_secs must be positive");
        }
        if l.checkpoint_interval_secs.is_nan()
            || l.checkpoint_interval_secs < 0.0
            || l.keep_checkpoints == 0
        {
            return invalid(
                "learner.checkpoint_interval_secs must be at least 0 and keep_checkpoints at least 1",
            );
        }
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
}
