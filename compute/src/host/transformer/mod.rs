//! The host engine's sequence encoder (`transformer`): token embedding plus learned positions,
//! pre-norm causal transformer layers as burn's `TransformerEncoder` computes them (attention
//! on `norm_2` of the residual stream, the ReLU feed-forward on `norm_1`), the final layer norm
//! at each text's last position; and the backward pass into the flat gradient.
//!
//! Each observation row is `[ids (L), length]`. Position `t` attends to `0..=t` only and the
//! heads read the text's last position, so the positions after it change nothing: the host
//! computes each text's own positions only, packed one after the other (the same features as
//! computing all `L` and gathering, with less work where texts are shorter than `L`), and the
//! last layer computes its output at the last position alone ([`block`]).

use shoal_common::codec::ParamLayout;
use shoal_common::model::SequenceShape;

mod block;

use block::{Block, BlockScratch, BlockTrace};

use crate::engine::Rows;
use crate::kernels::attention::Attention;
use crate::kernels::embedding::Embedding;
use crate::kernels::linear::Linear;
use crate::kernels::norm::LayerNorm;

/// The encoder located in a parameter layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TransformerNet {
    embedding: Embedding,
    blocks: Vec<Block>,
    norm: LayerNorm,
    attention: Attention,
    length: usize,
    feed_forward: usize,
}

/// One forward pass's values, kept for the backward pass; reused from pass to pass.
#[derive(Debug, Default, Clone)]
pub(crate) struct TransformerTrace {
    ids: Vec<u32>,
    lens: Vec<usize>,
    blocks: Vec<BlockTrace>,
    /// The last layer's output: one row per text, its last position.
    last: Vec<f32>,
    last_stats: Vec<f32>,
    features: Vec<f32>,
    scratch: BlockScratch,
    dx: Vec<f32>,
}

impl TransformerTrace {
    /// The features `[rows, width]` of the last pass.
    pub(crate) fn features(&self) -> &[f32] {
        &self.features
    }
}

fn linear(layout: &ParamLayout, path: &str, d_in: usize, d_out: usize) -> Option<Linear> {
    let (weight, ws) = layout.find(&format!("{path}.weight"))?;
    let (bias, bs) = layout.find(&format!("{path}.bias"))?;
    (ws == [d_in, d_out] && bs == [d_out]).then_some(Linear {
        weight: weight.start,
        bias: bias.start,
        d_in,
        d_out,
    })
}

fn norm(layout: &ParamLayout, path: &str, width: usize) -> Option<LayerNorm> {
    let (gamma, gs) = layout.find(&format!("{path}.gamma"))?;
    let (beta, bs) = layout.find(&format!("{path}.beta"))?;
    (gs == [width] && bs == [width]).then_some(LayerNorm {
        gamma: gamma.start,
        beta: beta.start,
        width,
    })
}

