//! A trained policy from a checkpoint: `shoal eval` runs it, `shoal export` writes it as
//! safetensors.
//!
//! Exported tensors (names and shapes; the network computes `x·W + b` with `W` of shape
//! `[in, out]`, the hidden layers then apply the run's activation):
//!
//! | name | shape | dtype |
//! |---|---|---|
//! | `actor.layers.{i}.weight`, `actor.layers.{i}.bias` | `[in, out]`, `[out]` | F32 |
//! | `critic.layers.{i}.weight`, `critic.layers.{i}.bias` | `[in, out]`, `[out]` | F32 |
//! | `log_std` (Gaussian policies) | `[A]` | F32 |
//! | `encoder.Conv.convs.{i}.weight`, `.bias` (`nature_cnn`, `small_cnn`) | `[out, in, k, k]`, `[out]` | F32 |
//! | `encoder.Conv.fc.weight`, `encoder.Conv.fc.bias` | `[in, out]`, `[out]` | F32 |
//! | `obs_normalization.mean`, `obs_normalization.var` (runs that normalise observations) | `[O]` | F64 |
//!
//! The metadata says how to use them: `env_id`, `action_distribution` (`categorical`: softmax
//! of the actor's outputs; `gaussian`: the actor's output is the mean), `activation`,
//! `encoder` and `image_shape` (`[C, H, W]` for image observations, which the network divides
//! by 255 first; with `frame_stack` k > 1 the channels are the last k frames, oldest first),
//! `conv_strides` (a CNN encoder's convolutions: no padding, ReLU after each, then its dense
//! layer `encoder.Conv.fc` with ReLU; the heads read its output), `hidden` (the heads' hidden
//! widths: none on a CNN's features),
//! `obs_normalization` (`clip((obs − mean)/sqrt(var + epsilon), ±clip)` with the given
//! `obs_clip` and `obs_epsilon`, or `off`), and the checkpoint's `version` and `env_steps`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use shoal_actor::policy::Policy;
use shoal_common::config::RunConfig;
use shoal_common::evaluate::{Episode, evaluate_deterministic, mean_std};
use shoal_common::model::{ActionHead, EncoderKind, Input, ModelSpec};
use shoal_common::normalize::Normalizer;
use shoal_learner::LearnerError;
use shoal_learner::checkpoint::{self, Checkpoint};
use thiserror::Error;

