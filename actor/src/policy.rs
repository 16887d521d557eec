//! The actor's local copy of the policy: the network on the run's compute engine (on the CPU),
//! used for batched inference (one forward per step for all environment copies), together with
//! the observation/reward normalisation of its version.

use std::sync::Mutex;

use burn::tensor::Device;
use shoal_common::config::EngineChoice;
use shoal_common::model::{ActionHead, LN_SQRT_2PI, ModelSpec};
use shoal_common::normalize::{NormStats, Normalizer};
use shoal_common::proto;
use shoal_common::rng::Rng;
use shoal_common::settings::ActorSettings;
use shoal_compute::{Engine, Inference, Rows, Want};

use crate::error::ActorError;

/// Actions chosen for one batch of observations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Act {
    /// Sampled actions, `[N]` indices (categorical) or `[N, A]` unclipped vectors (Gaussian).
    pub actions: Vec<f32>,
    /// log π(a | s) of the sampled actions.
    pub log_probs: Vec<f32>,
    /// V(s).
    pub values: Vec<f32>,
}

/// The engine an actor computes with for the run's `engine`: on the CPU, one thread (an
/// actor's batch is its environment copies; more actors use more cores).
pub fn actor_engine(choice: EngineChoice) -> Engine {
    Engine::choose(choice, &Device::flex(), 1).expect("every engine runs on the CPU")
}

/// A policy version ready for inference.
pub struct Policy {
    /// Behind a lock only because a forward pass writes the engine's buffers: one thread acts.
    model: Mutex<Box<dyn Inference>>,
    version: u64,
    obs_dim: usize,
    head: ActionHead,
    /// Gaussian policies: the log standard deviation, read once per version.
    log_std: Vec<f32>,
    normalizer: Normalizer,
}

impl Policy {
    /// Builds version `version` from flat parameters (already decoded and checked) and the
    /// normalisation that goes with them, on the host engine.
    pub fn new(spec: &ModelSpec, params: &[f32], version: u64, normalizer: Normalizer) -> Self {
        Self::on(
            &actor_engine(EngineChoice::Host),
            spec,
            params,
            version,
            normalizer,
        )
    }

    /// [`Policy::new`] on `engine`.
    pub fn on(
        engine: &Engine,
        spec: &ModelSpec,
        params: &[f32],
        version: u64,
        normalizer: Normalizer,
    ) -> Self {
        let model = engine.inference(spec, params);
        Self {
            log_std: model.log_std(),
            model: Mutex::new(model),
            version,
            obs_dim: spec.obs_dim,
            head: spec.action,
            normalizer,
        }
    }

    /// The version a `Parameters` message carries, decoded against `settings`' model and
    /// normalised as that version's statistics say; also returns the flat parameters.
    pub fn from_parameters(
        settings: &ActorSettings,
        p: &proto::Parameters,
    ) -> Result<(Vec<f32>, Self), ActorError> {
        let params = settings.model.layout().decode(&p.data)?;
        let stats = NormStats::from_proto(p.normalization.as_ref(), settings.model.moments_dim())?;
        let normalizer = Normalizer::new(settings.normalize, &stats);
        let engine = actor_engine(settings.engine);
        let policy = Self::on(&engine, &settings.model, &params, p.version, normalizer);
        Ok((params, policy))
    }

    /// The parameter version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The action distribution.
    pub fn head(&self) -> ActionHead {
        self.head
    }

    /// How this version's inputs and rewards are normalised.
    pub fn normalizer(&self) -> &Normalizer {
        &self.normalizer
    }

    /// The wanted heads for the rows `obs`.
    fn infer(&self, obs: &[f32], want: Want) -> shoal_compute::Heads {
        debug_assert_eq!(obs.len() % self.obs_dim, 0);
        self.model
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .infer(Rows::F32(obs), want)
    }

    /// Samples an action for each of the `obs.len() / O` (normalised) observations.
    pub fn act(&self, obs: &[f32], rng: &mut Rng) -> Act {
        let heads = self.infer(obs, Want::BOTH);
        let mut act = Act {
            values: heads.values,
            ..Act::default()
        };
        match self.head {
            ActionHead::Categorical(a) => sample_categorical(&heads.policy, a, rng, &mut act),
            ActionHead::Gaussian(_) => sample_gaussian(&heads.policy, &self.log_std, rng, &mut act),
        }
        act
    }

