//! How DQN actors explore (Ape-X, Horgan et al. 2018, or one linear schedule): each actor's ε,
//! as the learner computes it for registrations, acks and the status line.

use crate::config::{DqnConfig, EpsilonSchedule};

/// Actor `i` of `n`'s ε: `ε^(1 + α·i/(n − 1))` (one actor: `ε`).
pub fn apex_epsilon(i: usize, n: usize, epsilon: f64, alpha: f64) -> f64 {
    if n <= 1 {
        return epsilon;
    }
    epsilon.powf(1.0 + alpha * i as f64 / (n - 1) as f64)
}

/// Linear decay from `start` to `end` over the first `horizon` steps, then `end` (Stable-
/// Baselines3's exploration schedule with `horizon = exploration_fraction · total_steps`).
pub fn linear_epsilon(start: f64, end: f64, horizon: f64, step: u64) -> f64 {
    let progress = step as f64 / horizon;
    // A horizon of 0 (progress NaN or infinite) means no decay at all.
    if progress.is_nan() || progress >= 1.0 {
        return end;
    }
    start + (end - start) * progress
}

/// The ε of the actor with schedule index `i` (actor id − 1, cycling over `num_actors`) once the
/// run has taken `env_steps` environment steps.
pub fn actor_epsilon(d: &DqnConfig, total_steps: u64, i: usize, env_steps: u64) -> f64 {
    match d.epsilon_schedule {
        EpsilonSchedule::Apex => {
            apex_epsilon(i % d.num_actors, d.num_actors, d.epsilon, d.epsilon_alpha)
        }
        EpsilonSchedule::Linear => linear_epsilon(
            d.epsilon_start,
            d.epsilon_final,
            d.exploration_fraction * total_steps as f64,
            env_steps,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apex_schedule() {
        assert_eq!(apex_epsilon(0, 1, 0.4, 7.0), 0.4);
        assert!((apex_epsilon(0, 8, 0.4, 7.0) - 0.4).abs() < 1e-12);
        assert!((apex_epsilon(7, 8, 0.4, 7.0) - 0.4f64.powi(8)).abs() < 1e-12);
        assert!(apex_epsilon(3, 8, 0.4, 7.0) < apex_epsilon(2, 8, 0.4, 7.0));
    }

    #[test]
    fn linear_schedule_decays_then_holds() {
        assert_eq!(linear_epsilon(1.0, 0.04, 8000.0, 0), 1.0);
        assert!((linear_epsilon(1.0, 0.04, 8000.0, 4000) - 0.52).abs() < 1e-12);
        assert_eq!(linear_epsilon(1.0, 0.04, 8000.0, 8000), 0.04);
        assert_eq!(linear_epsilon(1.0, 0.04, 8000.0, 80_000), 0.04);
        let mut d = DqnConfig {
            epsilon_schedule: EpsilonSchedule::Linear,
            epsilon_start: 1.0,
            epsilon_final: 0.1,
            exploration_fraction: 0.5,
            ..Default::default()
        };
        // Every actor gets the same ε, half-way down at a quarter of the run.
        assert!((actor_epsilon(&d, 1000, 0, 250) - 0.55).abs() < 1e-12);
        assert_eq!(
            actor_epsilon(&d, 1000, 0, 250),
            actor_epsilon(&d, 1000, 5, 250)
        );
        d.epsilon_schedule = EpsilonSchedule::Apex;
        assert_eq!(actor_epsilon(&d, 1000, 0, 0), 0.4);
        assert_eq!(actor_epsilon(&d, 1000, 3, 0), actor_epsilon(&d, 1000, 1, 0));
    }
}
