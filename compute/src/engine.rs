//! The compute seam: a model engine over the flat parameter vector and its layout, the one way
//! the learner's algorithms and the actors compute a network. [`Inference`] runs forward
//! passes; [`Training`] adds the forward pass that keeps what the backward pass needs, the
//! backward pass from the gradients at the heads, the optimizer step, snapshot/restore and the
//! optimizer's checkpoint state. An algorithm computes its loss and that loss's gradient at the
//! heads from the [`Heads`] it gets back and hands the gradient in as [`HeadGrads`]; it never
//! learns which engine it runs on.
//!
//! Two engines implement it: the host's CPU kernels ([`crate::host`]) and burn on any burn
//! device ([`crate::burn_engine`], wgpu being the GPU one). [`Engine::choose`] picks one, once,
//! at start.

use std::any::Any;
use std::path::Path;

use burn::tensor::Device;
use shoal_common::config::EngineChoice;
use shoal_common::model::ModelSpec;
use shoal_common::obs::Observations;

use crate::optim::StateFileError;

/// Observation rows as an engine reads them: `f32` values, or bytes (images, token ids).
#[derive(Debug, Clone, Copy)]
pub enum Rows<'a> {
    /// `f32` values (vectors; images and ids as their values too).
    F32(&'a [f32]),
    /// One byte per value.
    U8(&'a [u8]),
}

impl<'a> Rows<'a> {
    /// Values in all.
    pub fn len(&self) -> usize {
        match self {
            Rows::F32(v) => v.len(),
            Rows::U8(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values `range` (flat indices).
    pub fn slice(&self, range: std::ops::Range<usize>) -> Rows<'a> {
        match *self {
            Rows::F32(v) => Rows::F32(&v[range]),
            Rows::U8(v) => Rows::U8(&v[range]),
        }
    }
}

impl<'a> From<&'a Observations> for Rows<'a> {
    fn from(obs: &'a Observations) -> Self {
        match obs {
            Observations::F32(v) => Rows::F32(v),
            Observations::U8(v) => Rows::U8(v),
        }
    }
}

impl<'a> From<&'a [f32]> for Rows<'a> {
    fn from(v: &'a [f32]) -> Self {
        Rows::F32(v)
    }
}

/// Which heads a forward pass computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    /// The policy head (logits, a Gaussian's mean, or DQN's Q-values).
    pub policy: bool,
    /// The value head.
    pub value: bool,
}

impl Want {
    /// Both heads.
    pub const BOTH: Want = Want {
        policy: true,
        value: true,
    };
    /// The policy head only.
    pub const POLICY: Want = Want {
        policy: true,
        value: false,
    };
    /// The value head only.
    pub const VALUE: Want = Want {
        policy: false,
        value: true,
    };
}

/// What a forward pass computed for its rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Heads {
    /// The policy head's output `[rows, A]` (empty when not wanted).
    pub policy: Vec<f32>,
    /// The state values `[rows]` (empty when not wanted).
    pub values: Vec<f32>,
}

/// The loss's gradient at the heads of the last training forward pass.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadGrads<'a> {
    /// d loss / d policy output `[rows, A]`.
    pub policy: Option<&'a [f32]>,
    /// d loss / d values `[rows]`.
    pub values: Option<&'a [f32]>,
    /// d loss / d `log_std` `[A]` (Gaussian policies).
    pub log_std: Option<&'a [f32]>,
}

/// The optimizer a training engine steps with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimizer {
    /// None: the engine computes gradients only (A3C's actors).
    None,
    /// Adam (burn's, β = (0.9, 0.999)) with this ε.
    Adam {
        /// ε.
        epsilon: f64,
    },
}

/// An engine's parameters and optimizer state as they were ([`Training::snapshot`]).
pub struct Snapshot(pub(crate) Box<dyn Any + Send>);

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Snapshot")
    }
}

/// Forward passes of a network with parameters it holds.
pub trait Inference: Send {
    /// Takes `params` (layout order) as the network's parameters.
    fn load(&mut self, params: &[f32]);

    /// The wanted heads for each of the rows `obs`.
    fn infer(&mut self, obs: Rows<'_>, want: Want) -> Heads;

    /// A Gaussian policy's log standard deviation `[A]` (empty for a categorical one).
    fn log_std(&self) -> Vec<f32>;
}

/// A network trained by an algorithm: forward, backward from the heads, optimizer step.
pub trait Training: Send {
    /// The current parameters in layout order.
    fn params(&self) -> Vec<f32>;

    /// Takes `params` as the current parameters (the optimizer state stays).
    fn load(&mut self, params: &[f32]);

