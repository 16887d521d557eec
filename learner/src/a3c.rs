//! A3C on the learner: the one owner of the global parameters and the optimizer applies every
//! pushed gradient as it arrives (Mnih et al. 2016, with the statistics of RMSProp shared by all
//! actors, or Adam).
//!
//! The parameters live on the device as **one flat tensor** in layout order. RMSProp and Adam are
//! elementwise, so updating the flat vector is the same as updating each parameter tensor, and a
//! push costs one tensor built from the gradient bytes, the optimizer's few elementwise
//! operations and one read-back, whatever the number of layers.

use std::path::Path;
use std::time::Instant;

use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, RmsPropConfig};
use burn::tensor::{Device, Tensor, TensorData};
use crossbeam_channel::Receiver;
use serde_json::Value;
use shoal_common::codec::encode_f32;
use shoal_common::config::{A3cConfig, A3cOptimizer, RunConfig};
use shoal_common::gradient::GradientPush;
use shoal_common::normalize::NormStats;

use crate::driver::{Algorithm, Stop, stop_reason};
use crate::service::{Experience, Shared};
use crate::status::Progress;
use crate::trainer::UpdateStats;

/// Gradients applied back to back before the new parameters are published: under load the
/// learner publishes once per burst instead of once per gradient (the read-back and encoding
/// of a version cost about as much as applying a gradient).
const MAX_BURST: usize = 32;

/// The global parameters as one vector.
#[derive(Module, Debug)]
pub struct FlatParams {
    /// All parameters in layout order.
    pub values: Param<Tensor<1>>,
}

/// Owns the flat parameters and the optimizer.
pub struct A3cTrainer {
    params: Option<FlatParams>,
    optimizer: ModuleOptimizer,
    learning_rate: f64,
    max_grad_norm: f64,
    device: Device,
    len: usize,
}

/// The optimizer a config asks for.
pub fn optimizer(config: &A3cConfig) -> ModuleOptimizer {
    match config.optimizer {
        A3cOptimizer::Rmsprop => RmsPropConfig::new()
            .with_alpha(config.rmsprop_alpha as f32)
            // burn's default momentum is 0.9; the A3C paper's RMSProp has none.
            .with_momentum(config.rmsprop_momentum as f32)
            .with_epsilon(config.epsilon as f32)
            .init(),
        A3cOptimizer::Adam => AdamConfig::new().with_epsilon(config.epsilon as f32).init(),
    }
}

/// Scales `grad` in place so that its L2 norm is at most `max_norm`; returns the norm before.
pub fn clip_global_norm(grad: &mut [f32], max_norm: f64) -> f64 {
    let norm = grad
        .iter()
        .map(|&g| (g as f64) * (g as f64))
        .sum::<f64>()
        .sqrt();
    if norm > max_norm {
        let scale = (max_norm / (norm + 1e-6)) as f32;
        for g in grad.iter_mut() {
            *g *= scale;
        }
    }
    norm
}

impl A3cTrainer {
    /// A trainer on `device` starting from `initial`.
    pub fn new(config: &A3cConfig, initial: &[f32], device: Device) -> Self {
        let len = initial.len();
        let autodiff = device.clone().autodiff();
        let mut values = Param::from_data(TensorData::new(initial.to_vec(), [len]), &autodiff);
        // A fixed id: the optimizer state saved in a checkpoint is keyed by it.
        values.id = burn::module::ParamId::from(1);
        let params = FlatParams { values };
        Self {
            params: Some(params),
            optimizer: optimizer(config),
            learning_rate: config.learning_rate,
            max_grad_norm: config.max_grad_norm,
            device,
            len,
        }
    }

    /// Clips `grad` to the global norm and applies one optimizer step. Returns the norm before
    /// clipping.
    ///
    /// # Panics
    /// When `grad` does not have one value per parameter (checked at the boundary).
    pub fn apply(&mut self, mut grad: Vec<f32>) -> f64 {
        assert_eq!(grad.len(), self.len, "one gradient value per parameter");
        let norm = clip_global_norm(&mut grad, self.max_grad_norm);
        let params = self.params.take().expect("params present between steps");
        let mut grads = GradientsParams::new();
        grads.register(
            params.values.id,
            Tensor::<1>::from_data(TensorData::new(grad, [self.len]), &self.device),
        );
        self.params = Some(self.optimizer.step(self.learning_rate, params, grads));
        norm
    }

    /// The current parameters (one read-back).
    pub fn params(&self) -> Vec<f32> {
        self.params
            .as_ref()
            .expect("params present between steps")
            .values
            .val()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 parameters")
    }

    /// Writes the optimizer state (burnpack) to `path`.
    pub fn save_optimizer(&self, path: &Path) -> Result<(), String> {
        self.optimizer.save(path).map_err(|e| format!("{e:?}"))
    }

    /// Reads the optimizer state [`A3cTrainer::save_optimizer`] wrote.
    pub fn load_optimizer(&mut self, path: &Path) -> Result<(), String> {
        self.optimizer = self
            .optimizer
            .clone()
            .load(path)
            .map_err(|e| format!("{}: {e:?}", path.display()))?;
        Ok(())
    }
}

/// Means of the applied gradients' statistics over one status interval.
#[derive(Default)]
struct IntervalStats {
    n: f64,
    policy_loss: f64,
    value_loss: f64,
    entropy: f64,
    grad_norm: f64,
}

