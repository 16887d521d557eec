//! PPO's minibatch step on the host for `mlp` models (issue 19): the objective's gradient at the
//! heads ([`super::head_grads`]), both heads' backward passes ([`crate::dense::DenseMlp`]), the
//! minibatch split over threads (`super::shards`: the trainer thread and persistent workers,
//! each shard at least ~1M multiply-adds) with one reduction in a fixed order (bit-reproducible
//! for a fixed thread count and minibatch size), global-norm clipping and Adam, all on the flat
//! parameter vector. The same update as the burn path (`ppo_loss` under autodiff) to float
//! tolerance (tested), without its per-operation dispatch, graph building and allocation.

use shoal_common::model::{ActionHead, Activation, ModelSpec};

use super::head_grads::{LossSums, Minibatch};
use super::loss::LossCoefs;
use super::shards::{Job, Net, Shard, Worker};
use crate::dense::model::vector_mlp;
use crate::dense::{DenseMlp, HostModel};
use crate::grad_clip::clip_flat_global_norm;

/// The least work (multiply-adds of the forward pass) worth a thread of its own.
const MIN_SHARD_MACS: usize = 1 << 20;

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

/// The model, its optimizer, the shard workers and the buffers of the host PPO step.
#[derive(Debug)]
pub struct DensePpo {
    net: Net,
    model: HostModel,
    /// The trainer thread's own shard (the first).
    own: Shard,
    /// One per further thread, with its job's buffers while it is not out.
    workers: Vec<(Worker, Option<Job>)>,
    grad: Vec<f32>,
    /// [`MIN_SHARD_MACS`] (tests split small minibatches too).
    min_shard_macs: usize,
}

impl DensePpo {
    /// The host step for `spec` when it is an `mlp` model on vectors (`None` otherwise: the
    /// burn path trains it), starting from `initial`, split over `threads` threads.
    pub fn new(spec: &ModelSpec, initial: &[f32], adam_eps: f64, threads: usize) -> Option<Self> {
        if !vector_mlp(spec) {
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
        let net = Net {
            actor,
            critic,
            log_std,
            head: spec.action,
            obs_dim: spec.obs_dim,
        };
        let workers = (1..threads.max(1))
            .map(|k| (Worker::spawn(net.clone(), k), Some(Job::default())))
            .collect();
        Some(Self {
            net,
            model: HostModel::new(layout, initial, adam_eps),
            own: Shard::default(),
            workers,
            grad: vec![0.0; len],
            min_shard_macs: MIN_SHARD_MACS,
        })
    }

    /// Splits every minibatch over all threads, however small (for tests of the reduction).
    #[cfg(test)]
    fn split_every_minibatch(mut self) -> Self {
        self.min_shard_macs = 1;
        self
    }

    /// The model: parameters and Adam state.
    pub fn model(&self) -> &HostModel {
        &self.model
    }

    /// The model, to restore or load into.
    pub fn model_mut(&mut self) -> &mut HostModel {
        &mut self.model
    }

    /// Multiply-adds of one row's forward pass through both heads.
    pub fn macs_per_row(&self) -> usize {
        self.net.macs_per_row()
    }

    /// d loss / d parameters of `mb` (in the flat layout) and the loss sums, computed over
    /// the shards and reduced in shard order.
    pub fn gradient(&mut self, mb: &Minibatch<'_>, coefs: LossCoefs) -> (&[f32], LossSums) {
        let n = mb.len();
        let width = self.net.head.action_width();
        // A shard below ~1M multiply-adds costs more to hand to a thread than it saves
        // (measured: CartPole's 64-row minibatch took 0.08 ms on one thread, 0.12 on two).
        let worth = (n * self.macs_per_row() / self.min_shard_macs).max(1);
        let parts = (self.workers.len() + 1).min(worth).min(n.max(1));
        let chunk = n.div_ceil(parts);
        let rows = |k: usize| {
            mb.rows(
                (k * chunk).min(n),
                ((k + 1) * chunk).min(n),
                self.net.obs_dim,
                width,
            )
        };
        // Shards 1.. go to the workers, shard 0 is computed here meanwhile.
        for (k, (worker, job)) in self.workers.iter_mut().enumerate().take(parts - 1) {
            let mut job = job.take().expect("no job out between steps");
            job.fill(self.model.params(), &rows(k + 1), n, coefs);
            worker.start(job);
        }
        self.net
            .shard_gradient(self.model.params(), &rows(0), n, coefs, &mut self.own);
        self.grad.copy_from_slice(&self.own.grad);
        let mut sums = self.own.sums;
        for (worker, slot) in self.workers.iter_mut().take(parts - 1) {
            let job = worker.finish();
            for (g, s) in self.grad.iter_mut().zip(&job.shard.grad) {
                *g += s;
            }
            sums.add(&job.shard.sums);
            *slot = Some(job);
        }
        (&self.grad, sums)
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
        self.model.step(lr, &self.grad);
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
            dense.model().params().to_vec()
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
