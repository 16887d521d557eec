//! The host engine's whole network for one model spec: its encoder (none for `mlp`, the
//! convolutions, or the transformer) and the policy and value heads on the encoder's features,
//! with one forward and one backward pass over a block of rows ([`Workspace`] keeps what the
//! backward pass needs).

use shoal_common::model::{ActionHead, EncoderKind, Input, ModelSpec};

use super::conv::{ConvNet, ConvTrace};
use super::mlp::{Mlp, MlpTrace};
use super::transformer::{TransformerNet, TransformerTrace};
use crate::engine::{Rows, Want};
use crate::kernels::conv::{scale_pixels_f32, scale_pixels_u8};
use crate::kernels::linear::add_assign;

/// What turns observation rows into the features the heads read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Encoder {
    /// The observation itself (`mlp`), pixels scaled to `[0, 1]` for an image.
    Plain {
        /// Image observations.
        pixels: bool,
    },
    /// `nature_cnn`, `small_cnn`.
    Conv(ConvNet),
    /// `transformer`.
    Sequence(TransformerNet),
}

/// The network: encoder, heads, and where a Gaussian policy's `log_std` lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostNet {
    encoder: Encoder,
    actor: Mlp,
    critic: Mlp,
    /// Offset of a Gaussian policy's `log_std`.
    pub(crate) log_std: Option<usize>,
    pub(crate) action: ActionHead,
    pub(crate) obs_dim: usize,
    /// Parameters in all.
    pub(crate) len: usize,
}

/// One block of rows' forward pass, kept for its backward pass; reused from pass to pass.
#[derive(Debug, Default, Clone)]
pub(crate) struct Workspace {
    rows: usize,
    want: Option<Want>,
    /// `mlp`: the observations as the heads read them.
    plain: Vec<f32>,
    conv: ConvTrace,
    sequence: TransformerTrace,
    actor: MlpTrace,
    critic: MlpTrace,
    d_features: Vec<f32>,
    d_critic: Vec<f32>,
}

impl Workspace {
    /// The policy head's output of the last pass `[rows, A]`.
    pub(crate) fn policy(&self) -> &[f32] {
        self.actor.output()
    }

    /// The values of the last pass `[rows]`.
    pub(crate) fn values(&self) -> &[f32] {
        self.critic.output()
    }
}

impl HostNet {
    /// The network `spec` builds, located in its layout.
    ///
    /// # Panics
    /// When the spec's layout lacks a parameter its encoder or heads need (a spec that
    /// validated always has them).
    pub(crate) fn new(spec: &ModelSpec) -> Self {
        let layout = spec.layout();
        let encoder = match (spec.encoder, spec.input) {
            (EncoderKind::Mlp, input) => Encoder::Plain {
                pixels: matches!(input, Input::Image(_)),
            },
            (EncoderKind::Transformer, Input::Tokens { length, vocab }) => Encoder::Sequence(
                TransformerNet::locate(&layout, spec.sequence, length, vocab)
                    .expect("the spec's transformer layout"),
            ),
            (kind, Input::Image(image)) => Encoder::Conv(
                ConvNet::locate(&layout, kind, image).expect("the spec's convolutional layout"),
            ),
            (kind, input) => panic!("no host encoder `{}` for {input:?}", kind.name()),
        };
        let actor = Mlp::locate(&layout, "actor", spec.activation).expect("the policy head");
        let critic = Mlp::locate(&layout, "critic", spec.activation).expect("the value head");
        let log_std = match spec.action {
            ActionHead::Gaussian(_) => Some(layout.find("log_std").expect("log_std").0.start),
            ActionHead::Categorical(_) => None,
        };
        Self {
            encoder,
            actor,
            critic,
            log_std,
            action: spec.action,
            obs_dim: spec.obs_dim,
            len: layout.num_floats(),
        }
    }

    /// Multiply-adds of one row's forward pass through the encoder and both heads.
    pub(crate) fn macs_per_row(&self) -> usize {
        let encoder = match &self.encoder {
            Encoder::Plain { .. } => 0,
            Encoder::Conv(c) => c.macs_per_row(),
            Encoder::Sequence(s) => s.macs_per_row(),
        };
        encoder + self.actor.macs_per_row() + self.critic.macs_per_row()
    }

    /// The wanted heads of the `rows` observations `obs` with `params`, into `ws`.
    pub(crate) fn forward(
        &self,
        params: &[f32],
        obs: Rows<'_>,
        rows: usize,
        want: Want,
        ws: &mut Workspace,
    ) {
        assert_eq!(obs.len(), rows * self.obs_dim, "observation rows");
        ws.rows = rows;
        ws.want = Some(want);
        let features: &[f32] = match &self.encoder {
            Encoder::Plain { pixels } => {
                match (obs, pixels) {
                    (Rows::F32(v), false) => {
                        ws.plain.clear();
                        ws.plain.extend_from_slice(v);
                    }
                    (Rows::F32(v), true) => scale_pixels_f32(v, &mut ws.plain),
                    (Rows::U8(v), _) => scale_pixels_u8(v, &mut ws.plain),
                }
                &ws.plain
            }
            Encoder::Conv(c) => {
                c.forward(params, obs, rows, &mut ws.conv);
                ws.conv.features()
            }
            Encoder::Sequence(s) => {
                s.forward(params, obs, rows, &mut ws.sequence);
                ws.sequence.features()
            }
        };
        if want.policy {
            self.actor.forward(params, features, rows, &mut ws.actor);
        }
        if want.value {
            self.critic.forward(params, features, rows, &mut ws.critic);
        }
    }

    /// d loss / d parameters of the pass in `ws` from the gradients at its heads, into `grad`
    /// (every value written; `log_std`'s is left 0 for the caller).
    pub(crate) fn backward(
        &self,
        params: &[f32],
        ws: &mut Workspace,
        d_policy: Option<&[f32]>,
        d_values: Option<&[f32]>,
        grad: &mut [f32],
    ) {
        let want = ws.want.expect("a forward pass before the backward pass");
        assert!(
            (d_policy.is_none() || want.policy) && (d_values.is_none() || want.value),
            "a gradient at a head the forward pass did not compute"
        );
        grad.fill(0.0);
        let Workspace {
            rows,
            plain,
            conv,
            sequence,
            actor,
            critic,
            d_features,
            d_critic,
            ..
        } = ws;
        let encoded = !matches!(self.encoder, Encoder::Plain { .. });
        let features: &[f32] = match &self.encoder {
            Encoder::Plain { .. } => plain,
            Encoder::Conv(_) => conv.features(),
            Encoder::Sequence(_) => sequence.features(),
        };
        let width = features.len() / (*rows).max(1);
        d_features.clear();
        d_features.resize(features.len(), 0.0);
        if let Some(d) = d_policy {
            self.actor.backward(
                params,
                features,
                actor,
                d,
                grad,
                encoded.then_some(&mut *d_features),
            );
        }
        if let Some(d) = d_values {
            if encoded && d_policy.is_some() {
                self.critic
                    .backward(params, features, critic, d, grad, Some(d_critic));
                add_assign(d_features, d_critic);
            } else {
                self.critic.backward(
                    params,
                    features,
                    critic,
                    d,
                    grad,
                    encoded.then_some(&mut *d_features),
                );
            }
        }
        debug_assert_eq!(d_features.len(), *rows * width);
        match &self.encoder {
            Encoder::Plain { .. } => {}
            Encoder::Conv(c) => c.backward(params, conv, d_features, grad),
            Encoder::Sequence(s) => s.backward(params, sequence, d_features, grad),
        }
    }
}
