//! RMSProp on the flat parameter vector with burn's arithmetic (`burn::optim::RmsProp`,
//! uncentred, no weight decay: `s ← α s + (1 − α) g²`, `u = g / (√s + ε)`, with momentum μ > 0
//! `b ← μ b + u` and `u = b`; `θ ← θ − lr · u`), its state saved in burn's optimizer file format
//! ([`super::pack`]) so that A3C checkpoints resume in either implementation.

use std::path::Path;

use shoal_common::codec::ParamLayout;

use super::pack::{self, FlatOptimizer, Saved, StateFileError};

/// RMSProp's running averages for every parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatRmsProp {
    alpha: f32,
    momentum: f32,
    epsilon: f32,
    square_avg: Vec<f32>,
    buf: Vec<f32>,
}

impl FlatRmsProp {
    /// Fresh state for `len` parameters.
    pub fn new(alpha: f32, momentum: f32, epsilon: f32, len: usize) -> Self {
        Self {
            alpha,
            momentum,
            epsilon,
            square_avg: vec![0.0; len],
            buf: if momentum > 0.0 {
                vec![0.0; len]
            } else {
                Vec::new()
            },
        }
    }
}

impl FlatOptimizer for FlatRmsProp {
    fn step(&mut self, lr: f64, params: &mut [f32], grad: &[f32]) {
        assert_eq!(
            params.len(),
            self.square_avg.len(),
            "one average per parameter"
        );
        assert_eq!(grad.len(), params.len(), "one gradient per parameter");
        let (a, c, eps, lr) = (self.alpha, 1.0 - self.alpha, self.epsilon, lr as f32);
        if self.momentum > 0.0 {
            let mu = self.momentum;
            for (((p, &g), s), b) in params
                .iter_mut()
                .zip(grad)
                .zip(&mut self.square_avg)
                .zip(&mut self.buf)
            {
                *s = *s * a + g * g * c;
                *b = *b * mu + g / (s.sqrt() + eps);
                *p -= *b * lr;
            }
        } else {
            for ((p, &g), s) in params.iter_mut().zip(grad).zip(&mut self.square_avg) {
                *s = *s * a + g * g * c;
                *p -= g / (s.sqrt() + eps) * lr;
            }
        }
    }

    /// The state as burn's RMSProp writes it (the uncentred average twice, as burn keeps it).
    fn save(&self, layout: &ParamLayout, path: &Path) -> Result<(), StateFileError> {
        let mut vectors: Vec<(&str, &[f32])> = vec![
            ("square_avg.square_avg", &self.square_avg),
            ("centered.avg", &self.square_avg),
        ];
        if self.momentum > 0.0 {
            vectors.push(("momentum.buf", &self.buf));
        }
        pack::save(path, layout, &vectors, &[])
    }

    fn load(&mut self, layout: &ParamLayout, path: &Path) -> Result<(), StateFileError> {
        let saved = Saved::open(path, layout)?;
        let len = layout.num_floats();
        let square_avg = saved
            .vector(layout, "square_avg.square_avg")?
            .unwrap_or_else(|| vec![0.0; len]);
        let buf = if self.momentum > 0.0 {
            saved
                .vector(layout, "momentum.buf")?
                .unwrap_or_else(|| vec![0.0; len])
        } else {
            Vec::new()
        };
        (self.square_avg, self.buf) = (square_avg, buf);
        Ok(())
    }
}
