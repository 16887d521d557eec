//! A3C on the actor: collect `n_steps` with the local copy, compute the gradient of the
//! actor-critic loss on the n-step returns with burn's autodiff on flex, push it with the
//! version it was computed on; each ack brings newer parameters when the learner has them.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData, Transaction};
use shoal_common::env::EnvError;
use shoal_common::gradient::GradientPush;
use shoal_common::model::{ActorCritic, ModelSpec, action_rows};
use shoal_common::returns::{bootstrapped_returns, column, from_columns, next_values};
use shoal_common::rollout::Rollout;
use shoal_common::settings::{A3cLoss, ActorSettings};
use tracing::debug;

use super::seam::{ActorAlgorithm, Link, Session, SessionResult};
use crate::connection::{FULL_QUEUE_BACKOFF, first_parameters, retry_while_full};
use crate::error::{ActorError, SessionEnd};
use crate::policy::Policy;
use crate::worker::Worker;

/// n-step returns for every step of a rollout, `[T, N]` like its arrays: each environment's
/// [`bootstrapped_returns`] (bootstrapped from V of the last observation, from V of the final
/// observation where an episode was truncated, not at all where it terminated).
pub fn rollout_returns(r: &Rollout, gamma: f64) -> Vec<f32> {
    let (t_len, n) = (r.shape.n_steps, r.shape.num_envs);
    from_columns(t_len, n, |env| {
        let truncated = column(&r.truncated, n, env);
        let next = next_values(
            &column(&r.values, n, env),
            &truncated,
            &column(&r.truncation_values, n, env),
            r.bootstrap_values[env],
        );
        let terminated = column(&r.terminated, n, env);
        bootstrapped_returns(
            &column(&r.rewards, n, env),
            &terminated,
            &truncated,
            &next,
            gamma,
        )
    })
}

/// A gradient and the loss parts it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LossGradient {
    /// d loss / d parameters in layout order.
    pub grad: Vec<f32>,
    /// Policy loss.
    pub policy_loss: f32,
    /// Value loss.
    pub value_loss: f32,
    /// Mean entropy.
    pub entropy: f32,
}

/// Computes A3C gradients on a local autodiff copy of the network (rebuilt once per version).
pub struct GradientComputer {
    spec: ModelSpec,
    loss: A3cLoss,
    device: Device,
    model: Option<(u64, ActorCritic)>,
}

impl GradientComputer {
    /// For the network `spec` and the run's loss.
    pub fn new(spec: &ModelSpec, loss: A3cLoss) -> Self {
        Self {
            spec: spec.clone(),
            loss,
            device: Device::flex().autodiff(),
            model: None,
        }
    }

    /// The gradient of A3C's loss on `rollout`, at parameters `params` (version `version`):
    /// policy `−mean(log π(a|s) · (R − V(s)))` with the advantage held constant, value
    /// `mean((R − V(s))²)`, minus `ent_coef` times the mean entropy.
    pub fn compute(&mut self, version: u64, params: &[f32], rollout: &Rollout) -> LossGradient {
        if self.model.as_ref().is_none_or(|(v, _)| *v != version) {
            self.model = Some((version, self.spec.build(params, &self.device)));
        }
        let (_, model) = self.model.as_ref().expect("model built");
        let b = rollout.log_probs.len();
        let head = self.spec.action;
        let d = &self.device;
        let obs = rollout.obs.clone().into_tensor(b, d);
        let actions = Tensor::<2>::from_data(
            TensorData::new(action_rows(head, &rollout.actions), [b, head.outputs()]),
            d,
        );
        let returns = Tensor::<1>::from_data(
            TensorData::new(rollout_returns(rollout, self.loss.gamma), [b]),
            d,
        );
        let (eval, values) = model.evaluate_with_values(obs, actions);
        let advantages = returns.clone() - values.clone().detach();
        let policy = (eval.log_probs * advantages).mean().neg();
        let value = (returns - values).square().mean();
        let total = policy.clone() + value.clone().mul_scalar(self.loss.vf_coef)
            - eval.entropy.clone().mul_scalar(self.loss.ent_coef);
        let grads = GradientsParams::from_grads(total.backward(), model);
        let (grad, [policy_loss, value_loss, entropy]) = flatten(
            model,
            &grads,
            [policy.inner(), value.inner(), eval.entropy.inner()],
        );
        LossGradient {
            grad,
            policy_loss,
            value_loss,
            entropy,
        }
    }
}

