//! Dense (fully connected) layers on row-major host slices, `y = x·W + b` with `W` `[d_in,
//! d_out]` as burn's `Linear` stores it: the forward pass and the backward pass into the
//! weight's and bias's gradients and the input's.

use super::gemm::{Operand, matmul};
use super::simd::vectorized;

/// Where one dense layer's weight `[d_in, d_out]` and bias `[d_out]` start in the flat
/// parameter vector, and its widths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Linear {
    /// Offset of the weight.
    pub weight: usize,
    /// Offset of the bias.
    pub bias: usize,
    /// Input width.
    pub d_in: usize,
    /// Output width.
    pub d_out: usize,
}

impl Linear {
    /// Its weight in `params`.
    pub fn w<'a>(&self, params: &'a [f32]) -> &'a [f32] {
        &params[self.weight..self.weight + self.d_in * self.d_out]
    }

    /// Its bias in `params`.
    pub fn b<'a>(&self, params: &'a [f32]) -> &'a [f32] {
        &params[self.bias..self.bias + self.d_out]
    }

    /// Multiply-adds per row.
    pub fn macs(&self) -> usize {
        self.d_in * self.d_out
    }

    /// `out = x·W + b` for `rows` rows of `x` (`out` is resized).
    pub fn forward(&self, params: &[f32], x: &[f32], rows: usize, out: &mut Vec<f32>) {
        assert_eq!(x.len(), rows * self.d_in, "input rows");
        out.clear();
        let bias = self.b(params);
        for _ in 0..rows {
            out.extend_from_slice(bias);
        }
        matmul(
            out,
            Operand::new(x, rows, self.d_in),
            Operand::new(self.w(params), self.d_in, self.d_out),
            true,
        );
    }

    /// From `dy` (d loss / d output, `rows × d_out`) of a pass that read `x`: writes dW = xᵀ·dy
    /// and db = Σ_rows dy into `grad` at this layer's offsets (added to what is there with
    /// `accumulate`), and d loss / d x into `dx` when asked (resized).
    #[expect(
        clippy::too_many_arguments,
        reason = "the layer's inputs and outputs, each its own buffer"
    )]
    pub fn backward(
        &self,
        params: &[f32],
        x: &[f32],
        dy: &[f32],
        rows: usize,
        grad: &mut [f32],
        accumulate: bool,
        dx: Option<&mut Vec<f32>>,
    ) {
        matmul(
            &mut grad[self.weight..self.weight + self.d_in * self.d_out],
            Operand::new(x, rows, self.d_in).t(),
            Operand::new(dy, rows, self.d_out),
            accumulate,
        );
        column_sums(
            dy,
            self.d_out,
            &mut grad[self.bias..self.bias + self.d_out],
            accumulate,
        );
        if let Some(dx) = dx {
            dx.resize(rows * self.d_in, 0.0);
            matmul(
                dx,
                Operand::new(dy, rows, self.d_out),
                Operand::new(self.w(params), self.d_in, self.d_out).t(),
                false,
            );
        }
    }
}

/// `out = Σ_rows m` (or `out += …` with `accumulate`) for row-major `m` of `cols` columns.
pub fn column_sums(m: &[f32], cols: usize, out: &mut [f32], accumulate: bool) {
    assert_eq!(out.len(), cols, "one sum per column");
    if !accumulate {
        out.fill(0.0);
    }
    vectorized(
        #[inline(always)]
        || {
            for row in m.chunks_exact(cols) {
                for (o, v) in out.iter_mut().zip(row) {
                    *o += v;
                }
            }
        },
    )
}

/// `y += x`, elementwise.
pub fn add_assign(y: &mut [f32], x: &[f32]) {
    assert_eq!(y.len(), x.len(), "equal lengths");
    vectorized(
        #[inline(always)]
        || y.iter_mut().zip(x).for_each(|(y, x)| *y += x),
    )
}
