//! DQN actors' exploration as the learner tracks it, shared by both sides: the ε a registering
//! or pushing actor is told (admission) and the schedule's range in the status row (training),
//! from one count of the run's environment steps.

use std::sync::atomic::{AtomicU64, Ordering};

use shoal_common::config::{DqnConfig, RunConfig};
use shoal_common::exploration::actor_epsilon;

/// See the module docs.
#[derive(Debug)]
pub struct Exploration {
    dqn: DqnConfig,
    total_steps: u64,
    env_steps: AtomicU64,
}

impl Exploration {
    /// The schedule of `config`, `env_steps` into the run.
    pub fn new(config: &RunConfig, env_steps: u64) -> Self {
        Self {
            dqn: config.dqn.clone(),
            total_steps: config.total_steps,
            env_steps: AtomicU64::new(env_steps),
        }
    }

    /// The run has taken `env_steps` environment steps (the linear schedule moves with them).
    pub fn advance(&self, env_steps: u64) {
        self.env_steps.store(env_steps, Ordering::Relaxed);
    }

    fn at(&self, index: usize) -> f64 {
        let steps = self.env_steps.load(Ordering::Relaxed);
        actor_epsilon(&self.dqn, self.total_steps, index, steps)
    }

    /// Actor `actor_id`'s ε now. Actor ids count from 1; the Ape-X schedule's index cycles
    /// over `dqn.num_actors`.
    pub fn epsilon(&self, actor_id: u32) -> f64 {
        self.at(actor_id.saturating_sub(1) as usize)
    }

    /// The schedule's range of ε over actors: Ape-X's is fixed, the linear one moves with the
    /// steps.
    pub fn range(&self) -> (f64, f64) {
        (0..self.dqn.num_actors)
            .map(|i| self.at(i))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), e| {
                (lo.min(e), hi.max(e))
            })
    }
}
