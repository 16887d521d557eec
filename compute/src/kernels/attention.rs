//! Causal multi-head self-attention over one sequence, from its packed query/key/value rows
//! `[n, 3·width]` (head `h` the columns `h·dₕ..(h+1)·dₕ` of each third) to the context:
//! softmax(q·kᵀ/√dₕ) over positions `0..=i` for position `i` (burn's `MultiHeadAttention`
//! with an autoregressive mask, whose masked scores −10⁴ are exactly 0 after the softmax), and
//! its backward pass. The queries may start at any row (`q_from`): a last layer whose output is
//! read at the last position computes that one only.
//!
//! Queries, values, keys and their gradients are read and written in place in the packed rows;
//! only each head's keys and values are gathered transposed (`[dₕ, n]`, padded to whole
//! lanes), so that a row of scores is `dₕ` axpys over whole vectors.

use super::lanes::{LANES, exp, padded};
use super::simd::vectorized;

/// A causal self-attention layer's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attention {
    /// Model width d.
    pub width: usize,
    /// Heads (they divide the width).
    pub heads: usize,
}

/// One head's blocks, reused between calls.
#[derive(Debug, Default, Clone)]
pub struct AttentionScratch {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    t: Vec<f32>,
    d_out: Vec<f32>,
    ds: Vec<f32>,
    row: Vec<f32>,
}

/// Sixteen values held in vector registers.
type Lane = [f32; LANES];

#[inline(always)]
fn lane(s: &[f32], at: usize) -> Lane {
    let mut v = [0.0; LANES];
    v.copy_from_slice(&s[at..at + LANES]);
    v
}

#[inline(always)]
fn fma(acc: &mut Lane, a: f32, x: &Lane) {
    for l in 0..LANES {
        acc[l] += a * x[l];
    }
}

/// Rows `rows` of `src` (rows `ld` apart), `dh` columns from `offset`, into `dst` `[rows, dhp]`
/// (zeros past `dh`).
#[inline(always)]
fn gather(
    src: &[f32],
    rows: std::ops::Range<usize>,
    ld: usize,
    offset: usize,
    dh: usize,
    dst: &mut Vec<f32>,
) {
    let dhp = padded(dh);
    dst.clear();
    dst.resize(rows.len() * dhp, 0.0);
    for (r, i) in rows.enumerate() {
        let from = &src[i * ld + offset..i * ld + offset + dh];
        let to = &mut dst[r * dhp..r * dhp + dh];
        if dh.is_multiple_of(LANES) {
            for b in (0..dh).step_by(LANES) {
                to[b..b + LANES].copy_from_slice(&lane(from, b));
            }
        } else {
            to.iter_mut().zip(from).for_each(|(t, f)| *t = *f);
        }
    }
}

/// Adds `dh` values of `src` row `r` (`[_, dhp]`) into `dst` row `i` at `offset`.
#[inline(always)]
fn scatter(src: &[f32], r: usize, dh: usize, dst: &mut [f32], at: usize) {
    let dhp = padded(dh);
    let from = &src[r * dhp..r * dhp + dh];
    dst[at..at + dh]
        .iter_mut()
        .zip(from)
        .for_each(|(t, f)| *t += *f);
}

/// Head `h`'s `dh` columns at `offset` of the `n` rows of `src` (rows `ld` apart), transposed
/// into `dst` `[dh, np]` with zeros past `n`.
#[inline(always)]
fn transpose(
    src: &[f32],
    n: usize,
    np: usize,
    ld: usize,
    offset: usize,
    dh: usize,
    dst: &mut Vec<f32>,
) {
    dst.clear();
    dst.resize(dh * np, 0.0);
    for c in 0..dh {
        let row = &mut dst[c * np..c * np + n];
        for (j, v) in row.iter_mut().enumerate() {
            *v = src[j * ld + offset + c];
        }
    }
}

