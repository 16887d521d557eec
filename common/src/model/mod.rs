//! The policy/value network shared by learner and actors: its spec and parameter layout
//! ([`spec`]), the shared encoders ([`encoder`]), the network and its forward passes
//! ([`network`]), and the action distributions evaluated on batches ([`policy`]). Imports run
//! one way: `spec` → `network` → `encoder`, `policy`.

pub mod encoder;
pub mod network;
pub mod policy;
pub mod spec;

pub use encoder::EncoderKind;
pub use network::{Activation, ActorCritic, Mlp, fast_tanh};
pub use policy::{
    ActionHead, LN_SQRT_2PI, PolicyEval, action_rows, argmax, categorical_eval, gaussian_eval,
};
pub use spec::ModelSpec;
