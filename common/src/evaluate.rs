//! Deterministic evaluation of a policy: the greedy action of a categorical policy (for a DQN,
//! the argmax of its Q-values) or the mean of a Gaussian policy (clipped to the action space
//! when stepped), in `episodes` environment copies stepped together, one episode each.
//! The DQN learner's periodic evaluation and `shoal eval` both use it.

use crate::env::{EnvError, EnvSpec, VecStep};
use crate::model::{ActionHead, ModelSpec, argmax};
use crate::normalize::Normalizer;

/// One evaluation episode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Episode {
    /// Undiscounted return.
    pub episode_return: f64,
    /// Steps.
    pub length: u32,
}

/// Runs `episodes` deterministic episodes of `env` (copy `i` seeded from `seed` and `i`)
/// with the network `spec` whose policy head's outputs for rows of observations `outputs`
/// computes (a compute engine's inference), observations normalised by `normalizer` as in
/// training. Returns them in copy order.
pub fn evaluate_deterministic(
    spec: &ModelSpec,
    outputs: &mut dyn FnMut(&[f32]) -> Vec<f32>,
    normalizer: &Normalizer,
    env: &EnvSpec,
    episodes: usize,
    seed: u64,
) -> Result<Vec<Episode>, EnvError> {
    let mut venv = crate::sources::open(env, episodes, seed)?;
    let o = spec.obs_dim;
    let mut done: Vec<Option<Episode>> = vec![None; episodes];
    let mut step = VecStep::default();
    let mut obs = Vec::with_capacity(episodes * o);
    while done.iter().any(Option::is_none) {
        obs.clear();
        obs.extend_from_slice(venv.observations());
        normalizer.observations(&mut obs);
        let out = outputs(&obs);
        match spec.action {
            ActionHead::Categorical(a) => {
                let actions: Vec<usize> = out.chunks_exact(a).map(argmax).collect();
                venv.step_discrete(&actions, &mut step)?;
            }
            // The mean, which the environment wrapper clips to the bounds.
            ActionHead::Gaussian(_) => venv.step_continuous(&out, &mut step)?,
        }
        for ep in &step.finished {
            done[ep.env_index].get_or_insert(Episode {
                episode_return: ep.episode_return,
                length: ep.length,
            });
        }
    }
    Ok(done
        .into_iter()
        .map(|e| e.expect("every copy finished"))
        .collect())
}

/// Mean and (population) standard deviation.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Activation;

    /// The policy head's outputs of `spec` with parameters drawn from seed 3, through burn.
    fn outputs(spec: &ModelSpec) -> impl FnMut(&[f32]) -> Vec<f32> {
        use burn::tensor::{Device, Tensor, TensorData};
        let model = spec.build(&spec.init_params(3), &Device::flex());
        let o = spec.obs_dim;
        move |obs: &[f32]| {
            let x = Tensor::<2>::from_data(
                TensorData::new(obs.to_vec(), [obs.len() / o, o]),
                &Device::flex(),
            );
            model
                .logits(x)
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap()
        }
    }

    #[test]
    fn every_copy_runs_one_whole_episode() {
        let spec = ModelSpec::mlp(4, ActionHead::Categorical(2), vec![8], Activation::Tanh);
        let eps = evaluate_deterministic(
            &spec,
            &mut outputs(&spec),
            &Normalizer::off(4),
            &EnvSpec::new("CartPole-v1"),
            5,
            11,
        )
        .unwrap();
        assert_eq!(eps.len(), 5);
        for e in &eps {
            // CartPole pays 1 per step.
            assert_eq!(e.episode_return, e.length as f64);
            assert!((1..=500).contains(&e.length));
        }
        // Deterministic: the same seed gives the same episodes.
        let again = evaluate_deterministic(
            &spec,
            &mut outputs(&spec),
            &Normalizer::off(4),
            &EnvSpec::new("CartPole-v1"),
            5,
            11,
        )
        .unwrap();
        assert_eq!(eps, again);
        assert_eq!(mean_std(&[1.0, 3.0]), (2.0, 1.0));
    }
}