/// `out[jb..jb + 16] = a_row · t[:, jb..]` for the blocks `jb` below `m`: `Σ_c a[c]·t[c, j]`
/// (scores from queries and transposed keys, or dp from output gradients and transposed values).
#[inline(always)]
fn rows_times_t(a: &[f32], t: &[f32], np: usize, m: usize, scale: f32, out: &mut [f32]) {
    for jb in (0..m).step_by(LANES) {
        let mut acc = [0.0; LANES];
        for (c, &ac) in a.iter().enumerate() {
            fma(&mut acc, ac * scale, &lane(t, c * np + jb));
        }
        out[jb..jb + LANES].copy_from_slice(&acc);
    }
}

/// `out[..dhp] = Σ_{j < upto} w[j]·m[j, ..]` for `m` `[_, dhp]`.
#[inline(always)]
fn weighted_rows(w: &[f32], m: &[f32], upto: usize, dhp: usize, out: &mut [f32]) {
    for cb in (0..dhp).step_by(LANES) {
        let mut acc = [0.0; LANES];
        for (j, &wj) in w[..upto].iter().enumerate() {
            fma(&mut acc, wj, &lane(m, j * dhp + cb));
        }
        out[cb..cb + LANES].copy_from_slice(&acc);
    }
}

impl Attention {
    /// Head width dₕ.
    pub fn head_width(&self) -> usize {
        self.width / self.heads
    }

    /// Multiply-adds of one sequence of `n` positions (scores and mixing, causal).
    pub fn macs(&self, n: usize) -> usize {
        n * (n + 1) * self.width
    }

    /// Values of the attention weights [`Attention::forward`] keeps for queries `q_from..n`.
    pub fn probs_len(&self, n: usize, q_from: usize) -> usize {
        self.heads * (n - q_from) * padded(n)
    }

