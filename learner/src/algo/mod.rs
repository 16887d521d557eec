//! The algorithm seam: what an algorithm is to the learner, and the one place where the run's
//! algorithm is chosen (`start`).
//!
//! An algorithm has two sides that share its own state (PPO's sync gate, A3C's staleness
//! bound, DQN's exploration schedule):
//! - [`Admission`](crate::edge::Admission) (declared by the edge), called by the gRPC handlers: validate a push
//!   against the run, decide staleness or lag, queue what the trainer needs, build the ack;
//!   and what a registering actor is told about the algorithm.
//! - [`Algorithm`](crate::trainer::Algorithm) (declared by the trainer loop), owned by the trainer thread: learn from
//!   queued items, publish versions, contribute its quantities to the status row, save and
//!   restore its typed state.
//!
//! Each algorithm lives in its own folder: `ppo/`, `a3c/`, `dqn/`, `impala/` (math, run,
//! admission);
//! `lockstep` says which actors take part in a deterministic run.
//! Adding one: a folder with both sides, an arm in `start`, its section in the run config
//! and its `AlgorithmSettings` for actors.

pub mod a3c;
pub mod dqn;
pub mod impala;
pub(crate) mod lockstep;
pub mod ppo;
pub mod setup;

use shoal_common::config::AlgorithmKind;

pub(crate) use setup::{Setup, Started};

/// The registry: starts the run's algorithm.
pub(crate) fn start(setup: Setup) -> Started {
    match setup.config.algorithm {
        AlgorithmKind::Ppo => ppo::start(setup),
        AlgorithmKind::A3c => a3c::start(setup),
        AlgorithmKind::Dqn => dqn::start(setup),
        AlgorithmKind::Impala => impala::start(setup),
    }
}
