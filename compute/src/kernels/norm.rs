//! Layer normalisation over each row (Ba et al. 2016, as burn's `LayerNorm`: biased variance,
//! ε = 1e-5 inside the square root, then `γ·x̂ + β`) and its backward pass.

use super::lanes::{dot, sum};
use super::simd::vectorized;

/// burn's default ε.
pub const EPSILON: f32 = 1e-5;

/// Where one layer norm's `γ` and `β` (`[width]` each) start in the flat parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerNorm {
    /// Offset of γ.
    pub gamma: usize,
    /// Offset of β.
    pub beta: usize,
    /// Row width.
    pub width: usize,
}

impl LayerNorm {
    /// `y = γ·(x − μ)/√(σ² + ε) + β` per row of `x` (`y` resized); `stats` (resized) keeps
    /// each row's mean and 1/√(σ² + ε) for the backward pass.
    pub fn forward(&self, params: &[f32], x: &[f32], y: &mut Vec<f32>, stats: &mut Vec<f32>) {
        let d = self.width;
        let rows = x.len() / d;
        assert_eq!(rows * d, x.len(), "rows of the width");
        y.resize(x.len(), 0.0);
        stats.resize(2 * rows, 0.0);
        let gamma = &params[self.gamma..self.gamma + d];
        let beta = &params[self.beta..self.beta + d];
        vectorized(
            #[inline(always)]
            || {
                for ((row, out), st) in x
                    .chunks_exact(d)
                    .zip(y.chunks_exact_mut(d))
                    .zip(stats.chunks_exact_mut(2))
                {
                    let mean = sum(row) / d as f32;
                    // (x − μ) first in the output row, for the variance and the result.
                    out.iter_mut().zip(row).for_each(|(o, &v)| *o = v - mean);
                    let var = dot(out, out) / d as f32;
                    let rstd = 1.0 / (var + EPSILON).sqrt();
                    for ((o, &g), &b) in out.iter_mut().zip(gamma).zip(beta) {
                        *o = *o * rstd * g + b;
                    }
                    st[0] = mean;
                    st[1] = rstd;
                }
            },
        )
    }

    /// From `dy` of a pass over `x` with `stats`: adds d loss / d x into `dx` and dγ, dβ into
    /// `grad` at this norm's offsets.
    pub fn backward(
        &self,
        params: &[f32],
        x: &[f32],
        stats: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        grad: &mut [f32],
    ) {
        let d = self.width;
        assert_eq!(x.len(), dy.len(), "one gradient per value");
        assert_eq!(x.len(), dx.len(), "one gradient per value");
        let gamma = &params[self.gamma..self.gamma + d];
        let (dgamma, dbeta) = if self.gamma < self.beta {
            let (a, b) = grad.split_at_mut(self.beta);
            (&mut a[self.gamma..self.gamma + d], &mut b[..d])
        } else {
            let (a, b) = grad.split_at_mut(self.gamma);
            (&mut b[..d], &mut a[self.beta..self.beta + d])
        };
        vectorized(
            #[inline(always)]
            || {
                for (((row, g_out), g_in), st) in x
                    .chunks_exact(d)
                    .zip(dy.chunks_exact(d))
                    .zip(dx.chunks_exact_mut(d))
                    .zip(stats.chunks_exact(2))
                {
                    let (mean, rstd) = (st[0], st[1]);
                    // With x̂ = (x − μ)·rstd and g = dy·γ: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)),
                    // where Σ g·x̂ = rstd·(Σ g·x − μ·Σ g).
                    let sum_g = dot(g_out, gamma);
                    let sum_gx = rstd * (dot3(g_out, gamma, row) - mean * sum_g);
                    let (mg, mgx) = (sum_g / d as f32, sum_gx / d as f32);
                    for k in 0..d {
                        let xhat = (row[k] - mean) * rstd;
                        let dyv = g_out[k];
                        g_in[k] += rstd * (dyv * gamma[k] - mg - xhat * mgx);
                        dgamma[k] += dyv * xhat;
                        dbeta[k] += dyv;
                    }
                }
            },
        )
    }
}

/// `Σ a·b·c` over 16 lanes.
#[inline(always)]
fn dot3(a: &[f32], b: &[f32], c: &[f32]) -> f32 {
    const L: usize = super::lanes::LANES;
    let mut acc = [0.0f32; L];
    let n = a.len() / L * L;
    for k in (0..n).step_by(L) {
        for l in 0..L {
            acc[l] += a[k + l] * b[k + l] * c[k + l];
        }
    }
    let tail: f32 = (n..a.len()).map(|k| a[k] * b[k] * c[k]).sum();
    acc.iter().sum::<f32>() + tail
}