    /// The context of queries `q_from..n` (`[n − q_from, d]`, written) of the sequence `qkv`
    /// `[n, 3d]` (the query columns of rows before `q_from` are not read), keeping the attention
    /// weights in `probs` ([`Attention::probs_len`] values; query `i`'s row on `0..=i`, zeros
    /// after).
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        qkv: &[f32],
        n: usize,
        q_from: usize,
        ctx: &mut [f32],
        probs: &mut [f32],
        s: &mut AttentionScratch,
    ) {
        let (d, dh, np) = (self.width, self.head_width(), padded(n));
        let (ld, dhp, rows) = (3 * d, padded(dh), n - q_from);
        assert_eq!(qkv.len(), n * ld, "packed q, k, v rows");
        assert_eq!(ctx.len(), rows * d, "context rows");
        assert_eq!(probs.len(), self.probs_len(n, q_from), "attention weights");
        let scale = 1.0 / (dh as f32).sqrt();
        ctx.fill(0.0);
        vectorized(
            #[inline(always)]
            || {
                s.row.resize(dhp, 0.0);
                for h in 0..self.heads {
                    gather(qkv, q_from..n, ld, h * dh, dh, &mut s.q);
                    gather(qkv, 0..n, ld, 2 * d + h * dh, dh, &mut s.v);
                    transpose(qkv, n, np, ld, d + h * dh, dh, &mut s.t);
                    for i in q_from..n {
                        let r = i - q_from;
                        let p = &mut probs[(h * rows + r) * np..(h * rows + r + 1) * np];
                        let m = padded(i + 1);
                        rows_times_t(&s.q[r * dhp..r * dhp + dh], &s.t, np, m, scale, p);
                        softmax_causal(&mut p[..m], i);
                        p[m..].fill(0.0);
                        weighted_rows(p, &s.v, i + 1, dhp, &mut s.row);
                        scatter(&s.row, 0, dh, ctx, r * d + h * dh);
                    }
                }
            },
        )
    }

    /// From `d_ctx` (d loss / d context of queries `q_from..n`) of a pass over `qkv` with
    /// `probs`: d loss / d qkv into `d_qkv` (`[n, 3d]`, written; the query columns of rows
    /// before `q_from` are 0).
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        qkv: &[f32],
        probs: &[f32],
        d_ctx: &[f32],
        n: usize,
        q_from: usize,
        d_qkv: &mut [f32],
        s: &mut AttentionScratch,
    ) {
        let (d, dh, np) = (self.width, self.head_width(), padded(n));
        let (ld, dhp, rows) = (3 * d, padded(dh), n - q_from);
        assert_eq!(d_qkv.len(), n * ld, "packed q, k, v gradients");
        assert_eq!(d_ctx.len(), rows * d, "context gradient rows");
        let scale = 1.0 / (dh as f32).sqrt();
        d_qkv.fill(0.0);
        vectorized(
            #[inline(always)]
            || {
                s.row.resize(dhp, 0.0);
                for h in 0..self.heads {
                    gather(qkv, 0..n, ld, h * dh, dh, &mut s.q);
                    gather(qkv, 0..n, ld, d + h * dh, dh, &mut s.k);
                    gather(d_ctx, 0..rows, d, h * dh, dh, &mut s.d_out);
                    transpose(qkv, n, np, ld, 2 * d + h * dh, dh, &mut s.t);
                    s.ds.clear();
                    s.ds.resize(rows * np, 0.0);
                    for i in q_from..n {
                        let r = i - q_from;
                        let p = &probs[(h * rows + r) * np..(h * rows + r + 1) * np];
                        let m = padded(i + 1);
                        // dp_j = dO_i · v_j, then through the softmax: ds_j = p_j (dp_j − Σ p·dp).
                        let ds = &mut s.ds[r * np..(r + 1) * np];
                        rows_times_t(&s.d_out[r * dhp..r * dhp + dh], &s.t, np, m, 1.0, ds);
                        let mut acc = [0.0; LANES];
                        for jb in (0..m).step_by(LANES) {
                            let (pv, dv) = (lane(p, jb), lane(ds, jb));
                            for l in 0..LANES {
                                acc[l] += pv[l] * dv[l];
                            }
                        }
                        let mean: f32 = acc.iter().sum();
                        for jb in (0..m).step_by(LANES) {
                            let (pv, mut dv) = (lane(p, jb), lane(ds, jb));
                            for l in 0..LANES {
                                dv[l] = pv[l] * (dv[l] - mean) * scale;
                            }
                            ds[jb..jb + LANES].copy_from_slice(&dv);
                        }
                        // dq_i = Σ_j ds_j k_j.
                        weighted_rows(ds, &s.k, i + 1, dhp, &mut s.row);
                        scatter(&s.row, 0, dh, d_qkv, i * ld + h * dh);
                    }
                    // dk_j = Σ_i ds_ij q_i and dv_j = Σ_i p_ij dO_i, over the queries i ≥ j.
                    let p = &probs[h * rows * np..(h + 1) * rows * np];
                    for j in 0..n {
                        let first = j.saturating_sub(q_from);
                        column_weighted(
                            &s.ds,
                            j,
                            np,
                            first..rows,
                            &s.q[q_from * dhp..],
                            dhp,
                            &mut s.row,
                        );
                        scatter(&s.row, 0, dh, d_qkv, j * ld + d + h * dh);
                        column_weighted(p, j, np, first..rows, &s.d_out, dhp, &mut s.row);
                        scatter(&s.row, 0, dh, d_qkv, j * ld + 2 * d + h * dh);
                    }
                }
            },
        )
    }
}

/// `out[..dhp] = Σ_{r ∈ rows} w[r, j]·m[r, ..]` (column `j` of `w` `[_, np]` weighting the rows
/// of `m` `[_, dhp]`).
#[inline(always)]
fn column_weighted(
    w: &[f32],
    j: usize,
    np: usize,
    rows: std::ops::Range<usize>,
    m: &[f32],
    dhp: usize,
    out: &mut [f32],
) {
    for cb in (0..dhp).step_by(LANES) {
        let mut acc = [0.0; LANES];
        for r in rows.clone() {
            fma(&mut acc, w[r * np + j], &lane(m, r * dhp + cb));
        }
        out[cb..cb + LANES].copy_from_slice(&acc);
    }
}

