//! Supervised warm start (`shoal pretrain`): the policy of a text task learns the next token of
//! demonstrations by teacher forcing and cross-entropy. The result is a run directory whose
//! final checkpoint `shoal train --init` starts reinforcement learning from and `shoal eval`
//! evaluates like any other.

use std::path::{Path, PathBuf};

use serde::Serialize;
use shoal_common::codec::ParamLayout;
use shoal_common::config::RunConfig;
use shoal_common::env::Space;
use shoal_common::env::text::demos::Demonstration;
use shoal_common::normalize::NormStats;
use shoal_common::obs::Observations;
use shoal_common::rng::{Rng, derive_seed, streams};
use shoal_common::sources;
use shoal_compute::{HeadGrads, Optimizer, Rows, Want};

use crate::checkpoint::{self, CheckpointContent};
use crate::edge::actor_ids::IdKey;
use crate::error::LearnerError;
use crate::run_dir::{self, RunDir};
use crate::telemetry::RunCounters;

/// Most demonstrations read from one file.
pub const MAX_DEMONSTRATIONS: usize = 1_000_000;
/// Most bytes of teacher-forcing rows held at once (each row is an observation, L + 1 bytes).
pub const MAX_ROW_BYTES: usize = 1 << 30;

/// What `shoal pretrain` is asked to do.
#[derive(Debug, Clone)]
pub struct PretrainOptions {
    /// The run config: its environment (a text task), model and seed.
    pub config: RunConfig,
    /// The demonstrations file (`PROMPT=ANSWER` per line).
    pub data: PathBuf,
    /// The run directory to write.
    pub run_dir: PathBuf,
    /// Replace a run the directory holds.
    pub overwrite: bool,
    /// Passes over the demonstrations.
    pub epochs: usize,
    /// Tokens per gradient step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
}

/// One epoch's means.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EpochStats {
    /// 1-based.
    pub epoch: usize,
    /// Mean cross-entropy per token (nats).
    pub loss: f64,
    /// Fraction of tokens whose most likely prediction is the demonstrated one.
    pub token_accuracy: f64,
}

/// What pretraining did (also written to `RUN_DIR/pretrain.json`).
#[derive(Debug, Clone, Serialize)]
pub struct PretrainReport {
    /// Demonstrations read.
    pub examples: usize,
    /// Tokens predicted per epoch (answers plus their EOS).
    pub tokens: usize,
    /// Per epoch.
    pub epochs: Vec<EpochStats>,
    /// The checkpoint written.
    pub checkpoint: PathBuf,
}

/// The mean cross-entropy of `targets` under `logits` (`[rows, V]`) and its gradient at the
/// logits: `d_logits = (softmax(z) − onehot(target)) / rows`. Returns the loss summed over the
/// rows and how many rows predicted their target (argmax).
pub fn cross_entropy_grad(logits: &[f32], targets: &[i64], d_logits: &mut [f32]) -> (f64, usize) {
    let rows = targets.len();
    let v = logits.len() / rows.max(1);
    let (mut loss, mut right) = (0.0f64, 0usize);
    for (i, &t) in targets.iter().enumerate() {
        let z = &logits[i * v..(i + 1) * v];
        let d = &mut d_logits[i * v..(i + 1) * v];
        let max = z.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
        let sum: f64 = z.iter().map(|&x| (x as f64 - max).exp()).sum();
        let lse = max + sum.ln();
        loss += lse - z[t as usize] as f64;
        right += usize::from(shoal_common::model::argmax(z) == t as usize);
        for (k, (dk, &x)) in d.iter_mut().zip(z).enumerate() {
            let p = (x as f64 - lse).exp();
            *dk = ((p - f64::from(k == t as usize)) / rows as f64) as f32;
        }
    }
    (loss, right)
}

/// The teacher-forcing rows of a demonstrations file.
struct Examples {
    /// Demonstrations read.
    count: usize,
    /// The observations, `L + 1` bytes each, row after row.
    rows: Vec<u8>,
    /// The token that follows each row.
    targets: Vec<i64>,
}

