//! Synchronous distributed PPO: every update consumes `ppo.rollouts_per_update` rollouts made
//! with the current parameter version, by whichever actors are connected.
//!
//! - [`loss`]: the clipped-surrogate loss on tensors (the autodiff reference of its gradient at
//!   the heads, `shoal_common::objective`) and its helpers (pure functions).
//! - [`batch`]: rollouts → GAE advantages and value targets, flattened.
//! - [`trainer`]: the network on the run's compute engine; one update per batch.
//! - [`gate`]: which rollouts of the current version arrived (shared by both sides).
//! - `leash`: the KL penalty against the run's starting policy (`ppo.kl_ref_coef`).
//! - [`admission`]: what the handlers do with a pushed rollout.
//! - [`run`]: the trainer thread's side: gather, update, publish.

pub mod admission;
pub mod batch;
pub mod gate;
mod leash;
pub mod loss;
pub mod run;
pub mod trainer;

use std::sync::Arc;

use shoal_common::rollout::RolloutShape;

use super::setup::{Setup, Started};
use admission::PpoAdmission;
use gate::SyncGate;
use run::PpoRun;

pub use batch::Batch;
pub use trainer::{PpoTrainer, UpdateStats};

/// Starts PPO for `setup`.
pub(crate) fn start(setup: Setup) -> Started {
    let Setup {
        config,
        spec,
        initial,
        normalization,
        counters,
        seed,
        engine,
        reference,
    } = setup;
    let (queue, rx) = crossbeam_channel::bounded(config.learner.queue_capacity);
    let gate = Arc::new(SyncGate::new(
        counters.version,
        config.ppo.rollouts_per_update,
        config.deterministic,
    ));
    let admission = PpoAdmission {
        queue,
        gate: gate.clone(),
        shape: RolloutShape::of(&spec, config.n_steps, config.num_envs),
    };
    Started::new(admission, rx, move || {
        let leash = reference.map(|params| {
            let p = &config.ppo;
            leash::KlLeash::new(&spec, &params, &engine, p.kl_ref_coef, p.kl_ref_target)
        });
        let trainer = PpoTrainer::new(&config, spec, &initial, &engine, seed);
        PpoRun::new(config, trainer, gate, normalization, leash)
    })
}
