//! A3C (Mnih et al. 2016): actors compute n-step actor-critic gradients on their local copy
//! and push them; the learner applies them as they arrive, within a staleness bound.
//!
//! - [`trainer`]: the flat parameters and the optimizer; one step per gradient.
//! - [`staleness`]: the staleness bound, shared by both sides, and its one count.
//! - [`admission`]: what the handlers do with a pushed gradient.
//! - [`run`]: the trainer thread's side: apply bursts, publish.

pub mod admission;
pub mod run;
pub mod staleness;
pub mod trainer;

use std::sync::Arc;

use shoal_common::settings::A3cLoss;

use super::setup::{Setup, Started};
use admission::A3cAdmission;
use run::A3cRun;
use staleness::StalenessBound;

pub use trainer::{A3cTrainer, optimizer};

/// Starts A3C for `setup`.
pub(crate) fn start(setup: Setup) -> Started {
    let Setup {
        config,
        spec,
        initial,
        normalization,
        counters,
        ..
    } = setup;
    let (queue, rx) = crossbeam_channel::bounded(config.learner.queue_capacity);
    let staleness = Arc::new(StalenessBound::new(
        config.a3c.max_staleness,
        counters.gradients_stale,
    ));
    let admission = A3cAdmission {
        queue,
        staleness: staleness.clone(),
        loss: A3cLoss::from_config(&config.a3c),
        num_floats: spec.layout().num_floats(),
    };
    Started::new(admission, rx, move || {
        let trainer = A3cTrainer::new(&config.a3c, &initial);
        A3cRun::new(config, trainer, staleness, normalization, &counters)
    })
}