/// Reads the demonstrations in `path` into teacher-forcing rows of observations of `length`
/// tokens, in one pass.
fn read(path: &Path, length: usize) -> Result<Examples, LearnerError> {
    let text = std::fs::read_to_string(path).map_err(|source| LearnerError::RunDir {
        path: path.to_path_buf(),
        source,
    })?;
    let mut examples = Examples {
        count: 0,
        rows: Vec::new(),
        targets: Vec::new(),
    };
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad =
            |why: String| LearnerError::Usage(format!("{} line {}: {why}", path.display(), i + 1));
        if examples.count == MAX_DEMONSTRATIONS {
            return Err(bad(format!(
                "more than {MAX_DEMONSTRATIONS} demonstrations"
            )));
        }
        let forced = Demonstration::parse(line)
            .and_then(|demo| demo.teacher_forcing(length))
            .map_err(|e| bad(e.to_string()))?;
        for (row, next) in forced {
            if examples.rows.len() + row.len() > MAX_ROW_BYTES {
                return Err(bad(format!(
                    "the demonstrations make more than {MAX_ROW_BYTES} bytes of observations; \
                     use fewer"
                )));
            }
            examples.rows.extend(row);
            examples.targets.push(i64::from(next));
        }
        examples.count += 1;
    }
    if examples.count == 0 {
        return Err(LearnerError::Usage(format!(
            "{}: no demonstrations (lines PROMPT=ANSWER)",
            path.display()
        )));
    }
    Ok(examples)
}

/// Trains the run's policy on the demonstrations and writes `RUN_DIR/checkpoints/final`.
pub fn pretrain(options: PretrainOptions) -> Result<PretrainReport, LearnerError> {
    let config = &options.config;
    config.validate()?;
    if options.epochs == 0
        || options.batch_size == 0
        || !(options.learning_rate.is_finite() && options.learning_rate > 0.0)
    {
        return Err(LearnerError::Usage(format!(
            "pretrain: epochs and batch size must be at least 1 and the learning rate positive \
             (got {}, {}, {})",
            options.epochs, options.batch_size, options.learning_rate
        )));
    }
    // Refused before the training, not after it.
    if run_dir::holds_run(&options.run_dir) && !options.overwrite {
        return Err(LearnerError::RunDirTaken(options.run_dir.clone()));
    }
    let shape = sources::shape(&config.env()).map_err(shoal_common::config::ConfigError::from)?;
    let Space::Tokens { length, .. } = shape.observation_space else {
        return Err(LearnerError::Unsupported {
            env_id: config.env_id.clone(),
            what: format!(
                "pretraining on {} observations (text tasks only)",
                shape.observation_space
            ),
        });
    };
    let spec = crate::run::model_spec(config)?;
    let Examples {
        count,
        rows,
        targets,
    } = read(&options.data, length)?;
    let n = targets.len();
    let o = spec.obs_dim;
    let (engine, _) = crate::device::select_engine(&config.learner)?;
    let initial = spec.init_params(derive_seed(config.seed, streams::MODEL_INIT));
    // burn's Adam defaults (ε = 1e-5), as before the engines.
    let mut model = engine.training(&spec, &initial, Optimizer::Adam { epsilon: 1e-5 });
    let mut rng = Rng::new(derive_seed(config.seed, streams::LEARNER));
    let mut order: Vec<usize> = (0..n).collect();
    let mut epochs = Vec::with_capacity(options.epochs);
    let batch = options.batch_size;
    for epoch in 1..=options.epochs {
        rng.shuffle(&mut order);
        let (mut loss_sum, mut right) = (0.0, 0usize);
        for chunk in order.chunks(batch) {
            let m = chunk.len();
            let mut obs = Vec::with_capacity(m * o);
            let mut labels = Vec::with_capacity(m);
            for &i in chunk {
                obs.extend_from_slice(&rows[i * o..(i + 1) * o]);
                labels.push(targets[i]);
            }
            let obs = Observations::U8(obs);
            let logits = model.forward(Rows::from(&obs), Want::POLICY).policy;
            let mut d_logits = vec![0.0f32; logits.len()];
            let (loss, hits) = cross_entropy_grad(&logits, &labels, &mut d_logits);
            model.backward(HeadGrads {
                policy: Some(&d_logits),
                ..HeadGrads::default()
            });
            model.step(options.learning_rate, 1.0);
            loss_sum += loss;
            right += hits;
        }
        let stats = EpochStats {
            epoch,
            loss: loss_sum / n as f64,
            token_accuracy: right as f64 / n as f64,
        };
        tracing::info!(
            epoch,
            loss = format_args!("{:.4}", stats.loss),
            token_accuracy = format_args!("{:.4}", stats.token_accuracy),
            "pretraining"
        );
        epochs.push(stats);
    }
    let params = model.params();
    let checkpoint = write(&options, &spec.layout(), &params, length)?;
    let report = PretrainReport {
        examples: count,
        tokens: n,
        epochs,
        checkpoint,
    };
    let json = options.run_dir.join("pretrain.json");
    std::fs::write(
        &json,
        serde_json::to_string_pretty(&report).expect("report serialises"),
    )
    .map_err(|source| LearnerError::RunDir { path: json, source })?;
    Ok(report)
}

