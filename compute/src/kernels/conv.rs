//! Convolutions (square kernel, stride, no padding, ReLU after) on host slices, as im2col and
//! one matrix product per layer over the whole batch.
//!
//! Activations between layers are channels-last (`[rows, H, W, C]`): a patch's `kw × C`
//! values under one kernel row are then contiguous, so im2col copies `k` runs per output
//! position and col2im adds them back. The first layer reads the observation's own layout,
//! channels-first (`[rows, C, H, W]`), whose patches are `C·k` runs of `k`. The gemm's weight
//! matrix is `[O, K]` with `K` in the order the patch is copied: burn's `[O, C, k, k]` as it is
//! for a channels-first input, reordered to `[O, k, k, C]` for a channels-last one
//! ([`Conv::patch_weights`]).

use super::gemm::{Operand, matmul};
use super::linear::column_sums;
use super::simd::vectorized;

/// How a convolution's input is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[C, H, W]` per row: the observation.
    ChannelsFirst,
    /// `[H, W, C]` per row: the previous convolution's output.
    ChannelsLast,
}

/// One convolution of an encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv {
    /// Offset of the weight `[O, C, k, k]` in the flat parameters.
    pub weight: usize,
    /// Offset of the bias `[O]`.
    pub bias: usize,
    /// Input `[C, H, W]`.
    pub input: [usize; 3],
    /// Output channels O.
    pub filters: usize,
    /// k.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// The input's layout.
    pub layout: Layout,
}

impl Conv {
    /// Output height and width.
    pub fn out_hw(&self) -> (usize, usize) {
        let [_, h, w] = self.input;
        (
            (h - self.kernel) / self.stride + 1,
            (w - self.kernel) / self.stride + 1,
        )
    }

    /// Output positions P per row.
    pub fn positions(&self) -> usize {
        let (h, w) = self.out_hw();
        h * w
    }

    /// Values of one patch, K = C·k·k.
    pub fn patch(&self) -> usize {
        self.input[0] * self.kernel * self.kernel
    }

    /// Values of one row's input.
    pub fn in_len(&self) -> usize {
        self.input.iter().product()
    }

    /// Values of one row's output, P·O.
    pub fn out_len(&self) -> usize {
        self.positions() * self.filters
    }

    /// Multiply-adds per row.
    pub fn macs(&self) -> usize {
        self.positions() * self.patch() * self.filters
    }

    /// The gemm's `[O, K]` weight matrix from burn's `[O, C, k, k]` in `params`: the same
    /// values for a channels-first input, reordered into `scratch` for a channels-last one.
    pub fn patch_weights<'a>(&self, params: &'a [f32], scratch: &'a mut Vec<f32>) -> &'a [f32] {
        let w = &params[self.weight..self.weight + self.filters * self.patch()];
        if self.layout == Layout::ChannelsFirst {
            return w;
        }
        let (c, k) = (self.input[0], self.kernel);
        scratch.resize(w.len(), 0.0);
        for o in 0..self.filters {
            for ci in 0..c {
                for t in 0..k * k {
                    scratch[(o * k * k + t) * c + ci] = w[(o * c + ci) * k * k + t];
                }
            }
        }
        scratch
    }

    /// Writes the gradient of the `[O, K]` patch-order weight matrix `dw` into burn's
    /// `[O, C, k, k]` order at this layer's offset of `grad`.
    pub fn unpatch_grad(&self, dw: &[f32], grad: &mut [f32]) {
        let g = &mut grad[self.weight..self.weight + self.filters * self.patch()];
        if self.layout == Layout::ChannelsFirst {
            g.copy_from_slice(dw);
            return;
        }
        let (c, k) = (self.input[0], self.kernel);
        for o in 0..self.filters {
            for ci in 0..c {
                for t in 0..k * k {
                    g[(o * c + ci) * k * k + t] = dw[(o * k * k + t) * c + ci];
                }
            }
        }
    }

