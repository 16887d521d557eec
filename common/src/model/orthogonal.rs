//! Orthogonal weight initialisation, as PyTorch's `torch.nn.init.orthogonal_`.

use crate::rng::Rng;

/// Orthogonal initialisation as `torch.nn.init.orthogonal_` does it for a weight of
/// shape `[d_out, d_in]`, returned transposed in burn's `[d_in, d_out]` row-major order.
pub fn orthogonal(d_in: usize, d_out: usize, gain: f64, rng: &mut Rng) -> Vec<f32> {
    let (rows, cols) = (d_in.max(d_out), d_in.min(d_out));
    // `cols` column vectors of length `rows`, orthonormalised by modified Gram–Schmidt.
    let mut q: Vec<Vec<f64>> = (0..cols)
        .map(|_| (0..rows).map(|_| rng.normal()).collect())
        .collect();
    for j in 0..cols {
        let (done, rest) = q.split_at_mut(j);
        let v = &mut rest[0];
        for u in done.iter() {
            let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            for (a, b) in v.iter_mut().zip(u) {
                *a -= dot * b;
            }
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
    // W (torch's [d_out, d_in]) has orthonormal columns when d_out >= d_in, rows otherwise.
    let w = |o: usize, i: usize| if d_out >= d_in { q[i][o] } else { q[o][i] };
    let mut out = Vec::with_capacity(d_in * d_out);
    for i in 0..d_in {
        for o in 0..d_out {
            out.push((gain * w(o, i)) as f32);
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The `n` consecutive vectors `w` holds are orthogonal, each of squared norm `norm2`.
    pub(crate) fn assert_gram(w: &[f32], n: usize, norm2: f64) {
        let len = w.len() / n;
        for a in 0..n {
            for b in 0..n {
                let dot: f64 = (0..len)
                    .map(|i| w[a * len + i] as f64 * w[b * len + i] as f64)
                    .sum();
                let want = if a == b { norm2 } else { 0.0 };
                assert!((dot - want).abs() < 1e-4, "({a},{b}) {dot}");
            }
        }
    }

    #[test]
    fn orthogonal_init_is_orthogonal_with_gain() {
        let mut rng = Rng::new(0);
        // d_in=4, d_out=64: torch weight [64, 4] has orthonormal columns, so W^T W = g^2 I.
        assert_gram(&orthogonal(4, 64, 2.0, &mut rng), 4, 4.0);
        // d_in=64, d_out=2: torch weight [2, 64] has orthonormal rows.
        let w = orthogonal(64, 2, 1.0, &mut rng);
        let dot: f64 = (0..64).map(|i| w[i * 2] as f64 * w[i * 2 + 1] as f64).sum();
        let n0: f64 = (0..64).map(|i| (w[i * 2] as f64).powi(2)).sum();
        assert!(dot.abs() < 1e-5 && (n0 - 1.0).abs() < 1e-5);
    }
}