/// Why a policy could not be loaded, evaluated or exported.
#[derive(Debug, Error)]
pub enum PolicyError {
    /// The checkpoint or its run is unusable.
    #[error(transparent)]
    Learner(#[from] LearnerError),
    /// The run's environment cannot be built as specified.
    #[error(transparent)]
    Env(#[from] shoal_common::env::EnvError),
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The safetensors encoding failed.
    #[error("safetensors: {0}")]
    SafeTensors(#[from] safetensors::SafeTensorError),
}

/// A checkpoint with the run it belongs to.
pub struct LoadedPolicy {
    /// The run's config.
    pub config: RunConfig,
    /// Its network.
    pub spec: ModelSpec,
    /// The checkpoint.
    pub checkpoint: Checkpoint,
}

impl LoadedPolicy {
    /// Loads `path`: a checkpoint directory, or a run directory (its newest checkpoint).
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let (run_dir, dir) = checkpoint::locate(path).map_err(LearnerError::from)?;
        let config = RunConfig::load(&run_dir.join("config.toml")).map_err(LearnerError::from)?;
        let spec = shoal_learner::model_spec(&config)?;
        let checkpoint =
            checkpoint::load(&dir, config.algorithm, &spec.layout()).map_err(LearnerError::from)?;
        Ok(Self {
            config,
            spec,
            checkpoint,
        })
    }

    /// How observations are normalised, as in training.
    pub fn normalizer(&self) -> Normalizer {
        Normalizer::new(
            self.config.normalize_settings(),
            &self.checkpoint.normalization,
        )
    }

    /// `episodes` deterministic episodes (greedy / the Gaussian's mean), seeded with `seed`.
    pub fn evaluate(&self, episodes: usize, seed: u64) -> Result<Vec<Episode>, PolicyError> {
        let policy = Policy::new(&self.spec, &self.checkpoint.params, 0, Normalizer::off(0));
        Ok(evaluate_deterministic(
            &self.spec,
            &mut |obs| policy.outputs(obs),
            &self.normalizer(),
            &self.config.env(),
            episodes,
            seed,
        )?)
    }

    /// Writes the policy as safetensors to `out` (see the module docs for the names).
    pub fn export_safetensors(&self, out: &Path) -> Result<(), PolicyError> {
        let layout = self.spec.layout();
        let params = &self.checkpoint.params;
        let mut bytes: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
        let mut offset = 0;
        for entry in layout.entries() {
            let n = entry.num_floats();
            let data = params[offset..offset + n]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            offset += n;
            bytes.push((entry.path.clone(), Dtype::F32, entry.shape.clone(), data));
        }
        let norm = self.config.normalize_settings();
        if norm.observations {
            let obs = &self.checkpoint.normalization.observations;
            let f64s = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
            let o = self.spec.obs_dim;
            bytes.push((
                "obs_normalization.mean".into(),
                Dtype::F64,
                vec![o],
                f64s(&obs.mean),
            ));
            bytes.push((
                "obs_normalization.var".into(),
                Dtype::F64,
                vec![o],
                f64s(&obs.variance()),
            ));
        }
        let views = bytes
            .iter()
            .map(|(name, dtype, shape, data)| {
                Ok((name.clone(), TensorView::new(*dtype, shape.clone(), data)?))
            })
            .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
        let (distribution, actions) = match self.spec.action {
            ActionHead::Categorical(n) => ("categorical", n),
            ActionHead::Gaussian(a) => ("gaussian", a),
        };
        let c = &self.checkpoint.counters;
        let metadata: HashMap<String, String> = [
            ("format", "shoal-policy-v1".to_string()),
            ("env_id", self.config.env_id.clone()),
            ("frame_stack", self.config.frame_stack.to_string()),
            ("algorithm", self.config.algorithm.name().to_string()),
            ("action_distribution", distribution.to_string()),
            ("num_actions", actions.to_string()),
            ("obs_dim", self.spec.obs_dim.to_string()),
            ("encoder", self.spec.encoder.name().to_string()),
            (
                "image_shape",
                self.spec
                    .image()
                    .map_or_else(String::new, |s| serde_json::to_string(&s).expect("json")),
            ),
            (
                "token_shape",
                match self.spec.input {
                    Input::Tokens { length, vocab } => format!("[{length}, {vocab}]"),
                    _ => String::new(),
                },
            ),
            (
                "transformer",
                match self.spec.encoder {
                    EncoderKind::Transformer => {
                        serde_json::to_string(&self.spec.sequence).expect("json")
                    }
                    _ => String::new(),
                },
            ),
            (
                "hidden",
                serde_json::to_string(self.spec.head_hidden()).expect("json"),
            ),
            (
                "conv_strides",
                serde_json::to_string(
                    &self
                        .spec
                        .encoder
                        .conv_layers()
                        .iter()
                        .map(|l| l.stride)
                        .collect::<Vec<_>>(),
                )
                .expect("json"),
            ),
            (
                "activation",
                serde_json::to_value(self.spec.activation)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            ),
            ("layer", "x @ weight + bias, weight [in, out]".to_string()),
            (
                "obs_normalization",
                if norm.observations { "on" } else { "off" }.to_string(),
            ),
            ("obs_clip", norm.clip_observations.to_string()),
            ("obs_epsilon", norm.epsilon.to_string()),
            ("model_fingerprint", self.spec.layout().fingerprint()),
            ("version", c.version.to_string()),
            ("env_steps", c.env_steps.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let encoded = safetensors::serialize(views, Some(metadata))?;
        std::fs::write(out, encoded).map_err(|source| PolicyError::Io {
            path: out.to_path_buf(),
            source,
        })
    }
}

/// What `shoal eval` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalReport {
    /// Episodes run.
    pub episodes: usize,
    /// Mean return.
    pub return_mean: f64,
    /// Standard deviation of the returns.
    pub return_std: f64,
    /// Mean episode length.
    pub length_mean: f64,
    /// Standard deviation of the lengths.
    pub length_std: f64,
    /// The checkpoint evaluated.
    pub checkpoint: PathBuf,
}

impl EvalReport {
    /// Summarises `episodes` of `checkpoint`.
    pub fn new(episodes: &[Episode], checkpoint: &Path) -> Self {
        let returns: Vec<f64> = episodes.iter().map(|e| e.episode_return).collect();
        let lengths: Vec<f64> = episodes.iter().map(|e| e.length as f64).collect();
        let (return_mean, return_std) = mean_std(&returns);
        let (length_mean, length_std) = mean_std(&lengths);
        Self {
            episodes: episodes.len(),
            return_mean,
            return_std,
            length_mean,
            length_std,
            checkpoint: checkpoint.to_path_buf(),
        }
    }

    /// One line for people.
    pub fn line(&self) -> String {
        format!(
            "{} episodes: return {:.2} ± {:.2}, length {:.1} ± {:.1} ({})",
            self.episodes,
            self.return_mean,
            self.return_std,
            self.length_mean,
            self.length_std,
            self.checkpoint.display()
        )
    }
}

/// Writes `episodes` as CSV (`episode,return,length`) to `path`.
pub fn record(episodes: &[Episode], path: &Path) -> Result<(), PolicyError> {
    let mut text = String::from("episode,return,length\n");
    for (i, e) in episodes.iter().enumerate() {
        text.push_str(&format!("{i},{},{}\n", e.episode_return, e.length));
    }
    std::fs::write(path, text).map_err(|source| PolicyError::Io {
        path: path.to_path_buf(),
        source,
    })
}