impl IntervalStats {
    fn add(&mut self, g: &GradientPush, grad_norm: f64) {
        self.n += 1.0;
        self.policy_loss += g.policy_loss as f64;
        self.value_loss += g.value_loss as f64;
        self.entropy += g.entropy as f64;
        self.grad_norm += grad_norm;
    }

    fn take(&mut self, learning_rate: f64) -> Option<UpdateStats> {
        let s = std::mem::take(self);
        (s.n > 0.0).then(|| UpdateStats {
            policy_loss: s.policy_loss / s.n,
            value_loss: s.value_loss / s.n,
            entropy: s.entropy / s.n,
            grad_norm: s.grad_norm / s.n,
            approx_kl: f64::NAN,
            clipfrac: f64::NAN,
            explained_variance: f64::NAN,
            learning_rate,
            batch_size: 0,
        })
    }
}

/// A3C on the trainer thread: applies gradients as they arrive (dropping those more than
/// `max_staleness` versions behind by the time they are applied) and publishes after each burst.
pub(crate) struct A3cRun {
    trainer: A3cTrainer,
    config: RunConfig,
    stats: IntervalStats,
    update_secs: f64,
    normalization: NormStats,
}

impl A3cRun {
    /// `normalization` is shipped unchanged with every version (A3C runs do not normalise:
    /// config validation refuses it).
    pub(crate) fn new(
        config: &RunConfig,
        initial: &[f32],
        device: Device,
        normalization: NormStats,
    ) -> Self {
        Self {
            trainer: A3cTrainer::new(&config.a3c, initial, device),
            config: config.clone(),
            stats: IntervalStats::default(),
            update_secs: 0.0,
            normalization,
        }
    }
}

impl Algorithm for A3cRun {
    fn handle(
        &mut self,
        first: Experience,
        rx: &Receiver<Experience>,
        shared: &Shared,
        progress: &mut Progress,
    ) -> Option<Stop> {
        let Experience::Gradient(first) = first else {
            unreachable!("the service refuses rollouts and transitions in A3C runs")
        };
        let start = Instant::now();
        let mut applied = 0;
        let burst = std::iter::once(first).chain(
            std::iter::from_fn(|| match rx.try_recv() {
                Ok(Experience::Gradient(g)) => Some(g),
                _ => None,
            })
            .take(MAX_BURST - 1),
        );
        for mut g in burst {
            progress.env_steps += g.env_steps as u64;
            for (&r, &l) in g.episode_returns.iter().zip(&g.episode_lengths) {
                progress.episodes.push(r, l);
            }
            let staleness = progress.version.saturating_sub(g.version);
            if staleness > self.config.a3c.max_staleness {
                progress.gradients_stale += 1;
                continue;
            }
            progress.lag.record(staleness);
            let norm = self.trainer.apply(std::mem::take(&mut g.grad));
            self.stats.add(&g, norm);
            progress.gradients_applied += 1;
            applied += 1;
        }
        if applied > 0 {
            progress.updates += applied;
            progress.version = shared.store.publish(
                encode_f32(&self.trainer.params()),
                self.normalization.clone(),
            );
        }
        self.update_secs += start.elapsed().as_secs_f64();
        stop_reason(&self.config, progress)
    }

    fn before_status(&mut self, progress: &mut Progress) {
        if let Some(s) = self.stats.take(self.config.a3c.learning_rate) {
            progress.last_update = Some(s);
        }
    }

    fn params(&self) -> Vec<f32> {
        self.trainer.params()
    }

    fn normalization(&self) -> NormStats {
        self.normalization.clone()
    }

    fn update_secs(&self) -> f64 {
        self.update_secs
    }

    fn save(&self, dir: &Path) -> Result<Value, String> {
        self.trainer.save_optimizer(&dir.join("optimizer.bpk"))?;
        Ok(Value::Null)
    }

    fn restore(&mut self, dir: &Path, _state: &Value) -> Result<(), String> {
        self.trainer.load_optimizer(&dir.join("optimizer.bpk"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_bounds_the_norm_and_keeps_small_gradients() {
        let mut g = vec![3.0f32, 4.0];
        assert!((clip_global_norm(&mut g, 1.0) - 5.0).abs() < 1e-12);
        let n: f32 = g.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-5 && (g[0] / g[1] - 0.75).abs() < 1e-6);
        let mut small = vec![0.1f32, 0.2];
        clip_global_norm(&mut small, 1.0);
        assert_eq!(small, vec![0.1, 0.2]);
    }

    #[test]
    fn rmsprop_without_momentum_matches_the_formula() {
        // One step from zero state: v = (1 − α) g², θ ← θ − lr g / (√v + ε).
        let config = A3cConfig {
            max_grad_norm: 1e9,
            ..A3cConfig::default()
        };
        let mut t = A3cTrainer::new(&config, &[1.0, -2.0], Device::flex());
        t.apply(vec![0.5, -0.25]);
        let got = t.params();
        for (i, (p, g)) in [(1.0f64, 0.5f64), (-2.0, -0.25)].into_iter().enumerate() {
            let v = (1.0 - config.rmsprop_alpha) * g * g;
            let want = p - config.learning_rate * g / (v.sqrt() + config.epsilon);
            assert!((got[i] as f64 - want).abs() < 1e-5, "{} vs {want}", got[i]);
        }
    }
}
