//! Adam on the flat parameter vector, with burn's arithmetic (`burn::optim::Adam`: bias
//! corrections folded into one factor, ε scaled by √(1 − β₂ᵗ)), and its state saved in burn's
//! own optimizer file format ([`super::pack`]: `momentum.moment_1`, `momentum.moment_2`,
//! `momentum.time`), so checkpoints written by either implementation resume in the other.

use std::path::Path;

use burn_pack::Scalar;
use shoal_common::codec::ParamLayout;

use super::pack::{self, FlatOptimizer, Saved, StateFileError};

/// Adam's moments for every parameter, in layout order.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    moment_1: Vec<f32>,
    moment_2: Vec<f32>,
    time: usize,
}

impl FlatAdam {
    /// Fresh state for `len` parameters with burn's default β = (0.9, 0.999).
    pub fn new(epsilon: f32, len: usize) -> Self {
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon,
            moment_1: vec![0.0; len],
            moment_2: vec![0.0; len],
            time: 0,
        }
    }
}

impl FlatOptimizer for FlatAdam {
    /// `params ← params − lr · m̂ / (√v̂ + ε)`.
    fn step(&mut self, lr: f64, params: &mut [f32], grad: &[f32]) {
        assert_eq!(
            params.len(),
            self.moment_1.len(),
            "one moment per parameter"
        );
        assert_eq!(grad.len(), params.len(), "one gradient per parameter");
        self.time += 1;
        let t = self.time as i32;
        let (b1, b2) = (self.beta_1, self.beta_2);
        let bc2_sqrt = (1.0 - b2.powi(t)).sqrt();
        let factor = bc2_sqrt / (1.0 - b1.powi(t));
        let eps = self.epsilon * bc2_sqrt;
        let lr = lr as f32;
        let (c1, c2) = (1.0 - b1, 1.0 - b2);
        for (((p, &g), m), v) in params
            .iter_mut()
            .zip(grad)
            .zip(&mut self.moment_1)
            .zip(&mut self.moment_2)
        {
            *m = *m * b1 + g * c1;
            *v = *v * b2 + g * g * c2;
            *p -= (*m * factor) / (v.sqrt() + eps) * lr;
        }
    }

    /// The state as burn's Adam writes it for a model built by `ModelSpec::build` (or for A3C's
    /// one flat parameter).
    fn save(&self, layout: &ParamLayout, path: &Path) -> Result<(), StateFileError> {
        pack::save(
            path,
            layout,
            &[
                ("momentum.moment_1", &self.moment_1),
                ("momentum.moment_2", &self.moment_2),
            ],
            &[("momentum.time", Scalar::from(self.time))],
        )
    }

    fn load(&mut self, layout: &ParamLayout, path: &Path) -> Result<(), StateFileError> {
        let saved = Saved::open(path, layout)?;
        let zeros = || vec![0.0; layout.num_floats()];
        let moment_1 = saved
            .vector(layout, "momentum.moment_1")?
            .unwrap_or_else(zeros);
        let moment_2 = saved
            .vector(layout, "momentum.moment_2")?
            .unwrap_or_else(zeros);
        let time = saved.max_count(layout, "momentum.time")?;
        (self.moment_1, self.moment_2, self.time) = (moment_1, moment_2, time);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::tensor::{Device, Tensor, TensorData};
    use shoal_common::model::{ActionHead, Activation, ModelSpec};
    use shoal_common::rng::Rng;

    /// Gradients of a seeded loss of `model` by burn's autodiff, flat and as burn's.
    fn seeded_grads(
        spec: &ModelSpec,
        model: &shoal_common::model::ActorCritic,
        seed: u64,
    ) -> (Vec<f32>, GradientsParams) {
        let device = Device::flex().autodiff();
        let mut rng = Rng::new(seed);
        let obs: Vec<f32> = (0..8 * spec.obs_dim).map(|_| rng.normal() as f32).collect();
        let obs = Tensor::<2>::from_data(TensorData::new(obs, [8, spec.obs_dim]), &device);
        let (logits, values) = model.heads(obs);
        let loss = logits.square().sum() + values.sum();
        let grads = GradientsParams::from_grads(loss.backward(), model);
        (crate::burn_engine::flat_grads(model, &grads), grads)
    }

    #[test]
    fn steps_equal_burns_adam_and_state_files_are_interchangeable() {
        let spec = ModelSpec::mlp(3, ActionHead::Categorical(2), vec![5], Activation::Tanh);
        let layout = spec.layout();
        let initial = spec.init_params(4);
        let device = Device::flex().autodiff();
        let mut model = spec.build(&initial, &device);
        let mut burn_adam = AdamConfig::new().with_epsilon(1e-5).init();
        let mut flat = initial.clone();
        let mut adam = FlatAdam::new(1e-5, flat.len());
        let dir = tempfile::tempdir().unwrap();
        for step in 0..3u64 {
            let (g, grads) = seeded_grads(&spec, &model, step);
            model = burn_adam.step(3e-3, model, grads);
            adam.step(3e-3, &mut flat, &g);
            let want = model.to_flat();
            for (a, b) in flat.iter().zip(&want) {
                assert!((a - b).abs() < 1e-6, "step {step}: {a} vs {b}");
            }
            // Round trips through the other's file: burn's written, read here; ours, read by burn.
            let burn_file = dir.path().join("burn.bpk");
            burn_adam.save(&burn_file).unwrap();
            let mut reread = FlatAdam::new(1e-5, flat.len());
            reread.load(&layout, &burn_file).unwrap();
            assert_eq!(reread.time, adam.time);
            for (a, b) in reread.moment_2.iter().zip(&adam.moment_2) {
                assert!((a - b).abs() <= 1e-6 * b.abs() + 1e-12, "{a} vs {b}");
            }
            let ours = dir.path().join("ours.bpk");
            adam.save(&layout, &ours).unwrap();
            burn_adam = burn_adam.clone().load(&ours).unwrap();
        }
        // Another model's file (A3C's one flat parameter) is refused; the state stays as it was.
        let before = adam.clone();
        let flat = ParamLayout::new(vec![shoal_common::codec::ParamEntry::new(
            "values",
            vec![layout.num_floats()],
        )]);
        let other_file = dir.path().join("other.bpk");
        adam.save(&flat, &other_file).unwrap();
        assert!(adam.load(&layout, &other_file).is_err());
        assert!(adam.load(&layout, &dir.path().join("missing.bpk")).is_err());
        assert_eq!(adam, before);
    }
}
