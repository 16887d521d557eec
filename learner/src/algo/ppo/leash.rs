//! The KL leash on the trainer thread: the frozen reference policy (the run's starting
//! parameters) scores each rollout's actions, and every step's reward is penalised by
//! β·(log π − log π_ref) before advantages are computed ([`shoal_common::kl_leash`]).

use burn::tensor::{Device, Tensor, TensorData};
use shoal_common::kl_leash::{adapt_beta, penalize_rewards};
use shoal_common::model::{ActionHead, ActorCritic, ModelSpec, action_rows};
use shoal_common::rollout::Rollout;

/// The reference policy and the current β.
pub(crate) struct KlLeash {
    reference: ActorCritic,
    head: ActionHead,
    device: Device,
    beta: f64,
    target: f64,
}

/// What the last batch measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LeashStats {
    /// Mean log π − log π_ref over the batch's steps (nats per step).
    pub kl: f64,
    /// β applied to this batch.
    pub beta: f64,
}

impl KlLeash {
    /// A leash to the policy with `params`, evaluated on `device` (without autodiff).
    pub(crate) fn new(
        spec: &ModelSpec,
        params: &[f32],
        device: &Device,
        beta: f64,
        target: f64,
    ) -> Self {
        Self {
            reference: spec.build(params, device),
            head: spec.action,
            device: device.clone(),
            beta,
            target,
        }
    }

    /// Penalises the rewards of `rollouts` in place; then adapts β to the measured KL.
    pub(crate) fn penalize(&mut self, rollouts: &mut [Rollout]) -> LeashStats {
        let head = self.head;
        let (mut sum, mut steps) = (0.0, 0usize);
        for r in rollouts.iter_mut() {
            let rows = r.log_probs.len();
            if rows == 0 {
                continue;
            }
            let obs = r.obs.clone().into_tensor(rows, &self.device);
            let actions = Tensor::<2>::from_data(
                TensorData::new(action_rows(head, &r.actions), [rows, head.outputs()]),
                &self.device,
            );
            let ref_log_probs = self
                .reference
                .evaluate(obs, actions)
                .log_probs
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("f32 log-probabilities");
            let kl = penalize_rewards(&mut r.rewards, &r.log_probs, &ref_log_probs, self.beta);
            sum += kl * rows as f64;
            steps += rows;
        }
        let stats = LeashStats {
            kl: sum / steps.max(1) as f64,
            beta: self.beta,
        };
        self.beta = adapt_beta(self.beta, stats.kl, self.target);
        stats
    }
}
