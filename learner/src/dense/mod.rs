//! The learner's own compute for dense (`mlp`) models, on the host: matrix products through one
//! GEMM crate, dense layers with their backward pass, and Adam and RMSProp on the flat parameter
//! vector (their state in burn's file format).
//! The algorithms' hot loops use it instead of burn's autodiff for `mlp` models, where burn's
//! per-operation dispatch, graph building and allocation cost several times the arithmetic
//! (issue 19); every other model trains through burn.

pub mod adam;
pub mod gemm;
pub mod mlp;
pub mod model;
pub mod pack;
pub mod rmsprop;

pub use adam::FlatAdam;
pub use mlp::{DenseMlp, Trace};
pub use model::HostModel;
pub use pack::{FlatOptimizer, StateFileError};
pub use rmsprop::FlatRmsProp;

/// burn's gradients of `model`'s parameters, flat in layout order: what the host code is tested
/// against (here and in the integration tests).
///
/// # Panics
/// When a parameter has no gradient.
pub fn flat_grads(
    model: &shoal_common::model::ActorCritic,
    grads: &burn::optim::GradientsParams,
) -> Vec<f32> {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::Tensor;
    struct Gather<'a> {
        grads: &'a burn::optim::GradientsParams,
        out: Vec<f32>,
    }
    impl ModuleVisitor for Gather<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let g = self
                .grads
                .get::<D>(param.id)
                .expect("a gradient per parameter");
            self.out.extend(
                g.into_data()
                    .convert::<f32>()
                    .as_slice::<f32>()
                    .expect("f32"),
            );
        }
    }
    let mut gather = Gather {
        grads,
        out: Vec::new(),
    };
    model.visit(&mut gather);
    gather.out
}

/// The largest `|a_i − b_i|` (for tests comparing parameter vectors).
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vectors of one layout");
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}
