//! PPO's minibatch step on the host for `mlp` models (issue 19): the clipped-surrogate loss's
//! gradient at the two heads' outputs as a pure function ([`head_grads`]), both heads' backward
//! passes ([`crate::dense::DenseMlp`]), the minibatch split over threads (those that get at least
//! ~1M multiply-adds each) with one reduction in a fixed order (bit-reproducible for a fixed
//! thread count and minibatch size), global-norm clipping and Adam, all
//! on the flat parameter vector. The same update as the burn path (`ppo_loss` under autodiff) to
//! float tolerance (tested), without its per-operation dispatch, graph building and allocation.

use shoal_common::codec::ParamLayout;
use shoal_common::model::{ActionHead, Activation, LN_SQRT_2PI, ModelSpec};

use super::loss::LossCoefs;
use crate::dense::{DenseMlp, FlatAdam, FlatOptimizer, Trace};
use crate::grad_clip::clip_flat_global_norm;

/// One minibatch, row-major host arrays (advantages already normalised if wanted).
#[derive(Debug, Clone, Copy)]
pub struct Minibatch<'a> {
    /// `[m, O]` observations.
    pub obs: &'a [f32],
    /// `[m]` action indices (categorical) or `[m, A]` actions (Gaussian).
    pub actions: &'a [f32],
    /// `[m]` behaviour log-probabilities.
    pub old_log_probs: &'a [f32],
    /// `[m]`.
    pub advantages: &'a [f32],
    /// `[m]` value targets.
    pub returns: &'a [f32],
}

impl Minibatch<'_> {
    fn len(&self) -> usize {
        self.old_log_probs.len()
    }

    /// Rows `start..end`.
    fn rows(&self, start: usize, end: usize, obs_dim: usize, width: usize) -> Self {
        Minibatch {
            obs: &self.obs[start * obs_dim..end * obs_dim],
            actions: &self.actions[start * width..end * width],
            old_log_probs: &self.old_log_probs[start..end],
            advantages: &self.advantages[start..end],
            returns: &self.returns[start..end],
        }
    }
}

/// Sums over a minibatch's rows of the loss parts (divided by the minibatch size `n` they are
/// the means the burn path reports).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LossSums {
    /// Clipped surrogate `max(−A·r, −A·clip(r))`.
    pub policy: f64,
    /// `(v − R)²`.
    pub value: f64,
    /// Entropy.
    pub entropy: f64,
    /// `(r − 1) − log r`.
    pub approx_kl: f64,
    /// Rows with `|r − 1| > ε`.
    pub clipped: f64,
}

impl LossSums {
    fn add(&mut self, o: &LossSums) {
        self.policy += o.policy;
        self.value += o.value;
        self.entropy += o.entropy;
        self.approx_kl += o.approx_kl;
        self.clipped += o.clipped;
    }
}

