//! IMPALA (Espeholt et al. 2018) and APPO: asynchronous actor-critic with V-trace. Actors never
//! wait for a version; the learner trains on batches of rollouts from whatever versions
//! arrived and corrects their lag with V-trace (`shoal_common::vtrace`).
//!
//! - [`admission`]: what the handlers do with a pushed rollout (validate, queue, ack).
//! - [`batch`]: rollouts → trajectories, on the batcher thread between admission and trainer.
//! - [`loss`]: the policy-gradient (or clipped-surrogate) loss with V-trace advantages.
//! - [`trainer`]: the model and optimizer; V-trace from the current network, one update.
//! - [`run`]: the trainer thread's side: lag, masking, counting, publishing.

pub mod admission;
pub mod batch;
pub mod loss;
pub mod run;
pub mod trainer;

use shoal_common::rollout::RolloutShape;

use super::setup::{Setup, Started};
use admission::ImpalaAdmission;
use run::ImpalaRun;
use trainer::ImpalaTrainer;

/// Ready batches waiting for the trainer: one, so that the next is assembled while the
/// trainer trains on the current one, and rollouts wait in admission's bounded queue.
const READY_BATCHES: usize = 1;

/// Starts IMPALA for `setup`: admission, the batcher thread, and the trainer.
pub(crate) fn start(setup: Setup) -> Started {
    let Setup {
        config,
        spec,
        initial,
        normalization,
        counters: _,
        seed,
        engine,
        reference: _,
    } = setup;
    let (queue, rollouts) = crossbeam_channel::bounded(config.learner.queue_capacity);
    let (ready, batches) = crossbeam_channel::bounded(READY_BATCHES);
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    let per_batch = config.impala.rollouts_per_batch;
    let taken = rollouts.clone();
    std::thread::Builder::new()
        .name("shoal-batcher".into())
        .spawn(move || batch::batcher(taken, ready, per_batch, stopped))
        .expect("spawn the batcher thread");
    let admission = ImpalaAdmission {
        queue,
        shape: RolloutShape::of(&spec, config.n_steps, config.num_envs),
    };
    Started::new(admission, batches, move || {
        let trainer = ImpalaTrainer::new(&config, spec, &initial, &engine, seed);
        ImpalaRun::new(config, trainer, rollouts, normalization, stop)
    })
}