impl TransformerNet {
    /// The encoder `encoder.Sequence.*` of `layout` for texts of `length` ids from `vocab`, or
    /// `None` when the layout does not have it.
    pub(crate) fn locate(
        layout: &ParamLayout,
        shape: SequenceShape,
        length: usize,
        vocab: usize,
    ) -> Option<Self> {
        let (d, f) = (shape.width, shape.feed_forward);
        let p = "encoder.Sequence";
        let (tokens, ts) = layout.find(&format!("{p}.tokens.weight"))?;
        let (positions, ps) = layout.find(&format!("{p}.positions"))?;
        if ts != [vocab, d] || ps != [length, d] {
            return None;
        }
        let blocks = (0..shape.depth)
            .map(|i| {
                let l = format!("{p}.blocks.layers.{i}");
                Some(Block {
                    norm_attention: norm(layout, &format!("{l}.norm_2"), d)?,
                    query: linear(layout, &format!("{l}.mha.query"), d, d)?,
                    key: linear(layout, &format!("{l}.mha.key"), d, d)?,
                    value: linear(layout, &format!("{l}.mha.value"), d, d)?,
                    output: linear(layout, &format!("{l}.mha.output"), d, d)?,
                    norm_ff: norm(layout, &format!("{l}.norm_1"), d)?,
                    inner: linear(layout, &format!("{l}.pwff.linear_inner"), d, f)?,
                    outer: linear(layout, &format!("{l}.pwff.linear_outer"), f, d)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            embedding: Embedding {
                tokens: tokens.start,
                positions: positions.start,
                vocab,
                width: d,
            },
            blocks,
            norm: norm(layout, &format!("{p}.norm"), d)?,
            attention: Attention {
                width: d,
                heads: shape.heads,
            },
            length,
            feed_forward: f,
        })
    }

    /// Width of the features.
    pub(crate) fn width(&self) -> usize {
        self.attention.width
    }

    /// Multiply-adds of one full-length row's forward pass.
    pub(crate) fn macs_per_row(&self) -> usize {
        let (d, f, l) = (self.width(), self.feed_forward, self.length);
        self.blocks.len() * (l * (4 * d * d + 2 * d * f) + self.attention.macs(l) / 2)
    }

    /// Reads the ids and each text's length from `rows` observation rows, as burn's encoder
    /// clamps them: ids into the vocabulary, the length into `1..=L`.
    fn read_rows(&self, obs: Rows<'_>, rows: usize, ids: &mut Vec<u32>, lens: &mut Vec<usize>) {
        let (l, top) = (self.length, (self.embedding.vocab - 1) as f32);
        ids.clear();
        lens.clear();
        for r in 0..rows {
            let value = |t: usize| -> f32 {
                match obs {
                    Rows::U8(v) => v[r * (l + 1) + t] as f32,
                    Rows::F32(v) => v[r * (l + 1) + t],
                }
            };
            let n = ((value(l) - 1.0).clamp(0.0, (l - 1) as f32) as usize) + 1;
            lens.push(n);
            ids.extend((0..n).map(|t| value(t).clamp(0.0, top) as u32));
        }
    }

    /// The features of `rows` observations `obs`, keeping what the backward pass needs.
    pub(crate) fn forward(
        &self,
        params: &[f32],
        obs: Rows<'_>,
        rows: usize,
        trace: &mut TransformerTrace,
    ) {
        let TransformerTrace {
            ids,
            lens,
            blocks,
            last,
            last_stats,
            features,
            scratch,
            ..
        } = trace;
        self.read_rows(obs, rows, ids, lens);
        blocks.resize_with(self.blocks.len(), BlockTrace::default);
        self.embedding.forward(params, sequences(ids, lens), last);
        let depth = self.blocks.len();
        for (k, (block, bt)) in self.blocks.iter().zip(blocks.iter_mut()).enumerate() {
            std::mem::swap(&mut bt.x_in, last);
            block.forward(
                params,
                &self.attention,
                lens,
                k + 1 == depth,
                bt,
                scratch,
                last,
            );
        }
        self.norm.forward(params, last, features, last_stats);
    }

    /// Back-propagates `d_features` (d loss / d features) through the pass in `trace` into
    /// `grad` (the flat layout, at the encoder's offsets; they are added to).
    pub(crate) fn backward(
        &self,
        params: &[f32],
        trace: &mut TransformerTrace,
        d_features: &[f32],
        grad: &mut [f32],
    ) {
        let TransformerTrace {
            ids,
            lens,
            blocks,
            last,
            last_stats,
            scratch,
            dx,
            ..
        } = trace;
        dx.clear();
        dx.resize(last.len(), 0.0);
        self.norm
            .backward(params, last, last_stats, d_features, dx, grad);
        for (block, bt) in self.blocks.iter().zip(blocks.iter()).rev() {
            block.backward(params, &self.attention, lens, bt, scratch, dx, grad);
        }
        self.embedding.backward(sequences(ids, lens), dx, grad);
    }
}

/// Each text's ids, from the packed `ids` and the texts' lengths.
fn sequences<'a>(ids: &'a [u32], lens: &'a [usize]) -> impl Iterator<Item = &'a [u32]> + 'a {
    lens.iter().scan(0, move |at, &n| {
        let seq = &ids[*at..*at + n];
        *at += n;
        Some(seq)
    })
}
