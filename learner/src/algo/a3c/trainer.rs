//! A3C's trainer: the one owner of the global parameters and the optimizer applies every pushed
//! gradient as it arrives (Mnih et al. 2016, with the statistics of RMSProp shared by all
//! actors, or Adam).
//!
//! The parameters live on the device as **one flat tensor** in layout order. RMSProp and Adam are
//! elementwise, so updating the flat vector is the same as updating each parameter tensor, and a
//! push costs one tensor built from the gradient bytes, the optimizer's few elementwise
//! operations and one read-back, whatever the number of layers.

use std::path::Path;

use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, RmsPropConfig};
use burn::tensor::{Device, Tensor, TensorData};
use shoal_common::config::{A3cConfig, A3cOptimizer};

use crate::checkpoint::CheckpointError;
use crate::grad_clip::clip_flat_global_norm;

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
        let norm = clip_flat_global_norm(&mut grad, self.max_grad_norm);
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

    /// Writes the optimizer state into the checkpoint directory `dir`.
    pub fn save_optimizer(&self, dir: &Path) -> Result<(), CheckpointError> {
        crate::checkpoint::save_optimizer(&self.optimizer, dir)
    }

    /// Reads the optimizer state [`A3cTrainer::save_optimizer`] wrote.
    pub fn load_optimizer(&mut self, dir: &Path) -> Result<(), CheckpointError> {
        crate::checkpoint::load_optimizer(&mut self.optimizer, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