    /// The patches of `rows` input rows `x` (`[rows·P, K]` into `cols`, resized).
    pub fn im2col(&self, x: &[f32], rows: usize, cols: &mut Vec<f32>) {
        assert_eq!(x.len(), rows * self.in_len(), "input rows");
        let (p, kk) = (self.positions(), self.patch());
        cols.resize(rows * p * kk, 0.0);
        let [c, h, w] = self.input;
        let (oh, ow) = self.out_hw();
        let (k, s) = (self.kernel, self.stride);
        vectorized(
            #[inline(always)]
            || {
                for (sample, out) in x
                    .chunks_exact(self.in_len())
                    .zip(cols.chunks_exact_mut(p * kk))
                {
                    let mut patches = out.chunks_exact_mut(kk);
                    for y in 0..oh {
                        for xo in 0..ow {
                            let patch = patches.next().expect("one patch per position");
                            match self.layout {
                                Layout::ChannelsFirst => {
                                    for ci in 0..c {
                                        for kh in 0..k {
                                            let at = (ci * h + y * s + kh) * w + xo * s;
                                            let to = (ci * k + kh) * k;
                                            patch[to..to + k].copy_from_slice(&sample[at..at + k]);
                                        }
                                    }
                                }
                                Layout::ChannelsLast => {
                                    for kh in 0..k {
                                        let at = ((y * s + kh) * w + xo * s) * c;
                                        let to = kh * k * c;
                                        patch[to..to + k * c]
                                            .copy_from_slice(&sample[at..at + k * c]);
                                    }
                                }
                            }
                        }
                    }
                }
            },
        )
    }

