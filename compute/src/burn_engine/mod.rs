//! The burn engine: the model as a burn module on any burn device (flex on the CPU, wgpu on a
//! GPU), trained through burn's autodiff and optimizers. The backward pass starts from the
//! algorithm's gradients at the heads: it differentiates the sum of `policy·g_policy`,
//! `values·g_values` and `log_std·g_log_std`, whose gradient at every parameter is exactly the
//! loss's. Kept as the GPU path and as the reference the host engine is tested against.

mod clip;

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData, Transaction};
use shoal_common::model::{ActorCritic, ModelSpec};

pub use clip::clip_global_norm;

use crate::engine::{HeadGrads, Heads, Inference, Optimizer, Rows, Snapshot, Training, Want};
use crate::optim::{OPTIMIZER_FILE, StateFileError};

/// `rows` on `device` as a `[n, obs_dim]` tensor (bytes cross as bytes and are cast there).
fn tensor(obs: Rows<'_>, obs_dim: usize, device: &Device) -> Tensor<2> {
    let n = obs.len() / obs_dim;
    assert_eq!(n * obs_dim, obs.len(), "observation rows");
    match obs {
        Rows::F32(v) => Tensor::<2>::from_data(TensorData::new(v.to_vec(), [n, obs_dim]), device),
        Rows::U8(v) => {
            Tensor::<2, Int>::from_data(TensorData::new(v.to_vec(), [n, obs_dim]), device).float()
        }
    }
}

fn read(data: TensorData) -> Vec<f32> {
    data.convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensor data")
}

/// The wanted heads of `model` at `obs` as tensors.
fn heads(
    model: &ActorCritic,
    obs: Tensor<2>,
    want: Want,
) -> (Option<Tensor<2>>, Option<Tensor<1>>) {
    let x = model.features(obs);
    let policy = want.policy.then(|| model.actor.forward(x.clone()));
    let values = want.value.then(|| {
        let v = model.critic.forward(x);
        let [b, _] = v.dims();
        v.reshape([b])
    });
    (policy, values)
}

/// Reads the wanted heads back in one transaction.
fn read_heads(policy: Option<&Tensor<2>>, values: Option<&Tensor<1>>) -> Heads {
    let mut tx = Transaction::default();
    if let Some(p) = policy {
        tx = tx.register(p.clone());
    }
    if let Some(v) = values {
        tx = tx.register(v.clone());
    }
    let mut data = tx.execute().into_iter();
    Heads {
        policy: policy
            .map(|_| read(data.next().expect("policy read")))
            .unwrap_or_default(),
        values: values
            .map(|_| read(data.next().expect("values read")))
            .unwrap_or_default(),
    }
}

fn log_std_of(model: &ActorCritic) -> Vec<f32> {
    model
        .log_std()
        .map(|t| read(t.into_data()))
        .unwrap_or_default()
}

fn state_error(path: &Path, e: impl std::fmt::Debug) -> StateFileError {
    StateFileError::Pack {
        path: PathBuf::from(path),
        message: format!("{e:?}"),
    }
}

/// burn's gradients of `model`'s parameters, flat in layout order (zeros for a parameter the
/// loss did not reach): what A3C's actors push, and what the host engine is tested against.
pub fn flat_grads(model: &ActorCritic, grads: &GradientsParams) -> Vec<f32> {
    struct Gather<'a> {
        grads: &'a GradientsParams,
        out: Vec<f32>,
    }
    impl ModuleVisitor for Gather<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            match self.grads.get::<D>(param.id) {
                Some(g) => self.out.extend(read(g.into_data())),
                None => self
                    .out
                    .extend(std::iter::repeat_n(0.0, param.lazy_shape().num_elements())),
            }
        }
    }
    let mut gather = Gather {
        grads,
        out: Vec::new(),
    };
    model.visit(&mut gather);
    gather.out
}

/// A model trained through burn's autodiff.
pub struct BurnTraining {
    spec: ModelSpec,
    device: Device,
    model: Option<ActorCritic>,
    optimizer: Option<ModuleOptimizer>,
    /// The heads of the last training forward pass, in the autodiff graph.
    outputs: Option<(Option<Tensor<2>>, Option<Tensor<1>>)>,
    grads: Option<GradientsParams>,
}

impl BurnTraining {
    /// `spec`'s network from `initial` on `device` (with autodiff).
    pub fn new(spec: &ModelSpec, initial: &[f32], optimizer: Optimizer, device: &Device) -> Self {
        let device = device.clone().autodiff();
        Self {
            model: Some(spec.build(initial, &device)),
            optimizer: match optimizer {
                Optimizer::None => None,
                Optimizer::Adam { epsilon } => {
                    Some(AdamConfig::new().with_epsilon(epsilon as f32).init())
                }
            },
            spec: spec.clone(),
            device,
            outputs: None,
            grads: None,
        }
    }

    fn model(&self) -> &ActorCritic {
        self.model
            .as_ref()
            .expect("the model is only taken during a step")
    }

