//! Benchmark: single-thread environment steps per second for every registered environment
//! (random actions drawn beforehand, reset at episode end, time limits included). Prints one
//! JSON object per environment; `scripts/bench-envs-vs-gymnasium` puts Gymnasium beside it.
//!
//! `cargo bench -p shoal-tests --bench env_steps`

use std::time::Instant;

use shoal_common::env::{self, Action, Space};
use shoal_common::rng::Rng;

const STEPS: usize = 200_000;

fn main() {
    for info in env::registry() {
        let mut e = env::make(info.id).unwrap();
        let mut rng = Rng::new(0);
        let mut obs = vec![0f32; e.observation_space().flat_dim()];
        let space = e.action_space();
        let actions: Vec<f32> = (0..STEPS)
            .map(|_| match &space {
                Space::Discrete(n) => rng.below(*n) as f32,
                Space::Box { low, high } => rng.uniform(low[0], high[0]) as f32,
                Space::Image { .. } | Space::Tokens { .. } => {
                    unreachable!("no environment acts with images or tokens")
                }
            })
            .collect();
        e.reset(&mut rng, &mut obs);
        let start = Instant::now();
        let mut checksum = 0.0f64;
        for a in &actions {
            let step = match space {
                Space::Discrete(_) => e.step(Action::Discrete(*a as usize), &mut obs),
                Space::Box { .. } => e.step(Action::Continuous(std::slice::from_ref(a)), &mut obs),
                Space::Image { .. } | Space::Tokens { .. } => {
                    unreachable!("no environment acts with images or tokens")
                }
            };
            checksum += step.reward;
            if step.terminated || step.truncated {
                e.reset(&mut rng, &mut obs);
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{{\"env_id\": \"{}\", \"steps_per_sec\": {:.0}, \"checksum\": {checksum}}}",
            info.id,
            STEPS as f64 / secs
        );
    }
}
