//! The policy/value network shared by learner and actors: its spec and parameter layout
//! ([`spec`]), the shared encoders ([`encoder`]), the network and its forward passes
//! ([`network`]), and the action distributions evaluated on batches ([`policy`]); what a
//! network reads ([`input`]) and the transformer for token sequences ([`sequence`]). Imports
//! run one way: `spec` → `network` → `encoder` → `sequence`, `policy`.

pub mod encoder;
pub mod input;
pub mod network;
pub mod orthogonal;
pub mod policy;
pub mod sequence;
pub mod spec;

pub use encoder::EncoderKind;
pub use input::Input;
pub use network::{Activation, ActorCritic, Mlp, fast_tanh};
pub use policy::{
    ActionHead, LN_SQRT_2PI, PolicyEval, action_rows, argmax, categorical_eval, gaussian_eval,
};
pub use sequence::SequenceShape;
pub use spec::ModelSpec;
