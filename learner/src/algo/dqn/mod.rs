//! Distributed DQN (Ape-X, Horgan et al. 2018): ε-greedy actors push n-step transitions into
//! the learner's replay buffer; the learner does double-DQN updates at a fixed replay ratio.
//!
//! - [`loss`]: the double-DQN target, the Huber loss, Polyak averaging (pure functions).
//! - [`replay`], [`sum_tree`]: the replay buffer, uniform or prioritised.
//! - [`trainer`]: online and target networks, the optimizer, the buffer; one update.
//! - [`exploration`]: the actors' ε, shared by both sides.
//! - [`admission`]: what the handlers do with a pushed transition batch.
//! - [`run`]: the trainer thread's side: replay ratio, target sync, publication, evaluation.

pub mod admission;
pub mod exploration;
pub mod loss;
pub mod replay;
pub mod run;
pub mod sum_tree;
pub mod trainer;

use std::sync::Arc;

use super::setup::{Setup, Started};
use admission::DqnAdmission;
use exploration::Exploration;
use run::DqnRun;

pub use trainer::DqnTrainer;

/// Starts DQN for `setup`.
pub(crate) fn start(setup: Setup) -> Started {
    let Setup {
        config,
        spec,
        initial,
        normalization,
        counters,
        seed,
        engine,
        reference: _,
    } = setup;
    let (queue, rx) = crossbeam_channel::bounded(config.learner.queue_capacity);
    let exploration = Arc::new(Exploration::new(&config, counters.env_steps));
    let admission = DqnAdmission {
        queue,
        exploration: exploration.clone(),
        n_step: config.dqn.n_step,
        gamma: config.dqn.gamma,
    };
    Started::new(admission, rx, move || {
        let trainer = DqnTrainer::new(&config, spec.clone(), &initial, &engine, seed);
        DqnRun::new(config, spec, trainer, exploration, normalization)
    })
}