    /// Adds the patch gradients `dcols` (`[rows·P, K]`) into the input gradient `dx` (`rows`
    /// input rows, zeroed here): the transpose of [`Conv::im2col`].
    pub fn col2im(&self, dcols: &[f32], rows: usize, dx: &mut [f32]) {
        let (p, kk) = (self.positions(), self.patch());
        assert_eq!(dcols.len(), rows * p * kk, "patch rows");
        assert_eq!(dx.len(), rows * self.in_len(), "input rows");
        dx.fill(0.0);
        let [c, h, w] = self.input;
        let (oh, ow) = self.out_hw();
        let (k, s) = (self.kernel, self.stride);
        vectorized(
            #[inline(always)]
            || {
                for (sample, d) in dx
                    .chunks_exact_mut(self.in_len())
                    .zip(dcols.chunks_exact(p * kk))
                {
                    let mut patches = d.chunks_exact(kk);
                    for y in 0..oh {
                        for xo in 0..ow {
                            let patch = patches.next().expect("one patch per position");
                            let mut add = |at: usize, from: &[f32]| {
                                for (v, g) in sample[at..at + from.len()].iter_mut().zip(from) {
                                    *v += g;
                                }
                            };
                            match self.layout {
                                Layout::ChannelsFirst => {
                                    for ci in 0..c {
                                        for kh in 0..k {
                                            let to = (ci * k + kh) * k;
                                            add(
                                                (ci * h + y * s + kh) * w + xo * s,
                                                &patch[to..to + k],
                                            );
                                        }
                                    }
                                }
                                Layout::ChannelsLast => {
                                    for kh in 0..k {
                                        let to = kh * k * c;
                                        add(
                                            ((y * s + kh) * w + xo * s) * c,
                                            &patch[to..to + k * c],
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            },
        )
    }

    /// `out = relu(cols · wᵀ + b)` (`[rows·P, O]`, channels-last; resized) from the patches
    /// `cols` and the patch-order weights `w`.
    pub fn forward(&self, w: &[f32], bias: &[f32], cols: &[f32], rows: usize, out: &mut Vec<f32>) {
        let (n, kk, o) = (rows * self.positions(), self.patch(), self.filters);
        out.resize(n * o, 0.0);
        matmul(
            out,
            Operand::new(cols, n, kk),
            Operand::new(w, o, kk).t(),
            false,
        );
        vectorized(
            #[inline(always)]
            || {
                for row in out.chunks_exact_mut(o) {
                    for (v, b) in row.iter_mut().zip(bias) {
                        *v = (*v + b).max(0.0);
                    }
                }
            },
        )
    }

    /// The backward pass of [`Conv::forward`] for `rows` rows: `d_out` (d loss / d output,
    /// overwritten with d loss / d pre-activation) through the ReLU of `out`, then the
    /// patch-order weight gradient into `dw` and the bias's into `db` (written), and d loss /
    /// d input into `dx` when asked (through `dcols`, a scratch of one chunk of patches).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        w: &[f32],
        cols: &[f32],
        out: &[f32],
        d_out: &mut [f32],
        rows: usize,
        dw: &mut [f32],
        db: &mut [f32],
        dx: Option<(&mut [f32], &mut Vec<f32>)>,
    ) {
        let (p, kk, o) = (self.positions(), self.patch(), self.filters);
        let n = rows * p;
        vectorized(
            #[inline(always)]
            || {
                d_out
                    .iter_mut()
                    .zip(out)
                    .for_each(|(d, y)| *d = if *y > 0.0 { *d } else { 0.0 })
            },
        );
        column_sums(d_out, o, db, false);
        matmul(
            dw,
            Operand::new(d_out, n, o).t(),
            Operand::new(cols, n, kk),
            false,
        );
        let Some((dx, dcols)) = dx else {
            return;
        };
        // In chunks of rows, so that the patch gradients stay in cache before col2im.
        let chunk = (CHUNK_VALUES / (p * kk)).clamp(1, rows.max(1));
        let in_len = self.in_len();
        for (start, dx) in (0..rows).step_by(chunk).zip(dx.chunks_mut(chunk * in_len)) {
            let m = chunk.min(rows - start);
            dcols.resize(m * p * kk, 0.0);
            matmul(
                dcols,
                Operand::new(&d_out[start * p * o..(start + m) * p * o], m * p, o),
                Operand::new(w, o, kk),
                false,
            );
            self.col2im(dcols, m, dx);
        }
    }
}

/// Patch-gradient values computed at once before they are added back (~1 MB).
const CHUNK_VALUES: usize = 1 << 18;

/// Pixels 0..=255 to `[0, 1]` (`v / 255`, as burn's network divides them).
pub fn scale_pixels_u8(src: &[u8], dst: &mut Vec<f32>) {
    dst.clear();
    dst.reserve(src.len());
    vectorized(
        #[inline(always)]
        || dst.extend(src.iter().map(|&v| v as f32 / 255.0)),
    )
}

/// Pixels 0..=255 given as `f32` to `[0, 1]`.
pub fn scale_pixels_f32(src: &[f32], dst: &mut Vec<f32>) {
    dst.clear();
    dst.reserve(src.len());
    vectorized(
        #[inline(always)]
        || dst.extend(src.iter().map(|&v| v / 255.0)),
    )
}

/// Per row, `[P, C]` → `[C, P]` (channels-last to burn's channels-first flattening), or back
/// with `back`.
pub fn transpose_rows(
    src: &[f32],
    rows: usize,
    p: usize,
    c: usize,
    back: bool,
    dst: &mut Vec<f32>,
) {
    assert_eq!(src.len(), rows * p * c, "rows of P·C values");
    dst.resize(src.len(), 0.0);
    for (s, d) in src.chunks_exact(p * c).zip(dst.chunks_exact_mut(p * c)) {
        for i in 0..p {
            for j in 0..c {
                if back {
                    d[i * c + j] = s[j * p + i];
                } else {
                    d[j * p + i] = s[i * c + j];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_common::rng::Rng;

    /// The convolution by its definition: out[o, y, x] = relu(b_o + Σ w[o,c,i,j]·in[c, y·s+i,
    /// x·s+j]), channels-first in and out.
    fn direct(conv: &Conv, w: &[f32], b: &[f32], x: &[f32]) -> Vec<f32> {
        let [c, h, wd] = conv.input;
        let (oh, ow) = conv.out_hw();
        let (k, s) = (conv.kernel, conv.stride);
        let mut out = vec![0.0; conv.filters * oh * ow];
        for o in 0..conv.filters {
            for y in 0..oh {
                for xo in 0..ow {
                    let mut acc = b[o] as f64;
                    for ci in 0..c {
                        for i in 0..k {
                            for j in 0..k {
                                acc += w[((o * c + ci) * k + i) * k + j] as f64
                                    * x[(ci * h + y * s + i) * wd + xo * s + j] as f64;
                            }
                        }
                    }
                    out[(o * oh + y) * ow + xo] = acc.max(0.0) as f32;
                }
            }
        }
        out
    }

    #[test]
    fn both_layouts_compute_the_convolution_of_its_definition() {
        let mut rng = Rng::new(8);
        for (input, filters, kernel, stride) in [([3, 9, 11], 4, 3, 2), ([2, 8, 8], 5, 4, 1)] {
            for layout in [Layout::ChannelsFirst, Layout::ChannelsLast] {
                let conv = Conv {
                    weight: 0,
                    bias: filters * input[0] * kernel * kernel,
                    input,
                    filters,
                    kernel,
                    stride,
                    layout,
                };
                let params: Vec<f32> = (0..conv.bias + filters)
                    .map(|_| rng.normal() as f32)
                    .collect();
                let x: Vec<f32> = (0..2 * conv.in_len())
                    .map(|_| rng.normal() as f32)
                    .collect();
                // The same images in the layer's layout.
                let fed = if layout == Layout::ChannelsLast {
                    let [c, h, w] = input;
                    let mut t = Vec::new();
                    transpose_rows(&x, 2, h * w, c, true, &mut t);
                    t
                } else {
                    x.clone()
                };
                let mut scratch = Vec::new();
                let w = conv.patch_weights(&params, &mut scratch).to_vec();
                let (mut cols, mut out) = (Vec::new(), Vec::new());
                conv.im2col(&fed, 2, &mut cols);
                conv.forward(&w, &params[conv.bias..], &cols, 2, &mut out);
                let mut got = Vec::new();
                transpose_rows(&out, 2, conv.positions(), filters, false, &mut got);
                for r in 0..2 {
                    let want = direct(
                        &conv,
                        &params,
                        &params[conv.bias..],
                        &x[r * conv.in_len()..(r + 1) * conv.in_len()],
                    );
                    let got = &got[r * conv.out_len()..(r + 1) * conv.out_len()];
                    for (g, w) in got.iter().zip(&want) {
                        assert!((g - w).abs() < 1e-4, "{layout:?}: {g} vs {w}");
                    }
                }
                // The weight gradient's reordering is the inverse of the weights'.
                let mut grad = vec![0.0; params.len()];
                conv.unpatch_grad(&w, &mut grad);
                assert_eq!(&grad[..conv.bias], &params[..conv.bias]);
            }
        }
    }

    /// col2im is im2col's transpose: ⟨im2col(x), c⟩ = ⟨x, col2im(c)⟩.
    #[test]
    fn col2im_is_the_transpose_of_im2col() {
        let mut rng = Rng::new(2);
        for layout in [Layout::ChannelsFirst, Layout::ChannelsLast] {
            let conv = Conv {
                weight: 0,
                bias: 0,
                input: [3, 10, 7],
                filters: 2,
                kernel: 3,
                stride: 2,
                layout,
            };
            let x: Vec<f32> = (0..2 * conv.in_len())
                .map(|_| rng.normal() as f32)
                .collect();
            let mut cols = Vec::new();
            conv.im2col(&x, 2, &mut cols);
            let c: Vec<f32> = (0..cols.len()).map(|_| rng.normal() as f32).collect();
            let mut dx = vec![0.0; x.len()];
            conv.col2im(&c, 2, &mut dx);
            let lhs: f64 = cols.iter().zip(&c).map(|(a, b)| (a * b) as f64).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| (a * b) as f64).sum();
            assert!(
                (lhs - rhs).abs() < 1e-3 * (1.0 + lhs.abs()),
                "{lhs} vs {rhs}"
            );
        }
    }
}
