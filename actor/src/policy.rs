//! The actor's local copy of the policy: a detached, non-autodiff network on flex, used for
//! batched inference (one forward per step for all environment copies).

use burn::tensor::{Device, Tensor, TensorData, Transaction};
use shoal_common::model::{ActorCritic, ModelSpec};
use shoal_common::rng::Rng;

/// Actions chosen for one batch of observations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Act {
    /// Sampled action per copy.
    pub actions: Vec<usize>,
    /// log π(a | s) of the sampled actions.
    pub log_probs: Vec<f32>,
    /// V(s).
    pub values: Vec<f32>,
}

/// A policy version ready for inference.
pub struct Policy {
    model: ActorCritic,
    version: u64,
    obs_dim: usize,
    num_actions: usize,
    device: Device,
}

fn read(data: TensorData) -> Vec<f32> {
    data.convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 tensor data")
}

impl Policy {
    /// Builds version `version` from flat parameters (already decoded and checked).
    pub fn new(spec: &ModelSpec, params: &[f32], version: u64) -> Self {
        let device = Device::flex();
        Self {
            model: spec.build(params, &device),
            version,
            obs_dim: spec.obs_dim,
            num_actions: spec.num_actions,
            device,
        }
    }

    /// The parameter version.
    pub fn version(&self) -> u64 {
        self.version
    }

    fn obs_tensor(&self, obs: &[f32]) -> Tensor<2> {
        let n = obs.len() / self.obs_dim;
        Tensor::from_data(
            TensorData::new(obs.to_vec(), [n, self.obs_dim]),
            &self.device,
        )
    }

    /// Samples an action for each of the `obs.len() / O` observations.
    pub fn act(&self, obs: &[f32], rng: &mut Rng) -> Act {
        let x = self.obs_tensor(obs);
        let [logits, values] = Transaction::default()
            .register(self.model.logits(x.clone()))
            .register(self.model.values(x))
            .execute()
            .try_into()
            .expect("two tensors read");
        let logits = read(logits);
        let values = read(values);
        let a = self.num_actions;
        let mut out = Act {
            values,
            ..Act::default()
        };
        let mut probs = vec![0f32; a];
        for row in logits.chunks_exact(a) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f64;
            for (p, &l) in probs.iter_mut().zip(row) {
                *p = (l - max).exp();
                sum += *p as f64;
            }
            let action = rng.categorical(&probs);
            let log_prob = (row[action] - max) as f64 - sum.ln();
            out.actions.push(action);
            out.log_probs.push(log_prob as f32);
        }
        out
    }

    /// V(s) for each observation.
    pub fn values(&self, obs: &[f32]) -> Vec<f32> {
        read(self.model.values(self.obs_tensor(obs)).into_data())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_common::model::Activation;

    #[test]
    fn sampled_log_probs_match_the_softmax() {
        let spec = ModelSpec {
            obs_dim: 4,
            num_actions: 2,
            hidden: vec![16],
            activation: Activation::Tanh,
        };
        // Large output gain so the two actions have clearly different probabilities.
        let mut params = spec.init_params(9);
        for p in &mut params {
            *p *= 3.0;
        }
        let policy = Policy::new(&spec, &params, 4);
        let obs = [0.1f32, -0.2, 0.3, 0.05, 1.0, 0.5, -0.5, 0.0];
        let mut rng = Rng::new(0);
        let act = policy.act(&obs, &mut rng);
        assert_eq!(act.actions.len(), 2);
        assert_eq!(act.values, policy.values(&obs));
        // Recompute log-softmax by hand from a second forward.
        let logits = read(policy.model.logits(policy.obs_tensor(&obs)).into_data());
        for i in 0..2 {
            let row = &logits[i * 2..i * 2 + 2];
            let lse = (row[0].exp() + row[1].exp()).ln();
            let want = row[act.actions[i]] - lse;
            assert!((act.log_probs[i] - want).abs() < 1e-5);
        }
    }
}
