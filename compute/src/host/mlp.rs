//! A stack of dense layers read from the flat parameter vector (a head, or the whole `mlp`
//! model's policy or value network): the forward pass that keeps what the backward pass needs,
//! and the backward pass into the flat gradient and, when asked, into its input. The same
//! function as `shoal_common::model::Mlp` (weights `[in, out]`, `x·W + b`, the non-linearity
//! between layers and none after the last).

use shoal_common::codec::ParamLayout;
use shoal_common::model::Activation;

use crate::kernels::activation::Nonlinearity;
use crate::kernels::linear::Linear;

/// A head's layers (`actor` or `critic`) located in a parameter layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mlp {
    layers: Vec<Linear>,
    activation: Nonlinearity,
}

/// The outputs of every layer of one forward pass (after the non-linearity for hidden layers),
/// kept for the backward pass; reused from pass to pass.
#[derive(Debug, Default, Clone)]
pub(crate) struct MlpTrace {
    outputs: Vec<Vec<f32>>,
    rows: usize,
    scratch: Vec<f32>,
    d: Vec<f32>,
}

impl MlpTrace {
    /// The last layer's output, `rows × d_out` row-major.
    pub(crate) fn output(&self) -> &[f32] {
        self.outputs.last().map_or(&[], |o| o.as_slice())
    }
}

/// The kernels' non-linearity for a model's.
pub(crate) fn nonlinearity(activation: Activation) -> Nonlinearity {
    match activation {
        Activation::Tanh => Nonlinearity::Tanh,
        Activation::Relu => Nonlinearity::Relu,
    }
}

impl Mlp {
    /// The layers `{head}.layers.{i}.weight/bias` of `layout`, or `None` when it has none or
    /// their shapes do not chain.
    pub(crate) fn locate(layout: &ParamLayout, head: &str, activation: Activation) -> Option<Self> {
        let mut layers = Vec::new();
        for i in 0.. {
            let Some((weight, w_shape)) = layout.find(&format!("{head}.layers.{i}.weight")) else {
                break;
            };
            let (bias, b_shape) = layout.find(&format!("{head}.layers.{i}.bias"))?;
            let [d_in, d_out] = *w_shape else {
                return None;
            };
            if b_shape != [d_out] || layers.last().is_some_and(|l: &Linear| l.d_out != d_in) {
                return None;
            }
            layers.push(Linear {
                weight: weight.start,
                bias: bias.start,
                d_in,
                d_out,
            });
        }
        (!layers.is_empty()).then_some(Self {
            layers,
            activation: nonlinearity(activation),
        })
    }

    /// Input width.
    pub(crate) fn inputs(&self) -> usize {
        self.layers[0].d_in
    }

    /// Multiply-adds of one row's forward pass.
    pub(crate) fn macs_per_row(&self) -> usize {
        self.layers.iter().map(Linear::macs).sum()
    }

    /// Runs `x` (`rows × inputs` row-major) through the layers with `params`, keeping every
    /// layer's output in `trace`.
    pub(crate) fn forward(&self, params: &[f32], x: &[f32], rows: usize, trace: &mut MlpTrace) {
        assert_eq!(x.len(), rows * self.inputs(), "input rows");
        trace.outputs.resize_with(self.layers.len(), Vec::new);
        trace.rows = rows;
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            let (done, rest) = trace.outputs.split_at_mut(i);
            let input = if i == 0 { x } else { &done[i - 1] };
            l.forward(params, input, rows, &mut rest[0]);
            if i != last {
                self.activation.apply(&mut rest[0]);
            }
        }
    }

    /// Back-propagates `d_output` (d loss / d output, `rows × outputs`) through the pass in
    /// `trace` that read `x`, writing d loss / d parameter into `grad` (the flat layout) at this
    /// head's offsets, and d loss / d x into `dx` when asked.
    pub(crate) fn backward(
        &self,
        params: &[f32],
        x: &[f32],
        trace: &mut MlpTrace,
        d_output: &[f32],
        grad: &mut [f32],
        dx: Option<&mut Vec<f32>>,
    ) {
        let rows = trace.rows;
        let MlpTrace {
            outputs,
            scratch,
            d,
            ..
        } = trace;
        d.clear();
        d.extend_from_slice(d_output);
        let mut dx = dx;
        for (i, l) in self.layers.iter().enumerate().rev() {
            let input = if i == 0 { x } else { &outputs[i - 1] };
            if i == 0 {
                l.backward(params, input, d, rows, grad, false, dx.take());
                break;
            }
            l.backward(params, input, d, rows, grad, false, Some(scratch));
            // Through the non-linearity that made this layer's input.
            self.activation.derive(input, scratch);
            std::mem::swap(d, scratch);
        }
    }
}
