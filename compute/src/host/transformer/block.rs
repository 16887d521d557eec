//! One pre-norm transformer layer as burn's `TransformerEncoderLayer` (norm-first) computes
//! it: `x_mid = x + Attention(norm_2(x))`, `x_out = x_mid + FFN(norm_1(x_mid))` with a ReLU
//! feed-forward network, forward and backward, over texts packed one after the other.
//!
//! A layer whose output is read only at each text's last position (the last one: the heads
//! read nothing else) computes everything after the keys and values there alone: keys and
//! values need every position, the query, the attention, the projection and the feed-forward
//! network only the last. Its output has one row per text.

use crate::kernels::activation::Nonlinearity;
use crate::kernels::attention::{Attention, AttentionScratch};
use crate::kernels::gemm::{Operand, Target, matmul, matmul_to};
use crate::kernels::linear::{Linear, add_assign, column_sums};
use crate::kernels::norm::LayerNorm;
use crate::kernels::simd::vectorized;

/// One transformer layer's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Block {
    /// burn's `norm_2`, before the attention (pre-norm).
    pub(super) norm_attention: LayerNorm,
    pub(super) query: Linear,
    pub(super) key: Linear,
    pub(super) value: Linear,
    pub(super) output: Linear,
    /// burn's `norm_1`, before the feed-forward network.
    pub(super) norm_ff: LayerNorm,
    pub(super) inner: Linear,
    pub(super) outer: Linear,
}

/// One layer's values of a forward pass, kept for its backward pass.
#[derive(Debug, Default, Clone)]
pub(super) struct BlockTrace {
    last_only: bool,
    /// The residual stream entering the layer `[T, d]`.
    pub(super) x_in: Vec<f32>,
    a: Vec<f32>,
    a_stats: Vec<f32>,
    /// The concatenated query, key and value weights `[d, 3d]` and biases `[3d]`.
    w_qkv: Vec<f32>,
    b_qkv: Vec<f32>,
    qkv: Vec<f32>,
    /// A last-only layer's `a` at each text's last position `[texts, d]`.
    a_last: Vec<f32>,
    probs: Vec<f32>,
    /// From here on, `R` rows: `T`, or one per text for a last-only layer.
    ctx: Vec<f32>,
    x_mid: Vec<f32>,
    c: Vec<f32>,
    c_stats: Vec<f32>,
    h: Vec<f32>,
}

/// Buffers the layers share.
#[derive(Debug, Default, Clone)]
pub(super) struct BlockScratch {
    attention: AttentionScratch,
    d1: Vec<f32>,
    d2: Vec<f32>,
    d3: Vec<f32>,
    d4: Vec<f32>,
    dw: Vec<f32>,
    db: Vec<f32>,
}

/// The index of each text's last position in the packed rows.
fn last_rows(lens: &[usize]) -> impl Iterator<Item = usize> + '_ {
    lens.iter().scan(0, |at, &n| {
        *at += n;
        Some(*at - 1)
    })
}

/// `dst` rows `[rows, d]` from the rows `at` of `src`.
fn gather_rows(src: &[f32], at: impl Iterator<Item = usize>, d: usize, dst: &mut Vec<f32>) {
    dst.clear();
    for i in at {
        dst.extend_from_slice(&src[i * d..(i + 1) * d]);
    }
}