    fn optimizer(&self) -> &ModuleOptimizer {
        self.optimizer
            .as_ref()
            .expect("a training engine with an optimizer")
    }
}

impl Training for BurnTraining {
    fn params(&self) -> Vec<f32> {
        self.model().to_flat()
    }

    fn load(&mut self, params: &[f32]) {
        self.model = Some(self.spec.build(params, &self.device));
        self.outputs = None;
    }

    fn log_std(&self) -> Vec<f32> {
        log_std_of(self.model())
    }

    fn forward(&mut self, obs: Rows<'_>, want: Want) -> Heads {
        let x = tensor(obs, self.spec.obs_dim, &self.device);
        let (policy, values) = heads(self.model(), x, want);
        let out = read_heads(policy.as_ref(), values.as_ref());
        self.outputs = Some((policy, values));
        out
    }

    fn infer(&mut self, obs: Rows<'_>, want: Want) -> Heads {
        let model = self.model().valid();
        let x = tensor(obs, self.spec.obs_dim, &self.device.clone().inner());
        let (policy, values) = heads(&model, x, want);
        read_heads(policy.as_ref(), values.as_ref())
    }

    fn backward(&mut self, grads: HeadGrads<'_>) {
        let (policy, values) = self
            .outputs
            .take()
            .expect("a forward pass before the backward pass");
        let d = &self.device;
        let mut terms: Vec<Tensor<1>> = Vec::new();
        if let Some(g) = grads.policy {
            let p = policy.expect("a gradient at a head the forward pass computed");
            let shape = p.dims();
            let g = Tensor::<2>::from_data(TensorData::new(g.to_vec(), shape), d);
            terms.push((p * g).sum());
        }
        if let Some(g) = grads.values {
            let v = values.expect("a gradient at a head the forward pass computed");
            let g = Tensor::<1>::from_data(TensorData::new(g.to_vec(), [g.len()]), d);
            terms.push((v * g).sum());
        }
        if let (Some(g), Some(ls)) = (grads.log_std, self.model().log_std()) {
            let g = Tensor::<1>::from_data(TensorData::new(g.to_vec(), [g.len()]), d);
            terms.push((ls * g).sum());
        }
        let surrogate = terms
            .into_iter()
            .reduce(|a, b| a + b)
            .expect("a gradient at some head");
        let model = self.model();
        self.grads = Some(GradientsParams::from_grads(surrogate.backward(), model));
    }

    fn gradient(&self) -> Vec<f32> {
        flat_grads(
            self.model(),
            self.grads.as_ref().expect("a backward pass first"),
        )
    }

    fn step(&mut self, lr: f64, max_grad_norm: f64) -> f64 {
        let mut grads = self.grads.take().expect("a backward pass before the step");
        let model = self.model.take().expect("the model is present");
        let norm = clip_global_norm(&model, &mut grads, max_grad_norm);
        let norm = read(norm.into_data())[0] as f64;
        self.model = Some(if norm.is_finite() {
            self.optimizer
                .as_mut()
                .expect("a training engine with an optimizer")
                .step(lr, model, grads)
        } else {
            model
        });
        norm
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot(Box::new((self.model().clone(), self.optimizer.clone())))
    }

    fn restore(&mut self, snapshot: Snapshot) {
        let (model, optimizer) = *snapshot
            .0
            .downcast::<(ActorCritic, Option<ModuleOptimizer>)>()
            .expect("a snapshot of a burn model");
        self.model = Some(model);
        self.optimizer = optimizer;
        self.outputs = None;
    }

    fn save_optimizer(&self, dir: &Path) -> Result<(), StateFileError> {
        let path = dir.join(OPTIMIZER_FILE);
        self.optimizer()
            .save(&path)
            .map_err(|e| state_error(&path, e))
    }

    fn load_optimizer(&mut self, dir: &Path) -> Result<(), StateFileError> {
        let path = dir.join(OPTIMIZER_FILE);
        let loaded = self
            .optimizer()
            .clone()
            .load(&path)
            .map_err(|e| state_error(&path, e))?;
        self.optimizer = Some(loaded);
        Ok(())
    }
}

/// A model for forward passes on a burn device (no autodiff).
pub struct BurnInference {
    spec: ModelSpec,
    device: Device,
    model: ActorCritic,
}

impl BurnInference {
    /// `spec`'s network with `params` on `device`.
    pub fn new(spec: &ModelSpec, params: &[f32], device: &Device) -> Self {
        Self {
            model: spec.build(params, device),
            spec: spec.clone(),
            device: device.clone(),
        }
    }
}

impl Inference for BurnInference {
    fn load(&mut self, params: &[f32]) {
        self.model = self.spec.build(params, &self.device);
    }

    fn infer(&mut self, obs: Rows<'_>, want: Want) -> Heads {
        let x = tensor(obs, self.spec.obs_dim, &self.device);
        let (policy, values) = heads(&self.model, x, want);
        read_heads(policy.as_ref(), values.as_ref())
    }

    fn log_std(&self) -> Vec<f32> {
        log_std_of(&self.model)
    }
}
