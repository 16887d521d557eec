//! The algorithms on the actor, behind one seam ([`seam`]: what an algorithm does with one
//! connection to the learner, kept across reconnects with its environments), and the one place
//! where the run's algorithm is chosen (`start`).
//!
//! - [`ppo`]: subscribe to versions, push rollouts, wait for the next version.
//! - [`a3c`]: compute n-step actor-critic gradients locally and push them.
//! - [`dqn`]: ε-greedy n-step transitions pushed into the learner's replay buffer.
//! - [`impala`]: rollouts pushed without ever waiting for a version, one push in flight while
//!   the next rollout is collected.
//! - `subscription`: the parameter stream rollout actors (PPO, IMPALA) act on.

pub mod a3c;
pub mod dqn;
pub mod impala;
pub mod ppo;
pub mod seam;
pub(crate) mod subscription;

use shoal_common::settings::{ActorSettings, AlgorithmSettings};

use crate::error::ActorError;

pub(crate) use seam::ActorAlgorithm;
pub use seam::Link;

/// The registry: the algorithm the learner's settings name, with fresh environments.
pub(crate) fn start(settings: &ActorSettings) -> Result<Box<dyn ActorAlgorithm>, ActorError> {
    Ok(match settings.algorithm {
        AlgorithmSettings::Ppo => Box::new(ppo::PpoActor::new(settings)?),
        AlgorithmSettings::A3c(loss) => Box::new(a3c::A3cActor::new(settings, loss)?),
        AlgorithmSettings::Dqn(dqn) => Box::new(dqn::DqnWorker::new(settings, dqn)?),
        AlgorithmSettings::Impala => Box::new(impala::ImpalaActor::new(settings)?),
    })
}