/// The run directory with its config and the final checkpoint.
fn write(
    options: &PretrainOptions,
    layout: &ParamLayout,
    params: &[f32],
    length: usize,
) -> Result<PathBuf, LearnerError> {
    let path = &options.run_dir;
    if run_dir::holds_run(path) {
        if !options.overwrite {
            return Err(LearnerError::RunDirTaken(path.clone()));
        }
        run_dir::clear_run(path)?;
    }
    RunDir::create(path, &options.config)?;
    let key = IdKey::generate().map_err(|source| LearnerError::RunDir {
        path: "/dev/urandom".into(),
        source,
    })?;
    let content = CheckpointContent {
        algorithm: options.config.algorithm,
        layout,
        params,
        normalization: &NormStats::new(0),
        counters: &RunCounters::default(),
        actor_id_key: &key,
    };
    let dir = checkpoint::write(path, "final", &content, |_| {
        Ok(serde_json::json!({ "pretrained": { "data": options.data, "length": length } }))
    })?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{Device, Int, Tensor, TensorData};

    /// The cross-entropy's gradient at the logits against burn's autodiff of the tensor loss,
    /// and its value against a plain loop, over seeded logits.
    #[test]
    fn cross_entropy_grad_matches_autodiff_and_a_plain_loop() {
        let mut rng = Rng::new(4);
        let (b, v) = (6, 5);
        let logits: Vec<f32> = (0..b * v).map(|_| (3.0 * rng.normal()) as f32).collect();
        let targets: Vec<i64> = (0..b).map(|_| rng.below(v) as i64).collect();
        let mut want = 0.0f64;
        for (i, &t) in targets.iter().enumerate() {
            let row = &logits[i * v..(i + 1) * v];
            let m = row.iter().fold(f32::MIN, |a, &x| a.max(x)) as f64;
            let lse = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
            want += lse - row[t as usize] as f64;
        }
        let mut d = vec![0.0f32; b * v];
        let (got, _) = cross_entropy_grad(&logits, &targets, &mut d);
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
        let device = Device::flex().autodiff();
        let z = Tensor::<2>::from_data(TensorData::new(logits, [b, v]), &device).require_grad();
        let t = Tensor::<1, Int>::from_data(TensorData::new(targets, [b]), &device);
        let loss = log_softmax(z.clone(), 1)
            .gather(1, t.reshape([b, 1]))
            .mean()
            .neg();
        let grads = loss.backward();
        let dz = z
            .grad(&grads)
            .unwrap()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap();
        for (g, w) in d.iter().zip(&dz) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
    }
}
