//! A model trained on the host: its parameter layout, its parameters and its Adam state, with
//! what every host engine does to them alike (an optimizer step, a snapshot to return to,
//! saving and loading the optimizer in a checkpoint); and which runs and models the host path
//! serves.

use std::path::Path;

use burn::tensor::Device;
use shoal_common::codec::ParamLayout;
use shoal_common::config::RunConfig;
use shoal_common::model::{EncoderKind, Input, ModelSpec};

use super::{FlatAdam, FlatOptimizer};
use crate::checkpoint::CheckpointError;

/// Whether `config` asks for the host path on `device`: `learner.dense_mlp`, on the CPU (flex).
pub fn enabled(config: &RunConfig, device: &Device) -> bool {
    config.learner.dense_mlp && *device == Device::flex()
}

/// Whether the host path can train `spec`: an `mlp` model on vector observations (each engine
/// may ask more of it).
pub fn vector_mlp(spec: &ModelSpec) -> bool {
    spec.encoder == EncoderKind::Mlp && spec.input == Input::Vector
}

/// The parameters of a model trained on the host, in layout order, and their Adam state.
#[derive(Debug, Clone)]
pub struct HostModel {
    layout: ParamLayout,
    params: Vec<f32>,
    adam: FlatAdam,
}

impl HostModel {
    /// `initial` parameters of `layout`, with fresh Adam state of ε `adam_eps`.
    ///
    /// # Panics
    /// When `initial` does not have the layout's number of values.
    pub fn new(layout: ParamLayout, initial: &[f32], adam_eps: f64) -> Self {
        let len = layout.num_floats();
        assert_eq!(initial.len(), len, "parameter count");
        Self {
            layout,
            params: initial.to_vec(),
            adam: FlatAdam::new(adam_eps as f32, len),
        }
    }

    /// The parameters in layout order.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// One Adam step at `lr` on `grad`.
    pub fn step(&mut self, lr: f64, grad: &[f32]) {
        self.adam.step(lr, &mut self.params, grad);
    }

    /// The parameters and the optimizer state (what a step changes), to go back to with
    /// [`HostModel::restore`].
    pub fn state(&self) -> (Vec<f32>, FlatAdam) {
        (self.params.clone(), self.adam.clone())
    }

    /// Returns to a [`HostModel::state`].
    pub fn restore(&mut self, (params, adam): (Vec<f32>, FlatAdam)) {
        assert_eq!(params.len(), self.params.len(), "parameter count");
        (self.params, self.adam) = (params, adam);
    }

    /// Writes the optimizer state into the checkpoint directory `dir` (burn's file format).
    pub fn save_optimizer(&self, dir: &Path) -> Result<(), CheckpointError> {
        crate::checkpoint::save_flat_optimizer(&self.adam, &self.layout, dir)
    }

    /// Reads the optimizer state [`HostModel::save_optimizer`] (or burn's Adam) wrote.
    pub fn load_optimizer(&mut self, dir: &Path) -> Result<(), CheckpointError> {
        crate::checkpoint::load_flat_optimizer(&mut self.adam, &self.layout, dir)
    }
}