/// d loss / d (policy head output, values, `log_std`) for `rows` of a minibatch of `n` rows,
/// where loss = mean(clipped surrogate) + vf_coef · mean((v − R)²) − ent_coef · mean(H), the
/// objective `ppo_loss` differentiates. `out` is the policy head's output (`[rows, A]`: logits,
/// or a Gaussian's mean with `log_std`), `values` `[rows]`. Writes `d_out` and `d_values`, adds
/// to `d_log_std`, and returns the rows' loss sums.
///
/// Categorical, per row with p = softmax(z), l = log p, taken action a and H = −Σ p·l:
/// ∂ log π(a)/∂z_k = δ_ak − p_k and ∂H/∂z_k = −p_k (l_k + H). Gaussian with z = (a − μ)/σ:
/// ∂ log π/∂μ_j = z_j/σ_j, ∂ log π/∂log σ_j = z_j² − 1, ∂H/∂log σ_j = 1. The surrogate passes
/// −A·r · ∂ log π where its unclipped term is the larger, nothing where the clipped one is.
#[allow(clippy::too_many_arguments)]
pub fn head_grads(
    head: ActionHead,
    out: &[f32],
    values: &[f32],
    log_std: Option<&[f32]>,
    mb: &Minibatch<'_>,
    n: usize,
    coefs: LossCoefs,
    d_out: &mut [f32],
    d_values: &mut [f32],
    d_log_std: &mut [f32],
) -> LossSums {
    let rows = mb.len();
    let a = head.outputs();
    let inv_n = 1.0 / n as f64;
    let eps = coefs.clip_coef;
    let mut sums = LossSums::default();
    let mut probs = vec![0.0f64; a];
    let mut logs = vec![0.0f64; a];
    for i in 0..rows {
        let z = &out[i * a..(i + 1) * a];
        let d = &mut d_out[i * a..(i + 1) * a];
        // log π(a_i | s_i) and the entropy.
        let (log_prob, entropy) = match head {
            ActionHead::Categorical(_) => {
                let max = z.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
                let lse = max + z.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
                let mut h = 0.0;
                for ((p, l), &v) in probs.iter_mut().zip(&mut logs).zip(z) {
                    *l = v as f64 - lse;
                    *p = l.exp();
                    h -= *p * *l;
                }
                (z[mb.actions[i] as usize] as f64 - lse, h)
            }
            ActionHead::Gaussian(_) => {
                let s = log_std.expect("a Gaussian head has log_std");
                let act = &mb.actions[i * a..(i + 1) * a];
                let mut lp = 0.0;
                for j in 0..a {
                    let zj = (act[j] as f64 - z[j] as f64) * (-(s[j] as f64)).exp();
                    lp += -0.5 * zj * zj - s[j] as f64;
                }
                let h = s.iter().map(|&v| v as f64).sum::<f64>() + a as f64 * (0.5 + LN_SQRT_2PI);
                (lp - a as f64 * LN_SQRT_2PI, h)
            }
        };
        let log_ratio = log_prob - mb.old_log_probs[i] as f64;
        let ratio = log_ratio.exp();
        let adv = mb.advantages[i] as f64;
        let unclipped = -adv * ratio;
        let clipped = -adv * ratio.clamp(1.0 - eps, 1.0 + eps);
        sums.policy += unclipped.max(clipped);
        sums.approx_kl += (ratio - 1.0) - log_ratio;
        sums.clipped += f64::from((ratio - 1.0).abs() > eps);
        sums.entropy += entropy;
        // d loss / d log π(a_i | s_i).
        let g = if unclipped >= clipped {
            unclipped * inv_n
        } else {
            0.0
        };
        let ent = coefs.ent_coef * inv_n;
        match head {
            ActionHead::Categorical(_) => {
                let taken = mb.actions[i] as usize;
                for (k, ((dk, &p), &l)) in d.iter_mut().zip(&probs).zip(&logs).enumerate() {
                    let onehot = f64::from(k == taken);
                    *dk = (g * (onehot - p) + ent * p * (l + entropy)) as f32;
                }
            }
            ActionHead::Gaussian(_) => {
                let s = log_std.expect("a Gaussian head has log_std");
                let act = &mb.actions[i * a..(i + 1) * a];
                for j in 0..a {
                    let inv_sigma = (-(s[j] as f64)).exp();
                    let zj = (act[j] as f64 - z[j] as f64) * inv_sigma;
                    d[j] = (g * zj * inv_sigma) as f32;
                    d_log_std[j] += (g * (zj * zj - 1.0) - ent) as f32;
                }
            }
        }
        let diff = values[i] as f64 - mb.returns[i] as f64;
        sums.value += diff * diff;
        d_values[i] = (coefs.vf_coef * 2.0 * diff * inv_n) as f32;
    }
    sums
}

/// The least work (multiply-adds of the forward pass) worth a thread of its own.
const MIN_SHARD_MACS: usize = 1 << 20;

/// One thread's share of a minibatch step: its traces, scratch and gradient.
#[derive(Debug, Default, Clone)]
struct Shard {
    actor: Trace,
    critic: Trace,
    d_out: Vec<f32>,
    d_values: Vec<f32>,
    scratch: Vec<f32>,
    grad: Vec<f32>,
    sums: LossSums,
}

/// What one minibatch step reports.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepReport {
    /// The loss parts' sums over the minibatch.
    pub sums: LossSums,
    /// Rows in the minibatch.
    pub rows: usize,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// The model, its optimizer and the per-thread buffers of the host PPO step.
#[derive(Debug, Clone)]
pub struct DensePpo {
    actor: DenseMlp,
    critic: DenseMlp,
    /// Offset of a Gaussian policy's `log_std`.
    log_std: Option<usize>,
    head: ActionHead,
    obs_dim: usize,
    layout: ParamLayout,
    params: Vec<f32>,
    adam: FlatAdam,
    shards: Vec<Shard>,
    grad: Vec<f32>,
    /// [`MIN_SHARD_MACS`] (tests split small minibatches too).
    min_shard_macs: usize,
}

