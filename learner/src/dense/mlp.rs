//! A stack of dense layers read from the flat parameter vector: the forward pass that keeps
//! what the backward pass needs, and the backward pass into a flat gradient of the same layout.
//! The same function as `shoal_common::model::Mlp` (weights `[in, out]`, `x·W + b`, the
//! non-linearity between layers and none after the last), with `tanh` to within ~1e-7.

use shoal_common::codec::ParamLayout;
use shoal_common::model::Activation;

use super::gemm::{Operand, matmul};

/// One dense layer: where its weight `[d_in, d_out]` and bias `[d_out]` start in the flat
/// vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layer {
    weight: usize,
    bias: usize,
    d_in: usize,
    d_out: usize,
}

/// A head's layers (`actor` or `critic`) located in a parameter layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenseMlp {
    layers: Vec<Layer>,
    activation: Activation,
}

/// The outputs of every layer of one forward pass (after the non-linearity for hidden layers),
/// kept for the backward pass; reused from pass to pass.
#[derive(Debug, Default, Clone)]
pub struct Trace {
    outputs: Vec<Vec<f32>>,
    rows: usize,
}

impl Trace {
    /// The last layer's output, `rows × d_out` row-major.
    pub fn output(&self) -> &[f32] {
        self.outputs.last().map_or(&[], |o| o.as_slice())
    }
}

impl DenseMlp {
    /// The layers `{head}.layers.{i}.weight/bias` of `layout`, or `None` when it has none or
    /// their shapes do not chain.
    pub fn locate(layout: &ParamLayout, head: &str, activation: Activation) -> Option<Self> {
        let mut layers = Vec::new();
        for i in 0.. {
            let Some((weight, w_shape)) = layout.find(&format!("{head}.layers.{i}.weight")) else {
                break;
            };
            let (bias, b_shape) = layout.find(&format!("{head}.layers.{i}.bias"))?;
            let [d_in, d_out] = *w_shape else {
                return None;
            };
            if b_shape != [d_out] || layers.last().is_some_and(|l: &Layer| l.d_out != d_in) {
                return None;
            }
            layers.push(Layer {
                weight: weight.start,
                bias: bias.start,
                d_in,
                d_out,
            });
        }
        (!layers.is_empty()).then_some(Self { layers, activation })
    }

    /// Input width.
    pub fn inputs(&self) -> usize {
        self.layers[0].d_in
    }

    /// Output width.
    pub fn outputs(&self) -> usize {
        self.layers[self.layers.len() - 1].d_out
    }

    /// Multiply-adds of one row's forward pass.
    pub fn macs_per_row(&self) -> usize {
        self.layers.iter().map(|l| l.d_in * l.d_out).sum()
    }

    /// Runs `x` (`rows × inputs` row-major) through the layers with `params`, keeping every
    /// layer's output in `trace`.
    pub fn forward(&self, params: &[f32], x: &[f32], rows: usize, trace: &mut Trace) {
        assert_eq!(x.len(), rows * self.inputs(), "input rows");
        trace.outputs.resize_with(self.layers.len(), Vec::new);
        trace.rows = rows;
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            let (done, rest) = trace.outputs.split_at_mut(i);
            let input = if i == 0 { x } else { &done[i - 1] };
            let out = &mut rest[0];
            // Start from the bias in every row, then add x·W.
            let bias = &params[l.bias..l.bias + l.d_out];
            out.clear();
            for _ in 0..rows {
                out.extend_from_slice(bias);
            }
            matmul(
                out,
                Operand::new(input, rows, l.d_in),
                Operand::new(
                    &params[l.weight..l.weight + l.d_in * l.d_out],
                    l.d_in,
                    l.d_out,
                ),
                true,
            );
            if i != last {
                activate(self.activation, out);
            }
        }
    }

    /// Back-propagates `d_output` (d loss / d output, `rows × outputs`, overwritten as scratch)
    /// through the pass in `trace` that read `x`, writing d loss / d parameter into `grad`
    /// (the flat layout) at this head's offsets. `scratch` is reused between calls.
    pub fn backward(
        &self,
        params: &[f32],
        x: &[f32],
        trace: &Trace,
        d_output: &mut Vec<f32>,
        grad: &mut [f32],
        scratch: &mut Vec<f32>,
    ) {
        let rows = trace.rows;
        let dz = d_output;
        for (i, l) in self.layers.iter().enumerate().rev() {
            let input = if i == 0 { x } else { &trace.outputs[i - 1] };
            // dW = xᵀ·dz, db = Σ_rows dz.
            matmul(
                &mut grad[l.weight..l.weight + l.d_in * l.d_out],
                Operand::new(input, rows, l.d_in).t(),
                Operand::new(dz, rows, l.d_out),
                false,
            );
            let db = &mut grad[l.bias..l.bias + l.d_out];
            db.fill(0.0);
            for row in dz.chunks_exact(l.d_out) {
                for (d, g) in db.iter_mut().zip(row) {
                    *d += g;
                }
            }
            if i == 0 {
                break;
            }
            // d input = dz·Wᵀ, then through the non-linearity that made the input.
            scratch.resize(rows * l.d_in, 0.0);
            matmul(
                scratch,
                Operand::new(dz, rows, l.d_out),
                Operand::new(
                    &params[l.weight..l.weight + l.d_in * l.d_out],
                    l.d_in,
                    l.d_out,
                )
                .t(),
                false,
            );
            derive(self.activation, input, scratch);
            std::mem::swap(dz, scratch);
        }
    }
}

/// The non-linearity in place.
fn activate(activation: Activation, x: &mut [f32]) {
    match activation {
        Activation::Tanh => x.iter_mut().for_each(|v| *v = tanh(*v)),
        Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
    }
}

/// `d ← d · f'(·)` from the non-linearity's outputs `y` (`1 − y²` for tanh; for ReLU 1 where
/// the output is positive, as burn's ReLU).
fn derive(activation: Activation, y: &[f32], d: &mut [f32]) {
    match activation {
        Activation::Tanh => d.iter_mut().zip(y).for_each(|(d, y)| *d *= 1.0 - y * y),
        Activation::Relu => d
            .iter_mut()
            .zip(y)
            .for_each(|(d, y)| *d = if *y > 0.0 { *d } else { 0.0 }),
    }
}

/// `tanh` as a rational function `x·P(x²)/Q(x²)` of degrees 13/6 on `|x| ≤ 7.9053` (where tanh
/// is ±1 in `f32`), the approximation Eigen uses for `float`: branch-free, so the compiler
/// vectorises the loops above, and within 4·10⁻⁷ relative plus 10⁻⁷ of `f32::tanh` (tested), where the libm call
/// per value would cost more than the layers' matrix products.
#[inline]
pub fn tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A1: f32 = 4.893_524_6e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_672e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525e-3;
    const B2: f32 = 2.268_434_6e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = x2 * A13 + A11;
    let p = x2 * p + A9;
    let p = x2 * p + A7;
    let p = x2 * p + A5;
    let p = x2 * p + A3;
    let p = x2 * p + A1;
    let p = x * p;
    let q = x2 * B6 + B4;
    let q = x2 * q + B2;
    let q = x2 * q + B0;
    p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_matches_libm_to_float_precision() {
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4;
            let (got, want) = (tanh(x), x.tanh());
            assert!(
                (got - want).abs() <= 4e-7 * want.abs() + 1e-7,
                "tanh({x}) = {got} vs {want}"
            );
        }
        assert_eq!(tanh(1e9), 1.0);
        assert_eq!(tanh(-1e9), -1.0);
        assert_eq!(tanh(0.0), 0.0);
    }
}
