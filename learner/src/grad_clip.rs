//! Global gradient-norm clipping: burn's own clipping is per tensor, so the global L2 norm over
//! all parameters is computed here, on the device for a module's gradients
//! ([`clip_global_norm`]) and on the host for a flat gradient ([`clip_flat_global_norm`]).

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

/// `Σ x²` in `f64`, over eight interleaved partial sums: one running sum is a chain of dependent
/// additions at one per ~4 cycles, which made this a third of an A3C gradient's apply.
pub fn sum_of_squares(values: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let chunks = values.chunks_exact(8);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v as f64 * v as f64;
        }
    }
    let tail: f64 = tail.iter().map(|&v| v as f64 * v as f64).sum();
    lanes.iter().sum::<f64>() + tail
}

/// Scales `grad` in place so that its L2 norm is at most `max_norm`; returns the norm before.
pub fn clip_flat_global_norm(grad: &mut [f32], max_norm: f64) -> f64 {
    let norm = sum_of_squares(grad).sqrt();
    if norm > max_norm {
        let scale = (max_norm / (norm + 1e-6)) as f32;
        for g in grad.iter_mut() {
            *g *= scale;
        }
    }
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

    #[test]
    fn clipping_bounds_the_norm_and_keeps_small_gradients() {
        let mut g = vec![3.0f32, 4.0];
        assert!((clip_flat_global_norm(&mut g, 1.0) - 5.0).abs() < 1e-12);
        let n: f32 = g.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-5 && (g[0] / g[1] - 0.75).abs() < 1e-6);
        let mut small = vec![0.1f32, 0.2];
        clip_flat_global_norm(&mut small, 1.0);
        assert_eq!(small, vec![0.1, 0.2]);
    }

    #[test]
    fn sum_of_squares_matches_the_plain_sum() {
        for n in [0, 1, 7, 8, 9, 17, 9155] {
            let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
            let plain: f64 = values.iter().map(|&v| v as f64 * v as f64).sum();
            assert!(
                (sum_of_squares(&values) - plain).abs() <= 1e-12 * (1.0 + plain),
                "{n}"
            );
        }
    }
}