impl DensePpo {
    /// The host step for `spec` when it is an `mlp` model on vectors (`None` otherwise: the
    /// burn path trains it), starting from `initial`, split over `threads` threads.
    pub fn new(spec: &ModelSpec, initial: &[f32], adam_eps: f64, threads: usize) -> Option<Self> {
        use shoal_common::model::{EncoderKind, Input};
        if spec.encoder != EncoderKind::Mlp || spec.input != Input::Vector {
            return None;
        }
        let layout = spec.layout();
        let activation: Activation = spec.activation;
        let actor = DenseMlp::locate(&layout, "actor", activation)?;
        let critic = DenseMlp::locate(&layout, "critic", activation)?;
        let log_std = match spec.action {
            ActionHead::Gaussian(_) => Some(layout.find("log_std")?.0.start),
            ActionHead::Categorical(_) => None,
        };
        let len = layout.num_floats();
        assert_eq!(initial.len(), len, "parameter count");
        Some(Self {
            actor,
            critic,
            log_std,
            head: spec.action,
            obs_dim: spec.obs_dim,
            params: initial.to_vec(),
            adam: FlatAdam::new(adam_eps as f32, len),
            shards: vec![Shard::default(); threads.max(1)],
            grad: vec![0.0; len],
            layout,
            min_shard_macs: MIN_SHARD_MACS,
        })
    }

    /// Splits every minibatch over all threads, however small (for tests of the reduction).
    #[cfg(test)]
    fn split_every_minibatch(mut self) -> Self {
        self.min_shard_macs = 1;
        self
    }

    /// The parameters in layout order.
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The optimizer state.
    pub fn adam(&self) -> &FlatAdam {
        &self.adam
    }

    /// The optimizer state, to load into.
    pub fn adam_mut(&mut self) -> &mut FlatAdam {
        &mut self.adam
    }

    /// The parameters and the optimizer state (what an update changes), to go back to with
    /// [`DensePpo::restore`].
    pub fn state(&self) -> (Vec<f32>, FlatAdam) {
        (self.params.clone(), self.adam.clone())
    }

    /// Returns to a [`DensePpo::state`].
    pub fn restore(&mut self, (params, adam): (Vec<f32>, FlatAdam)) {
        assert_eq!(params.len(), self.params.len(), "parameter count");
        (self.params, self.adam) = (params, adam);
    }

    /// The parameter layout.
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// Multiply-adds of one row's forward pass through both heads.
    pub fn macs_per_row(&self) -> usize {
        self.actor.macs_per_row() + self.critic.macs_per_row()
    }

    /// d loss / d parameters of `mb` (in the flat layout) and the loss sums, computed over
    /// the shards and reduced in shard order.
    pub fn gradient(&mut self, mb: &Minibatch<'_>, coefs: LossCoefs) -> (&[f32], LossSums) {
        let n = mb.len();
        let width = self.head.action_width();
        // A shard below ~1M multiply-adds costs more to hand to a thread than it saves
        // (measured: CartPole's 64-row minibatch took 0.08 ms on one thread, 0.12 on two).
        let worth = (n * self.macs_per_row() / self.min_shard_macs).max(1);
        let parts = self.shards.len().min(worth).min(n.max(1));
        let chunk = n.div_ceil(parts);
        let mut shards = std::mem::take(&mut self.shards);
        let this = &*self;
        let params = &this.params;
        {
            let work = |(k, shard): (usize, &mut Shard)| {
                let start = (k * chunk).min(n);
                let end = ((k + 1) * chunk).min(n);
                let rows = mb.rows(start, end, this.obs_dim, width);
                this.shard_gradient(params, &rows, n, coefs, shard);
            };
            let mut jobs = shards.iter_mut().take(parts).enumerate();
            let first = jobs.next();
            std::thread::scope(|scope| {
                for job in jobs {
                    scope.spawn(move || work(job));
                }
                if let Some(job) = first {
                    work(job);
                }
            });
        }
        let mut sums = LossSums::default();
        self.grad.fill(0.0);
        for shard in &shards[..parts] {
            for (g, s) in self.grad.iter_mut().zip(&shard.grad) {
                *g += s;
            }
            sums.add(&shard.sums);
        }
        self.shards = shards;
        (&self.grad, sums)
    }

