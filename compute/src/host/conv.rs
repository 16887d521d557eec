//! The host engine's convolutional encoder (`nature_cnn`, `small_cnn`): the pixels scaled to
//! `[0, 1]` (the first layer's input), the convolutions with ReLU ([`crate::kernels::conv`]),
//! the last one's output flattened in burn's channels-first order, one dense layer with ReLU;
//! the backward pass through all of it into the flat gradient.

use shoal_common::codec::ParamLayout;
use shoal_common::model::EncoderKind;

use crate::engine::Rows;
use crate::kernels::conv::{Conv, Layout, scale_pixels_f32, scale_pixels_u8, transpose_rows};
use crate::kernels::linear::Linear;
use crate::kernels::simd::vectorized;

/// The encoder's layers located in a parameter layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConvNet {
    convs: Vec<Conv>,
    fc: Linear,
}

/// One forward pass's values, kept for the backward pass; reused from pass to pass.
#[derive(Debug, Default, Clone)]
pub(crate) struct ConvTrace {
    rows: usize,
    scaled: Vec<f32>,
    cols: Vec<Vec<f32>>,
    outs: Vec<Vec<f32>>,
    /// Each channels-last layer's weights in patch order.
    weights: Vec<Vec<f32>>,
    flat: Vec<f32>,
    features: Vec<f32>,
    d: Vec<f32>,
    d_next: Vec<f32>,
    dw: Vec<f32>,
    dcols: Vec<f32>,
}

impl ConvTrace {
    /// The features `[rows, width]` of the last pass.
    pub(crate) fn features(&self) -> &[f32] {
        &self.features
    }
}

impl ConvNet {
    /// `kind`'s layers `encoder.Conv.*` in `layout` for `[C, H, W]` images, or `None` when the
    /// layout does not have them.
    pub(crate) fn locate(
        layout: &ParamLayout,
        kind: EncoderKind,
        image: [usize; 3],
    ) -> Option<Self> {
        let shapes = kind.conv_shapes(image).ok()?;
        let mut input = image;
        let mut convs = Vec::new();
        for (i, (l, out)) in kind.conv_layers().iter().zip(&shapes).enumerate() {
            let (weight, w_shape) = layout.find(&format!("encoder.Conv.convs.{i}.weight"))?;
            let (bias, _) = layout.find(&format!("encoder.Conv.convs.{i}.bias"))?;
            if w_shape != [l.filters, input[0], l.kernel, l.kernel] {
                return None;
            }
            convs.push(Conv {
                weight: weight.start,
                bias: bias.start,
                input,
                filters: l.filters,
                kernel: l.kernel,
                stride: l.stride,
                layout: if i == 0 {
                    Layout::ChannelsFirst
                } else {
                    Layout::ChannelsLast
                },
            });
            input = *out;
        }
        let (weight, w_shape) = layout.find("encoder.Conv.fc.weight")?;
        let (bias, _) = layout.find("encoder.Conv.fc.bias")?;
        let &[d_in, d_out] = w_shape else {
            return None;
        };
        if d_in != input.iter().product::<usize>() || convs.is_empty() {
            return None;
        }
        Some(Self {
            convs,
            fc: Linear {
                weight: weight.start,
                bias: bias.start,
                d_in,
                d_out,
            },
        })
    }

    /// Multiply-adds of one row's forward pass.
    pub(crate) fn macs_per_row(&self) -> usize {
        self.convs.iter().map(Conv::macs).sum::<usize>() + self.fc.macs()
    }

    /// The features of `rows` images `obs` (pixels 0..=255, channels-first), keeping what the
    /// backward pass needs in `trace`.
    pub(crate) fn forward(
        &self,
        params: &[f32],
        obs: Rows<'_>,
        rows: usize,
        trace: &mut ConvTrace,
    ) {
        let n = self.convs.len();
        let ConvTrace {
            rows: trace_rows,
            scaled,
            cols,
            outs,
            weights,
            flat,
            features,
            ..
        } = trace;
        *trace_rows = rows;
        match obs {
            Rows::U8(v) => scale_pixels_u8(v, scaled),
            Rows::F32(v) => scale_pixels_f32(v, scaled),
        }
        cols.resize_with(n, Vec::new);
        outs.resize_with(n, Vec::new);
        weights.resize_with(n, Vec::new);
        for (i, conv) in self.convs.iter().enumerate() {
            let (done, rest) = outs.split_at_mut(i);
            let input = if i == 0 {
                &scaled[..]
            } else {
                &done[i - 1][..]
            };
            conv.im2col(input, rows, &mut cols[i]);
            let w = conv.patch_weights(params, &mut weights[i]);
            conv.forward(
                w,
                &params[conv.bias..conv.bias + conv.filters],
                &cols[i],
                rows,
                &mut rest[0],
            );
        }
        let last = &self.convs[n - 1];
        transpose_rows(
            &outs[n - 1],
            rows,
            last.positions(),
            last.filters,
            false,
            flat,
        );
        self.fc.forward(params, flat, rows, features);
        vectorized(
            #[inline(always)]
            || features.iter_mut().for_each(|v| *v = v.max(0.0)),
        );
    }

    /// Back-propagates `d_features` (d loss / d features) through the pass in `trace` into
    /// `grad` (the flat layout, at the encoder's offsets).
    pub(crate) fn backward(
        &self,
        params: &[f32],
        trace: &mut ConvTrace,
        d_features: &mut [f32],
        grad: &mut [f32],
    ) {
        let ConvTrace {
            rows,
            cols,
            outs,
            weights,
            flat,
            features,
            d,
            d_next,
            dw,
            dcols,
            ..
        } = trace;
        let rows = *rows;
        vectorized(
            #[inline(always)]
            || {
                d_features
                    .iter_mut()
                    .zip(features.iter())
                    .for_each(|(g, y)| *g = if *y > 0.0 { *g } else { 0.0 })
            },
        );
        self.fc
            .backward(params, flat, d_features, rows, grad, false, Some(d_next));
        let n = self.convs.len();
        let last = &self.convs[n - 1];
        transpose_rows(d_next, rows, last.positions(), last.filters, true, d);
        for (i, conv) in self.convs.iter().enumerate().rev() {
            let w: &[f32] = match conv.layout {
                Layout::ChannelsFirst => {
                    &params[conv.weight..conv.weight + conv.filters * conv.patch()]
                }
                Layout::ChannelsLast => &weights[i],
            };
            dw.resize(conv.filters * conv.patch(), 0.0);
            let (before, from_bias) = grad.split_at_mut(conv.bias);
            let db = &mut from_bias[..conv.filters];
            let dx = if i > 0 {
                d_next.resize(rows * conv.in_len(), 0.0);
                Some((&mut d_next[..], &mut *dcols))
            } else {
                None
            };
            conv.backward(w, &cols[i], &outs[i], d, rows, dw, db, dx);
            conv.unpatch_grad(dw, before);
            std::mem::swap(d, d_next);
        }
    }
}
