//! Token embedding plus learned positions on host slices: `h_t = E[id_t] + P[t]`, and the
//! backward pass that adds each row's gradient back into the rows it read.

/// Where the token table `[vocab, width]` and the position table `[length, width]` start in
/// the flat parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Embedding {
    /// Offset of the token table.
    pub tokens: usize,
    /// Offset of the position table.
    pub positions: usize,
    /// Vocabulary size.
    pub vocab: usize,
    /// Width.
    pub width: usize,
}

impl Embedding {
    /// `out` `[Σ n, width]` (resized) for sequences of ids `seqs` (each starting at position 0).
    pub fn forward<'a>(
        &self,
        params: &[f32],
        seqs: impl Iterator<Item = &'a [u32]>,
        out: &mut Vec<f32>,
    ) {
        let d = self.width;
        out.clear();
        for ids in seqs {
            for (t, &id) in ids.iter().enumerate() {
                let e = self.tokens + id as usize * d;
                let p = self.positions + t * d;
                out.extend(
                    params[e..e + d]
                        .iter()
                        .zip(&params[p..p + d])
                        .map(|(a, b)| a + b),
                );
            }
        }
    }

    /// Adds the rows of `d_out` (as [`Embedding::forward`] made them) into the tables'
    /// gradients in `grad`.
    pub fn backward<'a>(
        &self,
        seqs: impl Iterator<Item = &'a [u32]>,
        d_out: &[f32],
        grad: &mut [f32],
    ) {
        let d = self.width;
        let mut rows = d_out.chunks_exact(d);
        for ids in seqs {
            for (t, &id) in ids.iter().enumerate() {
                let g = rows.next().expect("one gradient row per token");
                let e = self.tokens + id as usize * d;
                grad[e..e + d].iter_mut().zip(g).for_each(|(a, b)| *a += b);
                let p = self.positions + t * d;
                grad[p..p + d].iter_mut().zip(g).for_each(|(a, b)| *a += b);
            }
        }
    }
}
