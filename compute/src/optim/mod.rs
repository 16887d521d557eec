//! Optimizers on the flat parameter vector (Adam, RMSProp) with burn's arithmetic, their state
//! in burn's own optimizer file format ([`pack`]), so that checkpoints written by burn's
//! optimizers and by these resume in either.

pub mod adam;
pub mod pack;
pub mod rmsprop;

pub use adam::FlatAdam;
pub use pack::{FlatOptimizer, StateFileError};
pub use rmsprop::FlatRmsProp;

/// The file an optimizer's state is saved in, inside a checkpoint directory.
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";