impl Block {
    /// The layer on the residual stream `bt.x_in` (`[T, d]`, set by the caller) of texts of
    /// `lens` positions, into `x_out` (`[T, d]`, or `[texts, d]` when `last_only`).
    #[expect(
        clippy::too_many_arguments,
        reason = "a layer's inputs, trace and scratch, each its own buffer"
    )]
    pub(super) fn forward(
        &self,
        params: &[f32],
        att: &Attention,
        lens: &[usize],
        last_only: bool,
        bt: &mut BlockTrace,
        s: &mut BlockScratch,
        x_out: &mut Vec<f32>,
    ) {
        let d = att.width;
        let t = bt.x_in.len() / d;
        bt.last_only = last_only;
        self.norm_attention
            .forward(params, &bt.x_in, &mut bt.a, &mut bt.a_stats);
        self.concat_qkv(params, &mut bt.w_qkv, &mut bt.b_qkv);
        bt.qkv.clear();
        for _ in 0..t {
            bt.qkv.extend_from_slice(&bt.b_qkv);
        }
        let a = Operand::new(&bt.a, t, d);
        if last_only {
            // Keys and values at every position, queries at the last ones.
            matmul_to(
                Target::strided(&mut bt.qkv[d..], t, 2 * d, 3 * d),
                a,
                Operand::strided(&bt.w_qkv[d..], d, 2 * d, 3 * d),
                true,
            );
            gather_rows(&bt.a, last_rows(lens), d, &mut bt.a_last);
            let texts = lens.len();
            s.d1.clear();
            for _ in 0..texts {
                s.d1.extend_from_slice(&bt.b_qkv[..d]);
            }
            matmul(
                &mut s.d1,
                Operand::new(&bt.a_last, texts, d),
                Operand::strided(&bt.w_qkv, d, d, 3 * d),
                true,
            );
            for (r, i) in last_rows(lens).enumerate() {
                bt.qkv[i * 3 * d..i * 3 * d + d].copy_from_slice(&s.d1[r * d..(r + 1) * d]);
            }
        } else {
            matmul(&mut bt.qkv, a, Operand::new(&bt.w_qkv, d, 3 * d), true);
        }
        let q_from = |n: usize| if last_only { n - 1 } else { 0 };
        let rows: usize = lens.iter().map(|&n| n - q_from(n)).sum();
        bt.ctx.resize(rows * d, 0.0);
        bt.probs
            .resize(lens.iter().map(|&n| att.probs_len(n, q_from(n))).sum(), 0.0);
        let (mut at, mut r_at, mut p_at) = (0, 0, 0);
        for &n in lens {
            let (from, len) = (q_from(n), att.probs_len(n, q_from(n)));
            att.forward(
                &bt.qkv[at * 3 * d..(at + n) * 3 * d],
                n,
                from,
                &mut bt.ctx[r_at * d..(r_at + n - from) * d],
                &mut bt.probs[p_at..p_at + len],
                &mut s.attention,
            );
            (at, r_at, p_at) = (at + n, r_at + n - from, p_at + len);
        }
        self.output.forward(params, &bt.ctx, rows, &mut bt.x_mid);
        if last_only {
            for (r, i) in last_rows(lens).enumerate() {
                add_assign(
                    &mut bt.x_mid[r * d..(r + 1) * d],
                    &bt.x_in[i * d..(i + 1) * d],
                );
            }
        } else {
            add_assign(&mut bt.x_mid, &bt.x_in);
        }
        self.norm_ff
            .forward(params, &bt.x_mid, &mut bt.c, &mut bt.c_stats);
        self.inner.forward(params, &bt.c, rows, &mut bt.h);
        Nonlinearity::Relu.apply(&mut bt.h);
        self.outer.forward(params, &bt.h, rows, x_out);
        add_assign(x_out, &bt.x_mid);
    }

    /// From `dx` (d loss / d the layer's output rows), d loss / d `bt.x_in` into `dx` (`[T,
    /// d]`), the parameters' gradients into `grad`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn backward(
        &self,
        params: &[f32],
        att: &Attention,
        lens: &[usize],
        bt: &BlockTrace,
        s: &mut BlockScratch,
        dx: &mut Vec<f32>,
        grad: &mut [f32],
    ) {
        let d = att.width;
        let t = bt.x_in.len() / d;
        let rows = bt.x_mid.len() / d;
        let last_only = bt.last_only;
        // The feed-forward network and its residual.
        self.outer
            .backward(params, &bt.h, dx, rows, grad, false, Some(&mut s.d1));
        Nonlinearity::Relu.derive(&bt.h, &mut s.d1);
        self.inner
            .backward(params, &bt.c, &s.d1, rows, grad, false, Some(&mut s.d2));
        self.norm_ff
            .backward(params, &bt.x_mid, &bt.c_stats, &s.d2, dx, grad);
        // The attention: dx is now d loss / d x_mid.
        self.output
            .backward(params, &bt.ctx, dx, rows, grad, false, Some(&mut s.d1));
        s.d2.resize(t * 3 * d, 0.0);
        let q_from = |n: usize| if last_only { n - 1 } else { 0 };
        let (mut at, mut r_at, mut p_at) = (0, 0, 0);
        for &n in lens {
            let (from, len) = (q_from(n), att.probs_len(n, q_from(n)));
            att.backward(
                &bt.qkv[at * 3 * d..(at + n) * 3 * d],
                &bt.probs[p_at..p_at + len],
                &s.d1[r_at * d..(r_at + n - from) * d],
                n,
                from,
                &mut s.d2[at * 3 * d..(at + n) * 3 * d],
                &mut s.attention,
            );
            (at, r_at, p_at) = (at + n, r_at + n - from, p_at + len);
        }
        // The query, key and value projections of a; d3 = d loss / d a.
        s.dw.resize(d * 3 * d, 0.0);
        s.db.resize(3 * d, 0.0);
        column_sums(&s.d2, 3 * d, &mut s.db, false);
        s.d3.resize(t * d, 0.0);
        let a = Operand::new(&bt.a, t, d);
        if last_only {
            let texts = lens.len();
            matmul_to(
                Target::strided(&mut s.dw[d..], d, 2 * d, 3 * d),
                a.t(),
                Operand::strided(&s.d2[d..], t, 2 * d, 3 * d),
                false,
            );
            gather_rows(&s.d2, last_rows(lens), 3 * d, &mut s.d4);
            let dq = Operand::strided(&s.d4, texts, d, 3 * d);
            matmul_to(
                Target::strided(&mut s.dw, d, d, 3 * d),
                Operand::new(&bt.a_last, texts, d).t(),
                dq,
                false,
            );
            matmul(
                &mut s.d3,
                Operand::strided(&s.d2[d..], t, 2 * d, 3 * d),
                Operand::strided(&bt.w_qkv[d..], d, 2 * d, 3 * d).t(),
                false,
            );
            s.d1.resize(texts * d, 0.0);
            matmul(
                &mut s.d1,
                dq,
                Operand::strided(&bt.w_qkv, d, d, 3 * d).t(),
                false,
            );
            for (r, i) in last_rows(lens).enumerate() {
                add_assign(&mut s.d3[i * d..(i + 1) * d], &s.d1[r * d..(r + 1) * d]);
            }
        } else {
            matmul(&mut s.dw, a.t(), Operand::new(&s.d2, t, 3 * d), false);
            matmul(
                &mut s.d3,
                Operand::new(&s.d2, t, 3 * d),
                Operand::new(&bt.w_qkv, d, 3 * d).t(),
                false,
            );
        }
        for (j, lin) in [self.query, self.key, self.value].iter().enumerate() {
            for r in 0..d {
                grad[lin.weight + r * d..lin.weight + (r + 1) * d]
                    .copy_from_slice(&s.dw[r * 3 * d + j * d..r * 3 * d + (j + 1) * d]);
            }
            grad[lin.bias..lin.bias + d].copy_from_slice(&s.db[j * d..(j + 1) * d]);
        }
        // The residual: d loss / d x_in = d loss / d x_mid (at its rows) + through norm_2.
        if last_only {
            s.d1.clear();
            s.d1.resize(t * d, 0.0);
            for (r, i) in last_rows(lens).enumerate() {
                s.d1[i * d..(i + 1) * d].copy_from_slice(&dx[r * d..(r + 1) * d]);
            }
            std::mem::swap(dx, &mut s.d1);
        }
        self.norm_attention
            .backward(params, &bt.x_in, &bt.a_stats, &s.d3, dx, grad);
    }

    /// The query, key and value weights side by side, `[d, 3d]`, and their biases `[3d]`.
    fn concat_qkv(&self, params: &[f32], w: &mut Vec<f32>, b: &mut Vec<f32>) {
        let d = self.query.d_in;
        w.resize(d * 3 * d, 0.0);
        b.clear();
        vectorized(
            #[inline(always)]
            || {
                for (j, lin) in [self.query, self.key, self.value].iter().enumerate() {
                    let lw = lin.w(params);
                    for r in 0..d {
                        w[r * 3 * d + j * d..r * 3 * d + (j + 1) * d]
                            .copy_from_slice(&lw[r * d..(r + 1) * d]);
                    }
                }
            },
        );
        for lin in [self.query, self.key, self.value] {
            b.extend_from_slice(lin.b(params));
        }
    }
}
