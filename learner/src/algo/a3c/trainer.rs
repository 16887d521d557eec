//! A3C's trainer: the one owner of the global parameters and the optimizer applies every pushed
//! gradient as it arrives (Mnih et al. 2016, with the statistics of RMSProp shared by all
//! actors, or Adam).
//!
//! The parameters live on the host as **one flat vector** in layout order, and the optimizers
//! are the host's (`shoal_compute::optim`): RMSProp and Adam are elementwise, so one pass over the
//! vector is the same as burn's step on each parameter tensor (tested against it) at a fraction
//! of the cost (no tensors built, no per-operation dispatch). Their state is saved in burn's
//! optimizer file format, under the id burn's flat parameter had, so checkpoints of either
//! resume.

use std::path::Path;

use burn::optim::{AdamConfig, ModuleOptimizer, RmsPropConfig};
use shoal_common::codec::{ParamEntry, ParamLayout};
use shoal_common::config::{A3cConfig, A3cOptimizer};
use shoal_compute::kernels::clip::clip_global_norm;
use shoal_compute::optim::{FlatAdam, FlatOptimizer, FlatRmsProp};

use crate::checkpoint::CheckpointError;

/// burn's optimizer for a config, as A3C used it on its flat parameter (kept as the reference
/// the host optimizers are tested against).
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

/// Owns the flat parameters and the optimizer.
pub struct A3cTrainer {
    params: Vec<f32>,
    optimizer: Box<dyn FlatOptimizer>,
    /// One parameter `values` of all the floats: optimizer state is keyed by its id (1).
    layout: ParamLayout,
    learning_rate: f64,
    max_grad_norm: f64,
}

impl A3cTrainer {
    /// A trainer starting from `initial`.
    pub fn new(config: &A3cConfig, initial: &[f32]) -> Self {
        let len = initial.len();
        let optimizer: Box<dyn FlatOptimizer> = match config.optimizer {
            A3cOptimizer::Rmsprop => Box::new(FlatRmsProp::new(
                config.rmsprop_alpha as f32,
                config.rmsprop_momentum as f32,
                config.epsilon as f32,
                len,
            )),
            A3cOptimizer::Adam => Box::new(FlatAdam::new(config.epsilon as f32, len)),
        };
        Self {
            params: initial.to_vec(),
            optimizer,
            layout: ParamLayout::new(vec![ParamEntry::new("values", vec![len])]),
            learning_rate: config.learning_rate,
            max_grad_norm: config.max_grad_norm,
        }
    }

    /// Clips `grad` to the global norm and applies one optimizer step. Returns the norm before
    /// clipping.
    ///
    /// # Panics
    /// When `grad` does not have one value per parameter (checked at the boundary).
    pub fn apply(&mut self, mut grad: Vec<f32>) -> f64 {
        assert_eq!(
            grad.len(),
            self.params.len(),
            "one gradient value per parameter"
        );
        let norm = clip_global_norm(&mut grad, self.max_grad_norm);
        self.optimizer
            .step(self.learning_rate, &mut self.params, &grad);
        norm
    }

    /// The current parameters.
    pub fn params(&self) -> Vec<f32> {
        self.params.clone()
    }

    /// Writes the optimizer state into the checkpoint directory `dir`.
    pub fn save_optimizer(&self, dir: &Path) -> Result<(), CheckpointError> {
        crate::checkpoint::save_flat_optimizer(self.optimizer.as_ref(), &self.layout, dir)
    }

    /// Reads the optimizer state [`A3cTrainer::save_optimizer`] (or burn's optimizer on the flat
    /// parameter, before) wrote.
    pub fn load_optimizer(&mut self, dir: &Path) -> Result<(), CheckpointError> {
        crate::checkpoint::load_flat_optimizer(self.optimizer.as_mut(), &self.layout, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{Module, Param, ParamId};
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Tensor, TensorData};
    use shoal_common::rng::Rng;
    use shoal_compute::optim::OPTIMIZER_FILE;

    /// burn's A3C trainer as it was: the parameters as one flat tensor with id 1.
    #[derive(Module, Debug)]
    struct FlatParams {
        values: Param<Tensor<1>>,
    }

    fn flat_params(values: &[f32]) -> FlatParams {
        let device = Device::flex().autodiff();
        let mut values =
            Param::from_data(TensorData::new(values.to_vec(), [values.len()]), &device);
        values.id = ParamId::from(1);
        FlatParams { values }
    }

    fn read(p: &FlatParams) -> Vec<f32> {
        p.values
            .val()
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn rmsprop_without_momentum_matches_the_formula() {
        // One step from zero state: v = (1 − α) g², θ ← θ − lr g / (√v + ε).
        let config = A3cConfig {
            max_grad_norm: 1e9,
            ..A3cConfig::default()
        };
        let mut t = A3cTrainer::new(&config, &[1.0, -2.0]);
        t.apply(vec![0.5, -0.25]);
        let got = t.params();
        for (i, (p, g)) in [(1.0f64, 0.5f64), (-2.0, -0.25)].into_iter().enumerate() {
            let v = (1.0 - config.rmsprop_alpha) * g * g;
            let want = p - config.learning_rate * g / (v.sqrt() + config.epsilon);
            assert!((got[i] as f64 - want).abs() < 1e-5, "{} vs {want}", got[i]);
        }
    }

    #[test]
    fn host_optimizers_step_as_burns_and_their_files_are_interchangeable() {
        let dir = tempfile::tempdir().unwrap();
        for (optimizer, momentum) in [
            (A3cOptimizer::Rmsprop, 0.0),
            (A3cOptimizer::Rmsprop, 0.9),
            (A3cOptimizer::Adam, 0.0),
        ] {
            let config = A3cConfig {
                optimizer,
                rmsprop_momentum: momentum,
                max_grad_norm: 1e9,
                ..A3cConfig::default()
            };
            let mut rng = Rng::new(1);
            let initial: Vec<f32> = (0..50).map(|_| rng.normal() as f32).collect();
            let mut host = A3cTrainer::new(&config, &initial);
            let mut burn_params = flat_params(&initial);
            let mut burn_opt = super::optimizer(&config);
            for step in 0..4 {
                let grad: Vec<f32> = (0..50).map(|_| (rng.normal() * 0.1) as f32).collect();
                host.apply(grad.clone());
                let mut grads = GradientsParams::new();
                grads.register(
                    burn_params.values.id,
                    Tensor::<1>::from_data(TensorData::new(grad, [50]), &Device::flex()),
                );
                burn_params = burn_opt.step(config.learning_rate, burn_params, grads);
                let want = read(&burn_params);
                for (g, w) in host.params().iter().zip(&want) {
                    assert!(
                        (g - w).abs() < 1e-6,
                        "{optimizer:?} step {step}: {g} vs {w}"
                    );
                }
                // Each resumes from the other's file.
                if step == 1 {
                    burn_opt.save(dir.path().join(OPTIMIZER_FILE)).unwrap();
                    host.load_optimizer(dir.path()).unwrap();
                }
                if step == 2 {
                    host.save_optimizer(dir.path()).unwrap();
                    burn_opt = burn_opt.load(dir.path().join(OPTIMIZER_FILE)).unwrap();
                }
            }
        }
    }
}
