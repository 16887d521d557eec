//! Global gradient-norm clipping of a burn module's gradients, on the device: burn's own
//! clipping is per tensor, so the global L2 norm over all parameters is computed here (the
//! host's flat version is `crate::kernels::clip`).

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// Scales all gradients together so that their global L2 norm is at most `max_norm`
/// (burn's own clipping is per tensor). Stays on the device: no read-back. Returns the norm
/// before clipping.
pub fn clip_global_norm<M: Module>(
    model: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> Tensor<1> {
    struct SumSquares<'a> {
        grads: &'a GradientsParams,
        total: Option<Tensor<1>>,
    }
    impl ModuleVisitor for SumSquares<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let s = g.square().sum();
                self.total = Some(match self.total.take() {
                    Some(t) => t + s,
                    None => s,
                });
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        scale: Tensor<1>,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                let scale: Tensor<D> = self.scale.clone().reshape([1usize; D]);
                self.grads.register(param.id, g * scale);
            }
        }
    }
    let mut sum = SumSquares { grads, total: None };
    model.visit(&mut sum);
    let Some(total) = sum.total else {
        return Tensor::zeros([1], &model.devices()[0]);
    };
    let norm = total.sqrt();
    let scale = norm
        .clone()
        .add_scalar(1e-6)
        .recip()
        .mul_scalar(max_norm)
        .clamp_max(1.0);
    model.visit(&mut Scale { grads, scale });
    norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use shoal_common::model::{ActionHead, Activation, ModelSpec};

    #[test]
    fn global_clipping_scales_all_gradients_together() {
        let spec = ModelSpec::mlp(2, ActionHead::Categorical(2), vec![3], Activation::Tanh);
        let device = Device::flex().autodiff();
        let model = spec.build(&spec.init_params(3), &device);
        let obs = Tensor::<2>::from_data(
            TensorData::new(vec![1.0f32, -2.0, 0.5, 3.0], [2, 2]),
            &device,
        );
        let loss = (model.logits(obs.clone()).sum() + model.values(obs).sum()).mul_scalar(100.0);
        let mut grads = GradientsParams::from_grads(loss.backward(), &model);
        let norm_before = clip_global_norm(&model, &mut grads, 1e9);
        let before = norm_before
            .into_data()
            .convert::<f32>()
            .as_slice::<f32>()
            .unwrap()[0];
        assert!(before > 1.0);
        let _ = clip_global_norm(&model, &mut grads, 0.5);
        let after = clip_global_norm(&model, &mut grads, 1e9);
        let after = after
            .into_data()
            .convert::<f32>()
            .as_slice::<f32>()
            .unwrap()[0];
        assert!((after - 0.5).abs() < 1e-4, "norm after clipping {after}");
    }
}
