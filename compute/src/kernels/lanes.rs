//! The small vector primitives the kernels' loops are written in, for use inside
//! [`super::simd::vectorized`]: sums and dot products over 16 independent lanes (a plain `f32`
//! sum is one chain of dependent additions, which the compiler may not reorder, so it never
//! vectorises), axpy, and a branch-free `exp` (libm's is one call per value).

/// Lanes of the partial sums: one AVX-512 vector, two AVX2 ones.
pub const LANES: usize = 16;

/// `n` rounded up to whole lanes.
pub fn padded(n: usize) -> usize {
    n.div_ceil(LANES) * LANES
}

/// `Σ x`.
#[inline(always)]
pub fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..LANES {
            acc[l] += c[l];
        }
    }
    acc.iter().sum::<f32>() + tail.iter().sum::<f32>()
}

/// `Σ a·b`.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "equal lengths");
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y += a·x`.
#[inline(always)]
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    assert_eq!(y.len(), x.len(), "equal lengths");
    let mut cy = y.chunks_exact_mut(LANES);
    let mut cx = x.chunks_exact(LANES);
    for (yc, xc) in (&mut cy).zip(&mut cx) {
        for l in 0..LANES {
            yc[l] += a * xc[l];
        }
    }
    for (yv, xv) in cy.into_remainder().iter_mut().zip(cx.remainder()) {
        *yv += a * xv;
    }
}

/// `eˣ` to within ~2·10⁻⁷ relative on `[−87.3, 88.3]` (Cephes' `expf`: `2ⁿ·p(r)` with
/// `x = n·ln 2 + r`, a degree-6 polynomial for `eʳ`), branch-free so its loops vectorise;
/// arguments outside are clamped (`eˣ` is then about `10⁻³⁸` or `2·10³⁸`).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.3);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * C1 - n * C2;
    let z = r * r;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * z + r + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm_to_float_precision() {
        for i in -87_000..=88_000 {
            let x = i as f32 * 1e-3;
            let (got, want) = (exp(x), x.exp());
            assert!(
                (got - want).abs() <= 3e-7 * want,
                "exp({x}) = {got} vs {want}"
            );
        }
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn lane_sums_match_the_plain_loop() {
        for n in [0, 1, 15, 16, 17, 100] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).cos()).collect();
            let plain: f32 = a.iter().sum();
            assert!((sum(&a) - plain).abs() < 1e-5);
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() < 1e-5);
            let mut y = b.clone();
            axpy(&mut y, 0.5, &a);
            for k in 0..n {
                assert_eq!(y[k], b[k] + 0.5 * a[k]);
            }
        }
    }
}