    /// A Gaussian policy's log standard deviation `[A]` (empty for a categorical one).
    fn log_std(&self) -> Vec<f32>;

    /// The wanted heads for the rows `obs` with the current parameters, keeping what
    /// [`Training::backward`] needs (replacing what the last such pass kept).
    fn forward(&mut self, obs: Rows<'_>, want: Want) -> Heads;

    /// The wanted heads with the current parameters, keeping nothing (what the last
    /// [`Training::forward`] kept stays).
    fn infer(&mut self, obs: Rows<'_>, want: Want) -> Heads;

    /// d loss / d parameters of the last [`Training::forward`], from the loss's gradient at
    /// its heads (a head it did not compute must have none); replaces the last gradient.
    fn backward(&mut self, grads: HeadGrads<'_>);

    /// The last backward pass's gradient in layout order.
    fn gradient(&self) -> Vec<f32>;

    /// Clips the last gradient to `max_grad_norm` (global L2 norm) and takes one optimizer
    /// step at `lr`. Returns the norm before clipping; a norm that is not finite steps nothing.
    fn step(&mut self, lr: f64, max_grad_norm: f64) -> f64;

    /// The parameters and optimizer state as they are now.
    fn snapshot(&self) -> Snapshot;

    /// Returns to a [`Training::snapshot`] of this engine.
    fn restore(&mut self, snapshot: Snapshot);

    /// Writes the optimizer state into the checkpoint directory `dir` (burn's file format,
    /// whichever engine wrote it).
    fn save_optimizer(&self, dir: &Path) -> Result<(), StateFileError>;

    /// Reads the optimizer state either engine's [`Training::save_optimizer`] wrote.
    fn load_optimizer(&mut self, dir: &Path) -> Result<(), StateFileError>;
}

/// The engine a process computes its networks with, chosen once at start.
#[derive(Debug, Clone)]
pub enum Engine {
    /// The host's CPU kernels, a forward or backward pass split over `threads` threads where
    /// a batch is big enough to pay.
    Host {
        /// Threads (the calling one included).
        threads: usize,
    },
    /// burn on `device` (autodiff for training).
    Burn {
        /// The device.
        device: Device,
    },
}

/// Why no engine could be chosen.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    /// The host engine was asked for on a GPU device.
    #[error(
        "engine = \"host\" computes on the CPU, and the device is a GPU; use engine = \"auto\" or \"burn\", or device = \"flex\""
    )]
    HostOnGpu,
}

impl Engine {
    /// The engine `choice` names for `device`: `auto` takes the host's kernels on the CPU
    /// (flex) and burn on a GPU. `threads` is capped at what the process may run at once (a
    /// worker waiting for a core the calling thread needs would only slow it).
    pub fn choose(
        choice: EngineChoice,
        device: &Device,
        threads: usize,
    ) -> Result<Self, EngineError> {
        let cpu = *device == Device::flex();
        let threads = threads
            .min(std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
            .max(1);
        match (choice, cpu) {
            (EngineChoice::Auto | EngineChoice::Host, true) => Ok(Engine::Host { threads }),
            (EngineChoice::Host, false) => Err(EngineError::HostOnGpu),
            (EngineChoice::Burn, _) | (EngineChoice::Auto, false) => Ok(Engine::Burn {
                device: device.clone(),
            }),
        }
    }

    /// The engine's name in logs and benchmarks: `host` or `burn`.
    pub fn name(&self) -> &'static str {
        match self {
            Engine::Host { .. } => "host",
            Engine::Burn { .. } => "burn",
        }
    }

    /// The threads a pass may use (1 for burn, which schedules its own).
    pub fn threads(&self) -> usize {
        match self {
            Engine::Host { threads } => *threads,
            Engine::Burn { .. } => 1,
        }
    }

    /// A network of `spec` to train, from `initial` parameters.
    pub fn training(
        &self,
        spec: &ModelSpec,
        initial: &[f32],
        optimizer: Optimizer,
    ) -> Box<dyn Training> {
        match self {
            Engine::Host { threads } => Box::new(crate::host::HostModel::new(
                spec, initial, optimizer, *threads,
            )),
            Engine::Burn { device } => Box::new(crate::burn_engine::BurnTraining::new(
                spec, initial, optimizer, device,
            )),
        }
    }

    /// A network of `spec` for forward passes, with `params`.
    pub fn inference(&self, spec: &ModelSpec, params: &[f32]) -> Box<dyn Inference> {
        match self {
            Engine::Host { threads } => Box::new(crate::host::HostModel::new(
                spec,
                params,
                Optimizer::None,
                *threads,
            )),
            Engine::Burn { device } => {
                Box::new(crate::burn_engine::BurnInference::new(spec, params, device))
            }
        }
    }
}
