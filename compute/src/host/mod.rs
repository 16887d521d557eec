//! The host engine: the model computed by the host's own kernels ([`crate::kernels`]) on the
//! flat parameter vector, split over threads where a batch is big enough (`shards`), with
//! Adam on the flat vector. Built for every encoder and head the model spec has: no model
//! falls back to another engine.

mod conv;
mod mlp;
mod net;
mod shards;
#[cfg(test)]
mod tests;
mod transformer;

use std::path::Path;
use std::sync::Arc;

use shoal_common::codec::ParamLayout;
use shoal_common::model::ModelSpec;

use crate::engine::{HeadGrads, Heads, Inference, Optimizer, Rows, Snapshot, Training, Want};
use crate::kernels::clip::clip_global_norm;
use crate::optim::{FlatAdam, FlatOptimizer, OPTIMIZER_FILE, StateFileError};
use net::HostNet;
use shards::Shards;

/// A model on the host: its network, parameters, threads, last gradient and optimizer.
#[derive(Debug)]
pub struct HostModel {
    net: Arc<HostNet>,
    layout: ParamLayout,
    /// Shared with the workers during a pass (no copy); stepped in place between passes.
    params: Arc<Vec<f32>>,
    shards: Shards,
    grad: Vec<f32>,
    adam: Option<FlatAdam>,
}

impl HostModel {
    /// `spec`'s network from `initial`, on `threads` threads.
    ///
    /// # Panics
    /// When `initial` does not have the layout's number of values.
    pub fn new(spec: &ModelSpec, initial: &[f32], optimizer: Optimizer, threads: usize) -> Self {
        let net = Arc::new(HostNet::new(spec));
        assert_eq!(initial.len(), net.len, "parameter count");
        let adam = match optimizer {
            Optimizer::None => None,
            Optimizer::Adam { epsilon } => Some(FlatAdam::new(epsilon as f32, net.len)),
        };
        Self {
            shards: Shards::new(Arc::clone(&net), threads),
            grad: vec![0.0; net.len],
            layout: spec.layout(),
            params: Arc::new(initial.to_vec()),
            net,
            adam,
        }
    }

    /// Splits every batch over all threads, however small (for tests of the reduction).
    #[cfg(test)]
    pub(crate) fn split_every_batch(mut self) -> Self {
        self.shards.split_every_batch();
        self
    }

    fn adam(&self) -> &FlatAdam {
        self.adam
            .as_ref()
            .expect("a training engine with an optimizer")
    }
}

impl Inference for HostModel {
    fn load(&mut self, params: &[f32]) {
        assert_eq!(params.len(), self.net.len, "parameter count");
        Arc::make_mut(&mut self.params).copy_from_slice(params);
    }

    fn infer(&mut self, obs: Rows<'_>, want: Want) -> Heads {
        self.shards.forward(&self.params, obs, want, false)
    }

    fn log_std(&self) -> Vec<f32> {
        let a = self.net.action.outputs();
        self.net
            .log_std
            .map(|o| self.params[o..o + a].to_vec())
            .unwrap_or_default()
    }
}

impl Training for HostModel {
    fn params(&self) -> Vec<f32> {
        self.params.to_vec()
    }

    fn load(&mut self, params: &[f32]) {
        Inference::load(self, params);
    }

    fn log_std(&self) -> Vec<f32> {
        Inference::log_std(self)
    }

    fn forward(&mut self, obs: Rows<'_>, want: Want) -> Heads {
        self.shards.forward(&self.params, obs, want, true)
    }

    fn infer(&mut self, obs: Rows<'_>, want: Want) -> Heads {
        Inference::infer(self, obs, want)
    }

    fn backward(&mut self, grads: HeadGrads<'_>) {
        self.shards
            .backward(&self.params, grads.policy, grads.values, &mut self.grad);
        if let (Some(o), Some(d)) = (self.net.log_std, grads.log_std) {
            self.grad[o..o + d.len()].copy_from_slice(d);
        }
    }

    fn gradient(&self) -> Vec<f32> {
        self.grad.clone()
    }

    fn step(&mut self, lr: f64, max_grad_norm: f64) -> f64 {
        let norm = clip_global_norm(&mut self.grad, max_grad_norm);
        if norm.is_finite() {
            let adam = self
                .adam
                .as_mut()
                .expect("a training engine with an optimizer");
            let params: &mut Vec<f32> = Arc::make_mut(&mut self.params);
            adam.step(lr, params, &self.grad);
        }
        norm
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot(Box::new((self.params.to_vec(), self.adam.clone())))
    }

    fn restore(&mut self, snapshot: Snapshot) {
        let (params, adam) = *snapshot
            .0
            .downcast::<(Vec<f32>, Option<FlatAdam>)>()
            .expect("a snapshot of a host model");
        assert_eq!(params.len(), self.net.len, "parameter count");
        self.params = Arc::new(params);
        self.adam = adam;
    }

    fn save_optimizer(&self, dir: &Path) -> Result<(), StateFileError> {
        self.adam().save(&self.layout, &dir.join(OPTIMIZER_FILE))
    }

    fn load_optimizer(&mut self, dir: &Path) -> Result<(), StateFileError> {
        let layout = &self.layout;
        self.adam
            .as_mut()
            .expect("a training engine with an optimizer")
            .load(layout, &dir.join(OPTIMIZER_FILE))
    }
}
