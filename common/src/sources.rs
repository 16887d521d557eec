//! Where a run's environment copies come from: shoal's registry, or worlds served over
//! dm_env_rpc (an id starting `dm_env_rpc://`, see [`crate::remote`]). The one place that
//! chooses; actors, evaluations and the learner all open environments through it.

use crate::env::{EnvError, EnvSpec, LocalCopies, Space, VecEnv, info};
use crate::episodes::EpisodeBounds;
use crate::remote::{self, RemoteWorlds};

/// What a run needs to know about its environment before any actor steps it.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvShape {
    /// What the policy observes.
    pub observation_space: Space,
    /// What the policy does.
    pub action_space: Space,
    /// What an episode may be (its claims are checked against it).
    pub bounds: EpisodeBounds,
}

/// `num_envs` copies of `env`, copy `i` seeded with `derive_seed(seed, i)`, each started on its
/// first episode.
///
/// # Errors
/// An unknown id; for a served environment, a server that cannot be reached, refuses the
/// worlds or announces specs shoal cannot train on; frame stacking asked of a served
/// environment (stack on the server).
pub fn open(env: &EnvSpec, num_envs: usize, seed: u64) -> Result<VecEnv, EnvError> {
    if remote::is_remote(&env.id) {
        refuse_stacking(env)?;
        let worlds =
            RemoteWorlds::open(&env.id, num_envs, seed).map_err(|source| EnvError::Remote {
                env: crate::text::bounded_to(&env.id, 200),
                source,
            })?;
        VecEnv::of(Box::new(worlds))
    } else {
        VecEnv::of(Box::new(LocalCopies::new(env, num_envs, seed)?))
    }
}

/// The spaces and episode bounds of `env`: from the registry, or read from the specs of one
/// world the server creates for the purpose (and destroys at once).
pub fn shape(env: &EnvSpec) -> Result<EnvShape, EnvError> {
    if remote::is_remote(&env.id) {
        refuse_stacking(env)?;
        let worlds = RemoteWorlds::open(&env.id, 1, 0).map_err(|source| EnvError::Remote {
            env: crate::text::bounded_to(&env.id, 200),
            source,
        })?;
        let layout = worlds.layout();
        return Ok(EnvShape {
            observation_space: layout.observation_space.clone(),
            action_space: layout.action_space.clone(),
            // The protocol has no time limit to announce: any length.
            bounds: EpisodeBounds {
                max_length: u32::MAX,
                reward_range: layout.reward_range,
            },
        });
    }
    let made = env.make()?;
    Ok(EnvShape {
        observation_space: made.observation_space(),
        action_space: made.action_space(),
        bounds: EpisodeBounds::of(info(&env.id)?),
    })
}

fn refuse_stacking(env: &EnvSpec) -> Result<(), EnvError> {
    if env.frame_stack > 1 {
        return Err(EnvError::FrameStack(format!(
            "`{}` is served: stack frames on the server (shoal env-server's `frame_stack` \
             setting in the URL, e.g. ?env=Catch-v0&frame_stack=2)",
            env.id
        )));
    }
    Ok(())
}
