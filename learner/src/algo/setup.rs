//! What an algorithm is started from (`Setup`) and what a started one hands over
//! (`Started`): its admission for the edge, and the trainer thread's body.

use std::sync::Arc;

use crossbeam_channel::Receiver;
use shoal_common::config::RunConfig;
use shoal_common::model::ModelSpec;
use shoal_common::normalize::NormStats;
use shoal_compute::Engine;

use crate::edge::Admission;
use crate::error::LearnerError;
use crate::summary::RunSummary;
use crate::telemetry::RunCounters;
use crate::trainer::{self, Algorithm, TrainerEnv};

/// What an algorithm is built from.
pub(crate) struct Setup {
    /// The run.
    pub config: Arc<RunConfig>,
    /// The network.
    pub spec: ModelSpec,
    /// The parameters to start from (initial, or a checkpoint's).
    pub initial: Vec<f32>,
    /// The normalisation statistics to start from.
    pub normalization: NormStats,
    /// The counters to start from.
    pub counters: RunCounters,
    /// Drives minibatch order and replay sampling.
    pub seed: u64,
    /// The compute engine the networks train on.
    pub engine: Engine,
    /// The frozen policy of PPO's KL leash (`ppo.kl_ref_coef` > 0): the run's starting
    /// parameters.
    pub reference: Option<Vec<f32>>,
}

/// A started algorithm: its admission for the edge, and the trainer thread's body.
pub(crate) struct Started {
    /// For the gRPC handlers.
    pub admission: Arc<dyn Admission>,
    /// Runs on the trainer thread until the run ends.
    pub trainer: Box<dyn FnOnce(TrainerEnv) -> Result<RunSummary, LearnerError> + Send>,
}

impl Started {
    /// `admission`, and a trainer that builds its algorithm with `build` on the trainer thread
    /// and drives it on what `rx` receives.
    pub(crate) fn new<A: Algorithm + 'static>(
        admission: impl Admission,
        rx: Receiver<A::Item>,
        build: impl FnOnce() -> A + Send + 'static,
    ) -> Self {
        Self {
            admission: Arc::new(admission),
            trainer: Box::new(move |env| trainer::drive(build(), rx, env)),
        }
    }
}
