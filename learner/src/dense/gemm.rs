//! Matrix products on row-major `f32` slices: a safe, bounds-checked front to the `gemm` crate
//! (the one burn's flex backend multiplies with; already in the build), single-threaded.
//!
//! One of the project's few places with `unsafe` code (each with a SAFETY comment):
//! `gemm::gemm` takes raw pointers and strides. Every call goes through [`matmul`], which checks
//! each slice's length against the dimensions (without overflow) before handing out pointers,
//! so no other code can reach the raw call.

/// A row-major matrix operand, or the transpose of one.
#[derive(Debug, Clone, Copy)]
pub struct Operand<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    transposed: bool,
}

impl<'a> Operand<'a> {
    /// The `rows × cols` row-major matrix `data`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(
            rows.checked_mul(cols),
            Some(data.len()),
            "a {rows}×{cols} operand"
        );
        Self {
            data,
            rows,
            cols,
            transposed: false,
        }
    }

    /// The transpose, `cols × rows` (no copy: the strides change).
    pub fn t(self) -> Self {
        Self {
            transposed: !self.transposed,
            ..self
        }
    }

    /// Rows and columns as it enters the product.
    fn dims(&self) -> (usize, usize) {
        if self.transposed {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }

    /// Column and row strides of the matrix as it enters the product.
    fn strides(&self) -> (isize, isize) {
        if self.transposed {
            (self.cols as isize, 1)
        } else {
            (1, self.cols as isize)
        }
    }
}

/// `out = a · b` (or `out += a · b` with `accumulate`), `out` row-major `m × n`.
///
/// # Panics
/// When the inner dimensions differ or `out` does not have `m · n` values.
pub fn matmul(out: &mut [f32], a: Operand<'_>, b: Operand<'_>, accumulate: bool) {
    let (m, k) = a.dims();
    let (kb, n) = b.dims();
    assert_eq!(k, kb, "inner dimensions of a product");
    assert_eq!(m.checked_mul(n), Some(out.len()), "a {m}×{n} product");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out.fill(0.0);
        }
        return;
    }
    let (a_cs, a_rs) = a.strides();
    let (b_cs, b_rs) = b.strides();
    // SAFETY: `out` holds m·n values written at i·n + j (row stride n, column stride 1); `a`
    // holds m·k values read at i·a_rs + l·a_cs, which for either orientation stays inside its
    // rows·cols = m·k values; likewise `b` (k·n). All lengths are checked above with checked
    // multiplication (no wrap-around), the output cannot overlap the inputs (it is borrowed
    // mutably), and the call runs on this thread only.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_common::rng::Rng;

    /// The plain triple loop.
    fn reference(
        a: &[f32],
        at: bool,
        b: &[f32],
        bt: bool,
        m: usize,
        n: usize,
        k: usize,
    ) -> Vec<f32> {
        let ai = |i: usize, l: usize| if at { a[l * m + i] } else { a[i * k + l] };
        let bi = |l: usize, j: usize| if bt { b[j * k + l] } else { b[l * n + j] };
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|l| ai(i, l) as f64 * bi(l, j) as f64)
                    .sum::<f64>() as f32;
            }
        }
        out
    }

    #[test]
    fn products_and_transposes_match_the_plain_loop_on_seeded_data() {
        let mut rng = Rng::new(3);
        for (m, n, k) in [(1, 1, 1), (7, 5, 3), (256, 64, 4), (64, 65, 256), (3, 2, 0)] {
            for (at, bt) in [(false, false), (true, false), (false, true), (true, true)] {
                let a: Vec<f32> = (0..m * k).map(|_| rng.normal() as f32).collect();
                let b: Vec<f32> = (0..k * n).map(|_| rng.normal() as f32).collect();
                let want = reference(&a, at, &b, bt, m, n, k);
                let oa = if at {
                    Operand::new(&a, k, m).t()
                } else {
                    Operand::new(&a, m, k)
                };
                let ob = if bt {
                    Operand::new(&b, n, k).t()
                } else {
                    Operand::new(&b, k, n)
                };
                let mut out = vec![1.0; m * n];
                matmul(&mut out, oa, ob, false);
                for (g, w) in out.iter().zip(&want) {
                    assert!(
                        (g - w).abs() < 1e-4 * (1.0 + w.abs()),
                        "{m}×{n}×{k}: {g} vs {w}"
                    );
                }
                matmul(&mut out, oa, ob, true);
                for (g, w) in out.iter().zip(&want) {
                    assert!((g - 2.0 * w).abs() < 2e-4 * (1.0 + w.abs()));
                }
            }
        }
    }
}