/// Softmax in place over `p[..=i]` (whole lanes of scores), zeros on `i + 1..`.
#[inline(always)]
fn softmax_causal(p: &mut [f32], i: usize) {
    let mut max = [f32::NEG_INFINITY; LANES];
    for jb in (0..p.len()).step_by(LANES) {
        let v = lane(p, jb);
        for l in 0..LANES {
            if jb + l <= i {
                max[l] = max[l].max(v[l]);
            }
        }
    }
    let max = max.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let mut sum = [0.0; LANES];
    for jb in (0..p.len()).step_by(LANES) {
        let mut v = lane(p, jb);
        for l in 0..LANES {
            v[l] = if jb + l <= i { exp(v[l] - max) } else { 0.0 };
            sum[l] += v[l];
        }
        p[jb..jb + LANES].copy_from_slice(&v);
    }
    let inv = 1.0 / sum.iter().sum::<f32>();
    for v in p.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_common::rng::Rng;

    /// The attention of its definition, in f64, for queries `q_from..n`.
    fn direct(att: &Attention, qkv: &[f32], n: usize, q_from: usize) -> Vec<f64> {
        let (d, dh) = (att.width, att.head_width());
        let mut out = vec![0.0; (n - q_from) * d];
        for h in 0..att.heads {
            for i in q_from..n {
                let score = |j: usize| -> f64 {
                    (0..dh)
                        .map(|c| {
                            qkv[i * 3 * d + h * dh + c] as f64
                                * qkv[j * 3 * d + d + h * dh + c] as f64
                        })
                        .sum::<f64>()
                        / (dh as f64).sqrt()
                };
                let max = (0..=i).map(score).fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = (0..=i).map(|j| (score(j) - max).exp()).sum();
                for j in 0..=i {
                    let p = (score(j) - max).exp() / z;
                    for c in 0..dh {
                        out[(i - q_from) * d + h * dh + c] +=
                            p * qkv[j * 3 * d + 2 * d + h * dh + c] as f64;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_context_is_causal_softmax_attention_and_the_backward_pass_its_derivative() {
        let mut rng = Rng::new(6);
        let att = Attention {
            width: 12,
            heads: 3,
        };
        for (n, q_from) in [(7, 0), (19, 0), (19, 18), (5, 2)] {
            let qkv: Vec<f32> = (0..n * 36).map(|_| rng.normal() as f32).collect();
            let rows = n - q_from;
            let mut ctx = vec![0.0; rows * 12];
            let (mut probs, mut s) = (
                vec![0.0; att.probs_len(n, q_from)],
                AttentionScratch::default(),
            );
            att.forward(&qkv, n, q_from, &mut ctx, &mut probs, &mut s);
            for (g, w) in ctx.iter().zip(direct(&att, &qkv, n, q_from)) {
                assert!((*g as f64 - w).abs() < 1e-5, "{g} vs {w}");
            }
            // The loss ⟨ctx, c⟩: its gradient against central differences of the direct form.
            let c: Vec<f32> = (0..rows * 12).map(|_| rng.normal() as f32).collect();
            let mut grad = vec![0.0; qkv.len()];
            att.backward(&qkv, &probs, &c, n, q_from, &mut grad, &mut s);
            let loss = |x: &[f32]| -> f64 {
                direct(&att, x, n, q_from)
                    .iter()
                    .zip(&c)
                    .map(|(a, b)| a * *b as f64)
                    .sum()
            };
            for k in (0..qkv.len()).step_by(5) {
                let h = 1e-3f32;
                let (mut up, mut down) = (qkv.clone(), qkv.clone());
                up[k] += h;
                down[k] -= h;
                let want = (loss(&up) - loss(&down)) / (2.0 * h as f64);
                assert!(
                    (grad[k] as f64 - want).abs() < 2e-3 * (1.0 + want.abs()),
                    "n {n} from {q_from}: d/dqkv[{k}] = {} vs {want}",
                    grad[k]
                );
            }
        }
    }
}
