//! A3C on the actor: collect `n_steps` with the local copy, compute the gradient of the
//! actor-critic loss on the n-step returns on the run's compute engine, push it with the
//! version it was computed on; each ack brings newer parameters when the learner has them.

use shoal_common::env::EnvError;
use shoal_common::gradient::GradientPush;
use shoal_common::model::ModelSpec;
use shoal_common::objective::{LossCoefs, Minibatch, head_grads};
use shoal_common::returns::{bootstrapped_returns, column, from_columns, next_values};
use shoal_common::rollout::Rollout;
use shoal_common::settings::{A3cLoss, ActorSettings};
use shoal_compute::{Engine, HeadGrads, Optimizer, Rows, Training, Want};
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

/// Computes A3C gradients on a local copy of the network (loaded once per version).
pub struct GradientComputer {
    spec: ModelSpec,
    loss: A3cLoss,
    model: Box<dyn Training>,
    version: Option<u64>,
}

impl GradientComputer {
    /// For the network `spec` and the run's loss, on `engine`.
    pub fn new(engine: &Engine, spec: &ModelSpec, loss: A3cLoss) -> Self {
        let zeros = vec![0.0; spec.layout().num_floats()];
        Self {
            model: engine.training(spec, &zeros, Optimizer::None),
            spec: spec.clone(),
            loss,
            version: None,
        }
    }

    /// The gradient of A3C's loss on `rollout`, at parameters `params` (version `version`):
    /// policy `−mean(log π(a|s) · (R − V(s)))` with the advantage held constant, value
    /// `mean((R − V(s))²)`, minus `ent_coef` times the mean entropy
    /// ([`shoal_common::objective::head_grads`] without clipping, the advantage `R − V(s)`).
    pub fn compute(&mut self, version: u64, params: &[f32], rollout: &Rollout) -> LossGradient {
        if self.version != Some(version) {
            self.model.load(params);
            self.version = Some(version);
        }
        let b = rollout.log_probs.len();
        let heads = self.model.forward(Rows::from(&rollout.obs), Want::BOTH);
        let returns = rollout_returns(rollout, self.loss.gamma);
        let advantages: Vec<f32> = returns
            .iter()
            .zip(&heads.values)
            .map(|(r, v)| r - v)
            .collect();
        let mb = Minibatch {
            actions: &rollout.actions,
            old_log_probs: &rollout.log_probs,
            advantages: &advantages,
            returns: &returns,
        };
        let coefs = LossCoefs {
            clip_coef: None,
            vf_coef: f64::from(self.loss.vf_coef),
            ent_coef: f64::from(self.loss.ent_coef),
        };
        let log_std = self.model.log_std();
        let mut d_out = vec![0.0f32; heads.policy.len()];
        let mut d_values = vec![0.0f32; b];
        let mut d_log_std = vec![0.0f32; log_std.len()];
        let sums = head_grads(
            self.spec.action,
            &heads.policy,
            &heads.values,
            &log_std,
            &mb,
            b,
            coefs,
            &mut d_out,
            &mut d_values,
            &mut d_log_std,
        );
        self.model.backward(HeadGrads {
            policy: Some(&d_out),
            values: Some(&d_values),
            log_std: (!d_log_std.is_empty()).then_some(&d_log_std[..]),
        });
        let n = b.max(1) as f64;
        LossGradient {
            grad: self.model.gradient(),
            policy_loss: (sums.policy / n) as f32,
            value_loss: (sums.value / n) as f32,
            entropy: (sums.entropy / n) as f32,
        }
    }
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
    let engine = crate::policy::actor_engine(settings.engine);
    let mut computer = GradientComputer::new(&engine, &settings.model, loss);
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