/// The gradients of `model`'s parameters flattened in layout order, and three scalars, read in
/// one transaction.
fn flatten(
    model: &ActorCritic,
    grads: &GradientsParams,
    scalars: [Tensor<1>; 3],
) -> (Vec<f32>, [f32; 3]) {
    struct Gather<'a> {
        grads: &'a GradientsParams,
        tensors: Vec<Tensor<1>>,
        sizes: Vec<usize>,
    }
    impl ModuleVisitor for Gather<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let n = param.lazy_shape().num_elements();
            self.sizes.push(n);
            if let Some(g) = self.grads.get::<D>(param.id) {
                self.tensors.push(g.reshape([n]));
            } else {
                // A parameter the loss does not reach (none in this network) has zero gradient.
                self.tensors.push(Tensor::zeros([n], &param.val().device()));
            }
        }
    }
    let mut gather = Gather {
        grads,
        tensors: Vec::new(),
        sizes: Vec::new(),
    };
    model.visit(&mut gather);
    let mut tx = Transaction::default();
    for t in gather.tensors.into_iter().chain(scalars) {
        tx = tx.register(t);
    }
    let mut data = tx.execute();
    let tail = data.split_off(data.len() - 3);
    let mut flat = Vec::with_capacity(gather.sizes.iter().sum());
    for d in data {
        flat.extend_from_slice(d.convert::<f32>().as_slice::<f32>().expect("f32"));
    }
    let scalar = |i: usize| {
        tail[i]
            .clone()
            .convert::<f32>()
            .as_slice::<f32>()
            .expect("f32")[0]
    };
    (flat, [scalar(0), scalar(1), scalar(2)])
}

/// An A3C actor: its environments and the loss it differentiates.
pub struct A3cActor {
    worker: Worker,
    loss: A3cLoss,
}

impl A3cActor {
    /// Environments for `settings`, differentiating `loss`.
    pub fn new(settings: &ActorSettings, loss: A3cLoss) -> Result<Self, EnvError> {
        Ok(Self {
            worker: Worker::new(settings)?,
            loss,
        })
    }
}

impl ActorAlgorithm for A3cActor {
    fn set_actor_id(&mut self, actor_id: u32) {
        self.worker.set_actor_id(actor_id);
    }

    fn session<'a>(&'a mut self, link: Link<'a>) -> Session<'a> {
        Box::pin(session(&mut self.worker, self.loss, link))
    }
}

/// One connection's worth of A3C: fetch the parameters, then collect, compute the gradient and
/// push it; each ack brings newer parameters when the learner has them.
async fn session(worker: &mut Worker, loss: A3cLoss, link: Link<'_>) -> SessionResult {
    let Link {
        client,
        settings,
        summary,
        shutdown,
    } = link;
    let mut computer = GradientComputer::new(&settings.model, loss);
    let (mut params, mut policy) =
        Policy::from_parameters(settings, &first_parameters(client, settings).await?)?;
    loop {
        if shutdown.is_cancelled() {
            return Ok(SessionEnd::Cancelled);
        }
        let rollout = worker.collect(&policy).map_err(ActorError::from)?;
        let env_steps = rollout.env_steps();
        let stats = summary.report(
            env_steps as u64,
            rollout.episode_returns.len() as u64,
            worker.inference.take_mean(),
        );
        let g = computer.compute(policy.version(), &params, &rollout);
        let mut msg = GradientPush {
            actor_id: settings.actor_id,
            version: policy.version(),
            grad: g.grad,
            env_steps: env_steps as u32,
            episode_returns: rollout.episode_returns,
            episode_lengths: rollout.episode_lengths,
            policy_loss: g.policy_loss,
            value_loss: g.value_loss,
            entropy: g.entropy,
        }
        .to_proto(&settings.model_fingerprint);
        msg.actor_stats = Some(stats);
        let Some(ack) = retry_while_full(shutdown, FULL_QUEUE_BACKOFF, async || {
            client.push_gradient(msg.clone()).await
        })
        .await?
        else {
            return Ok(SessionEnd::Cancelled);
        };
        summary.rollouts += 1;
        if let Some(f) = ack.finished {
            return Ok(SessionEnd::Finished(f.reason));
        }
        if !ack.accepted {
            debug!(reason = ack.reason, "gradient not applied");
        }
        if let Some(p) = ack.parameters {
            (params, policy) = Policy::from_parameters(settings, &p)?;
        }
    }
}