    fn shard_gradient(
        &self,
        params: &[f32],
        mb: &Minibatch<'_>,
        n: usize,
        coefs: LossCoefs,
        shard: &mut Shard,
    ) {
        let rows = mb.len();
        shard.grad.resize(params.len(), 0.0);
        self.actor.forward(params, mb.obs, rows, &mut shard.actor);
        self.critic.forward(params, mb.obs, rows, &mut shard.critic);
        let a = self.head.outputs();
        shard.d_out.resize(rows * a, 0.0);
        shard.d_values.resize(rows, 0.0);
        let log_std = self.log_std.map(|o| &params[o..o + a]);
        let mut d_log_std = vec![0.0f32; if log_std.is_some() { a } else { 0 }];
        shard.sums = head_grads(
            self.head,
            shard.actor.output(),
            shard.critic.output(),
            log_std,
            mb,
            n,
            coefs,
            &mut shard.d_out,
            &mut shard.d_values,
            &mut d_log_std,
        );
        self.actor.backward(
            params,
            mb.obs,
            &shard.actor,
            &mut shard.d_out,
            &mut shard.grad,
            &mut shard.scratch,
        );
        self.critic.backward(
            params,
            mb.obs,
            &shard.critic,
            &mut shard.d_values,
            &mut shard.grad,
            &mut shard.scratch,
        );
        if let Some(o) = self.log_std {
            shard.grad[o..o + a].copy_from_slice(&d_log_std);
        }
    }

    /// One minibatch step: the gradient, clipped to `max_grad_norm` (global L2 norm), and an
    /// Adam step at `lr`.
    pub fn step(
        &mut self,
        mb: &Minibatch<'_>,
        coefs: LossCoefs,
        lr: f64,
        max_grad_norm: f64,
    ) -> StepReport {
        let (_, sums) = self.gradient(mb, coefs);
        let norm = clip_flat_global_norm(&mut self.grad, max_grad_norm);
        self.adam.step(lr, &mut self.params, &self.grad);
        StepReport {
            sums,
            rows: mb.len(),
            grad_norm: norm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algo::ppo::loss::ppo_loss;
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Tensor, TensorData};
    use shoal_common::model::action_rows;
    use shoal_common::rng::Rng;

    struct Data {
        obs: Vec<f32>,
        actions: Vec<f32>,
        old: Vec<f32>,
        adv: Vec<f32>,
        ret: Vec<f32>,
    }

    impl Data {
        fn seeded(spec: &ModelSpec, rows: usize, seed: u64) -> Self {
            let mut rng = Rng::new(seed);
            let mut normals = |n: usize, s: f64| -> Vec<f32> {
                (0..n).map(|_| (rng.normal() * s) as f32).collect()
            };
            let obs = normals(rows * spec.obs_dim, 1.0);
            let actions = match spec.action {
                ActionHead::Categorical(n) => (0..rows)
                    .map(|i| ((i * 7 + seed as usize) % n) as f32)
                    .collect(),
                ActionHead::Gaussian(a) => normals(rows * a, 1.5),
            };
            // Noise, to be added to the policy's own log-probabilities.
            let old = normals(rows, 0.3);
            let adv = normals(rows, 1.0);
            let ret = normals(rows, 2.0);
            Self {
                obs,
                actions,
                old,
                adv,
                ret,
            }
        }

        fn minibatch(&self) -> Minibatch<'_> {
            Minibatch {
                obs: &self.obs,
                actions: &self.actions,
                old_log_probs: &self.old,
                advantages: &self.adv,
                returns: &self.ret,
            }
        }
    }

