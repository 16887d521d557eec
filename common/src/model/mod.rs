//! The policy/value network shared by learner and actors: its spec and parameter layout
//! ([`spec`]), the network and its forward passes ([`network`]), and the action distributions
//! evaluated on batches ([`policy`]). Imports run one way: `spec` → `network` → `policy`.

pub mod network;
pub mod policy;
pub mod spec;

pub use network::{Activation, ActorCritic, Mlp, fast_tanh};
pub use policy::{
    ActionHead, LN_SQRT_2PI, PolicyEval, action_rows, argmax, categorical_eval, gaussian_eval,
};
pub use spec::ModelSpec;
