//! The KL leash on the trainer thread: the frozen reference policy (the run's starting
//! parameters) scores each rollout's actions, and every step's reward is penalised by
//! β·(log π − log π_ref) before advantages are computed ([`shoal_common::kl_leash`]).

use shoal_common::kl_leash::{adapt_beta, penalize_rewards};
use shoal_common::model::{ActionHead, ModelSpec};
use shoal_common::objective::log_probs;
use shoal_common::rollout::Rollout;
use shoal_compute::{Engine, Inference, Rows, Want};

/// The reference policy and the current β.
pub(crate) struct KlLeash {
    reference: Box<dyn Inference>,
    head: ActionHead,
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
    /// A leash to the policy with `params`, computed on `engine`.
    pub(crate) fn new(
        spec: &ModelSpec,
        params: &[f32],
        engine: &Engine,
        beta: f64,
        target: f64,
    ) -> Self {
        Self {
            reference: engine.inference(spec, params),
            head: spec.action,
            beta,
            target,
        }
    }

    /// Penalises the rewards of `rollouts` in place; then adapts β to the measured KL.
    pub(crate) fn penalize(&mut self, rollouts: &mut [Rollout]) -> LeashStats {
        let (mut sum, mut steps) = (0.0, 0usize);
        let log_std = self.reference.log_std();
        for r in rollouts.iter_mut() {
            let rows = r.log_probs.len();
            if rows == 0 {
                continue;
            }
            let out = self
                .reference
                .infer(Rows::from(&r.obs), Want::POLICY)
                .policy;
            let ref_log_probs = log_probs(self.head, &out, &log_std, &r.actions);
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
