//! Matrix products on row-major `f32` slices: a safe, bounds-checked front to the `gemm` crate
//! (the one burn's flex backend multiplies with), single-threaded (the engine splits work over
//! threads itself).
//!
//! One of the project's few places with `unsafe` code (with a SAFETY comment): `gemm::gemm`
//! takes raw pointers and strides. Every call goes through [`matmul_to`], which checks each
//! operand's extent against its dimensions and strides (without overflow) before handing out
//! pointers, so no other code can reach the raw call.

/// A row-major matrix operand (rows `ld` values apart), or the transpose of one.
#[derive(Debug, Clone, Copy)]
pub struct Operand<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    ld: usize,
    transposed: bool,
}

/// The values a `rows × cols` matrix whose rows are `ld` apart reaches, or `None` on overflow.
fn extent(rows: usize, cols: usize, ld: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1).checked_mul(ld)?.checked_add(cols)
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
            ld: cols,
            transposed: false,
        }
    }

    /// The `rows × cols` matrix whose row `i` starts at `data[i · ld]` (a block of columns of a
    /// wider matrix).
    pub fn strided(data: &'a [f32], rows: usize, cols: usize, ld: usize) -> Self {
        assert!(cols <= ld || rows <= 1, "rows of {cols} values {ld} apart");
        assert!(
            extent(rows, cols, ld).is_some_and(|e| e <= data.len()),
            "a {rows}×{cols} operand with rows {ld} apart in {} values",
            data.len()
        );
        Self {
            data,
            rows,
            cols,
            ld,
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
            (self.ld as isize, 1)
        } else {
            (1, self.ld as isize)
        }
    }
}

/// A row-major output matrix (rows `ld` values apart).
#[derive(Debug)]
pub struct Target<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    ld: usize,
}

impl<'a> Target<'a> {
    /// The `rows × cols` row-major matrix `data`.
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(
            rows.checked_mul(cols),
            Some(data.len()),
            "a {rows}×{cols} product"
        );
        Self {
            data,
            rows,
            cols,
            ld: cols,
        }
    }

    /// The `rows × cols` block whose row `i` starts at `data[i · ld]`.
    pub fn strided(data: &'a mut [f32], rows: usize, cols: usize, ld: usize) -> Self {
        assert!(cols <= ld || rows <= 1, "rows of {cols} values {ld} apart");
        assert!(
            extent(rows, cols, ld).is_some_and(|e| e <= data.len()),
            "a {rows}×{cols} product with rows {ld} apart in {} values",
            data.len()
        );
        Self {
            data,
            rows,
            cols,
            ld,
        }
    }
}

/// `out = a · b` (or `out += a · b` with `accumulate`), `out` row-major `m × n`.
///
/// # Panics
/// When the inner dimensions differ or `out` does not have `m · n` values.
pub fn matmul(out: &mut [f32], a: Operand<'_>, b: Operand<'_>, accumulate: bool) {
    let (m, _) = a.dims();
    let (_, n) = b.dims();
    matmul_to(Target::new(out, m, n), a, b, accumulate);
}

/// `out = a · b` (or `out += a · b` with `accumulate`) into a possibly strided target.
///
/// # Panics
/// When the dimensions do not chain.
pub fn matmul_to(out: Target<'_>, a: Operand<'_>, b: Operand<'_>, accumulate: bool) {
    let (m, k) = a.dims();
    let (kb, n) = b.dims();
    assert_eq!(k, kb, "inner dimensions of a product");
    assert_eq!((out.rows, out.cols), (m, n), "a {m}×{n} product");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in 0..m {
                out.data[row * out.ld..row * out.ld + n].fill(0.0);
            }
        }
        return;
    }
    let (a_cs, a_rs) = a.strides();
    let (b_cs, b_rs) = b.strides();
    // SAFETY: `out` is written at i·ld + j for i < m, j < n, inside its data (checked by
    // `Target`'s constructors with checked arithmetic); `a` is read at i·a_rs + l·a_cs, which
    // for either orientation is r·ld + c with r < rows, c < cols of the stored matrix, inside
    // its data (checked by `Operand`'s constructors); likewise `b`. The output cannot overlap
    // the inputs (it is borrowed mutably), and the call runs on this thread only.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.data.as_mut_ptr(),
            1,
            out.ld as isize,
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

    #[test]
    fn strided_blocks_read_and_write_columns_of_wider_matrices() {
        let mut rng = Rng::new(4);
        let (m, n, k, wide) = (5, 3, 4, 10);
        // a: columns 2..6 of a 5×10 matrix; out: columns 6..9 of a 5×10 matrix.
        let a_wide: Vec<f32> = (0..m * wide).map(|_| rng.normal() as f32).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.normal() as f32).collect();
        let a: Vec<f32> = (0..m)
            .flat_map(|i| a_wide[i * wide + 2..i * wide + 2 + k].to_vec())
            .collect();
        let want = reference(&a, false, &b, false, m, n, k);
        let mut out = vec![7.0f32; m * wide];
        matmul_to(
            Target::strided(&mut out[6..], m, n, wide),
            Operand::strided(&a_wide[2..], m, k, wide),
            Operand::new(&b, k, n),
            false,
        );
        for i in 0..m {
            for j in 0..wide {
                let got = out[i * wide + j];
                if (6..9).contains(&j) {
                    assert!((got - want[i * n + j - 6]).abs() < 1e-5);
                } else {
                    assert_eq!(got, 7.0, "({i}, {j}) untouched");
                }
            }
        }
    }
}