    /// The policy head's raw outputs `[B, A]` (a DQN's Q-values) for each observation.
    pub fn outputs(&self, obs: &[f32]) -> Vec<f32> {
        self.infer(obs, Want::POLICY).policy
    }

    /// V(s) for each (normalised) observation.
    pub fn values(&self, obs: &[f32]) -> Vec<f32> {
        self.infer(obs, Want::VALUE).values
    }
}

/// One action per row of `logits` (`[N, A]`) from the softmax, with its log-probability.
fn sample_categorical(logits: &[f32], a: usize, rng: &mut Rng, act: &mut Act) {
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
        act.actions.push(action as f32);
        act.log_probs.push(log_prob as f32);
    }
}

/// One action per row of `mean` (`[N, A]`): `a = μ + σ·ε` with `ε ~ N(0, I)`, and
/// `log π(a) = Σ_j (−ε_j²/2 − log σ_j − ln √(2π))`. The sample is not clipped here.
fn sample_gaussian(mean: &[f32], log_std: &[f32], rng: &mut Rng, act: &mut Act) {
    let a = log_std.len();
    for row in mean.chunks_exact(a) {
        let mut log_prob = 0.0f64;
        for (&mu, &ls) in row.iter().zip(log_std) {
            let eps = rng.normal();
            act.actions
                .push((mu as f64 + (ls as f64).exp() * eps) as f32);
            log_prob += -0.5 * eps * eps - ls as f64 - LN_SQRT_2PI;
        }
        act.log_probs.push(log_prob as f32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_common::model::Activation;

    fn off(obs_dim: usize) -> Normalizer {
        Normalizer::off(obs_dim)
    }

    #[test]
    fn sampled_log_probs_match_the_softmax() {
        let spec = ModelSpec::mlp(4, ActionHead::Categorical(2), vec![16], Activation::Tanh);
        // Large output gain so the two actions have clearly different probabilities.
        let mut params = spec.init_params(9);
        for p in &mut params {
            *p *= 3.0;
        }
        let policy = Policy::new(&spec, &params, 4, off(4));
        let obs = [0.1f32, -0.2, 0.3, 0.05, 1.0, 0.5, -0.5, 0.0];
        let mut rng = Rng::new(0);
        let act = policy.act(&obs, &mut rng);
        assert_eq!(act.actions.len(), 2);
        assert_eq!(act.values, policy.values(&obs));
        // Recompute log-softmax by hand from a second forward.
        let logits = policy.outputs(&obs);
        for i in 0..2 {
            let row = &logits[i * 2..i * 2 + 2];
            let lse = (row[0].exp() + row[1].exp()).ln();
            let want = row[act.actions[i] as usize] - lse;
            assert!((act.log_probs[i] - want).abs() < 1e-5);
        }
    }

    #[test]
    fn gaussian_samples_follow_mean_and_log_std_with_their_density() {
        let spec = ModelSpec::mlp(3, ActionHead::Gaussian(2), vec![8], Activation::Tanh);
        let mut params = spec.init_params(2);
        let n = params.len();
        params[n - 2..].copy_from_slice(&[-1.0, 0.5]);
        let policy = Policy::new(&spec, &params, 1, off(3));
        let obs: Vec<f32> = std::iter::repeat_n([0.3f32, -0.1, 0.7], 4000)
            .flatten()
            .collect();
        let act = policy.act(&obs, &mut Rng::new(5));
        let mean = policy.outputs(&obs[..3]);
        for j in 0..2 {
            let xs: Vec<f64> = act.actions[j..]
                .iter()
                .step_by(2)
                .map(|&x| x as f64)
                .collect();
            let m = xs.iter().sum::<f64>() / xs.len() as f64;
            let sd = (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64).sqrt();
            let want_sd = [-1.0f64, 0.5][j].exp();
            assert!(
                (m - mean[j] as f64).abs() < 0.1 * want_sd,
                "mean {m} vs {}",
                mean[j]
            );
            assert!((sd / want_sd - 1.0).abs() < 0.05, "sd {sd} vs {want_sd}");
        }
        // The reported log-probability is the density of the sampled vector.
        for i in 0..3 {
            let mut want = 0.0f64;
            for j in 0..2 {
                let ls = [-1.0f64, 0.5][j];
                let z = (act.actions[i * 2 + j] as f64 - mean[j] as f64) / ls.exp();
                want += -0.5 * z * z - ls - LN_SQRT_2PI;
            }
            assert!((act.log_probs[i] as f64 - want).abs() < 1e-4);
        }
    }
}