    /// burn's autodiff of `ppo_loss` through the whole network: the flat gradient and the loss
    /// parts (policy, value, entropy, approx KL, clip fraction).
    fn burn_gradient(
        spec: &ModelSpec,
        params: &[f32],
        data: &Data,
        coefs: LossCoefs,
    ) -> (Vec<f32>, [f64; 5]) {
        let device = Device::flex().autodiff();
        let model = spec.build(params, &device);
        let rows = data.old.len();
        let obs = Tensor::<2>::from_data(
            TensorData::new(data.obs.clone(), [rows, spec.obs_dim]),
            &device,
        );
        let outputs = spec.action.outputs();
        let actions = Tensor::<2>::from_data(
            TensorData::new(action_rows(spec.action, &data.actions), [rows, outputs]),
            &device,
        );
        let t1 = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [rows]), &device);
        let (policy, values) = model.evaluate_with_values(obs, actions);
        let loss = ppo_loss(
            policy,
            values,
            t1(&data.old),
            t1(&data.adv),
            t1(&data.ret),
            coefs,
        );
        let grads = GradientsParams::from_grads(loss.total.clone().backward(), &model);
        let scalar =
            |t: Tensor<1>| t.into_data().convert::<f32>().as_slice::<f32>().unwrap()[0] as f64;
        let parts = [
            scalar(loss.policy.inner()),
            scalar(loss.value.inner()),
            scalar(loss.entropy.inner()),
            scalar(loss.approx_kl.inner()),
            scalar(loss.clipfrac.inner()),
        ];
        (crate::dense::flat_grads(&model, &grads), parts)
    }

    /// The policy's own log-probabilities of `data`'s actions, so that old ones near them make
    /// some ratios clip and others not.
    fn current_log_probs(spec: &ModelSpec, params: &[f32], data: &Data) -> Vec<f32> {
        let device = Device::flex();
        let model = spec.build(params, &device);
        let rows = data.adv.len();
        let obs = Tensor::<2>::from_data(
            TensorData::new(data.obs.clone(), [rows, spec.obs_dim]),
            &device,
        );
        let actions = Tensor::<2>::from_data(
            TensorData::new(
                action_rows(spec.action, &data.actions),
                [rows, spec.action.outputs()],
            ),
            &device,
        );
        model
            .evaluate(obs, actions)
            .log_probs
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap()
    }

    fn specs() -> Vec<ModelSpec> {
        vec![
            ModelSpec::mlp(
                4,
                ActionHead::Categorical(2),
                vec![64, 64],
                Activation::Tanh,
            ),
            ModelSpec::mlp(6, ActionHead::Categorical(5), vec![32], Activation::Relu),
            ModelSpec::mlp(3, ActionHead::Gaussian(2), vec![16, 16], Activation::Tanh),
        ]
    }

    #[test]
    fn gradients_equal_burns_autodiff_on_seeded_data() {
        let coefs = LossCoefs {
            clip_coef: 0.2,
            vf_coef: 0.5,
            ent_coef: 0.01,
        };
        for (k, spec) in specs().into_iter().enumerate() {
            let mut params = spec.init_params(k as u64 + 1);
            // Away from the initialisation (0.01-gain policy layer, zero biases), so that every
            // path of the network carries gradient.
            let mut rng = Rng::new(9);
            params
                .iter_mut()
                .for_each(|p| *p += (rng.normal() * 0.1) as f32);
            let mut data = Data::seeded(&spec, 67, k as u64);
            let current = current_log_probs(&spec, &params, &data);
            data.old
                .iter_mut()
                .zip(current)
                .for_each(|(o, c)| *o = c + *o * 0.7);
            let (want, parts) = burn_gradient(&spec, &params, &data, coefs);
            for threads in [1, 2, 3] {
                let mut dense = DensePpo::new(&spec, &params, 1e-5, threads)
                    .unwrap()
                    .split_every_minibatch();
                let (got, sums) = dense.gradient(&data.minibatch(), coefs);
                let scale = want.iter().fold(0.0f32, |m, g| m.max(g.abs()));
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-6 * (1.0 + scale),
                        "{} threads {threads}: d/d{i} = {g} vs burn's {w}",
                        spec.input()
                    );
                }
                let n = data.old.len() as f64;
                let got = [
                    sums.policy / n,
                    sums.value / n,
                    sums.entropy / n,
                    sums.approx_kl / n,
                    sums.clipped / n,
                ];
                for (g, w) in got.iter().zip(&parts) {
                    assert!(
                        (g - w).abs() < 1e-5 * (1.0 + w.abs()),
                        "loss part {g} vs {w}"
                    );
                }
                assert!(got[4] > 0.0 && got[4] < 1.0, "some ratios clip: {}", got[4]);
            }
        }
    }

    #[test]
    fn shards_reduce_in_a_fixed_order() {
        let spec = &specs()[0];
        let params = spec.init_params(5);
        let data = Data::seeded(spec, 256, 2);
        let coefs = LossCoefs {
            clip_coef: 0.2,
            vf_coef: 0.5,
            ent_coef: 0.0,
        };
        let run = || {
            let mut dense = DensePpo::new(spec, &params, 1e-5, 2)
                .unwrap()
                .split_every_minibatch();
            for _ in 0..3 {
                dense.step(&data.minibatch(), coefs, 3e-4, 0.5);
            }
            dense.params().to_vec()
        };
        assert_eq!(run(), run());
    }

    #[test]
    fn only_mlp_models_on_vectors_take_the_host_step() {
        use shoal_common::model::{EncoderKind, Input};
        let spec = ModelSpec {
            input: Input::Image([1, 8, 8]),
            encoder: EncoderKind::SmallCnn,
            ..ModelSpec::mlp(64, ActionHead::Categorical(3), vec![], Activation::Relu)
        };
        assert!(DensePpo::new(&spec, &spec.init_params(1), 1e-5, 1).is_none());
    }
}
