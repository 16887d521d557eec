//! Benchmark: what serving an environment costs per step, side by side in one run. CartPole-v1
//! with seeded random actions, stepped through `VecEnv` (what actors do):
//! - shoal's built-in CartPole, in process;
//! - shoal's CartPole served by `shoal env-server` over dm_env_rpc (loopback);
//! - Gymnasium's CartPole served by the Gymnasium bridge (`bridge/gymnasium_server.py`);
//! - Gymnasium's CartPole called directly in Python (`env.step` in a loop, the same process).
//!
//! With 1 copy a step is one round trip; with 8 copies the requests of a step go out together.
//! Prints a table and one JSON line; the bridge's overhead per step is its time minus
//! Gymnasium's own.
//!
//! `cargo bench -p shoal-tests --bench env_rpc` (needs the tests' venv: scripts/install-deps)

use std::time::Instant;

use shoal_common::env::{EnvSpec, VecStep};
use shoal_common::rng::Rng;
use shoal_common::sources;
use shoal_tests::{EnvServer, venv_python};

/// Steps of one copy timed per measurement.
const STEPS: usize = 20_000;

/// Microseconds per environment step (all copies) of `env` with `copies` copies.
fn per_step_us(env: &EnvSpec, copies: usize) -> f64 {
    let mut venv = sources::open(env, copies, 1).expect("open the environment");
    let mut rng = Rng::new(2);
    let mut out = VecStep::default();
    let rounds = STEPS / copies;
    let actions: Vec<Vec<usize>> = (0..rounds)
        .map(|_| (0..copies).map(|_| rng.below(2)).collect())
        .collect();
    // Warm up the connection and the server.
    for a in actions.iter().take(100) {
        venv.step_discrete(a, &mut out).unwrap();
    }
    let start = Instant::now();
    for a in &actions {
        venv.step_discrete(a, &mut out).unwrap();
    }
    start.elapsed().as_secs_f64() * 1e6 / (rounds * copies) as f64
}

/// Gymnasium's CartPole stepped directly in Python: microseconds per step.
fn gymnasium_direct_us() -> f64 {
    let script = format!(
        r#"
import time, gymnasium as gym, numpy as np
env = gym.make("CartPole-v1")
env.reset(seed=1)
actions = np.random.default_rng(2).integers(0, 2, {STEPS})
for a in actions[:100]:
    _, _, term, trunc, _ = env.step(int(a))
    if term or trunc: env.reset()
t = time.perf_counter()
for a in actions:
    _, _, term, trunc, _ = env.step(int(a))
    if term or trunc: env.reset()
print((time.perf_counter() - t) * 1e6 / {STEPS})
"#
    );
    let out = std::process::Command::new(venv_python().expect("the tests' venv"))
        .args(["-c", &script])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .expect("microseconds")
}

fn main() {
    let server = EnvServer::start();
    let bridge = EnvServer::gymnasium_bridge().expect("the tests' venv: scripts/install-deps");
    let native = EnvSpec::new("CartPole-v1");
    let served = EnvSpec::new(server.url("CartPole-v1"));
    let bridged = EnvSpec::new(bridge.url("CartPole-v1"));
    let gym_direct = gymnasium_direct_us();
    let rows = [
        (
            "shoal CartPole, in process",
            per_step_us(&native, 1),
            per_step_us(&native, 8),
        ),
        (
            "shoal CartPole via shoal env-server",
            per_step_us(&served, 1),
            per_step_us(&served, 8),
        ),
        (
            "Gymnasium CartPole via the bridge",
            per_step_us(&bridged, 1),
            per_step_us(&bridged, 8),
        ),
    ];
    println!("CartPole-v1, {STEPS} steps per measurement (µs per environment step; steps/s)");
    println!("{:<40} {:>18} {:>18}", "", "1 copy", "8 copies");
    for (name, one, eight) in &rows {
        println!(
            "{name:<40} {:>9.2} µs {:>6.0}k/s {:>9.2} µs {:>6.0}k/s",
            one,
            1e3 / one,
            eight,
            1e3 / eight
        );
    }
    println!(
        "{:<40} {:>9.2} µs {:>6.0}k/s",
        "Gymnasium CartPole in Python, direct",
        gym_direct,
        1e3 / gym_direct
    );
    let bridge_overhead = rows[2].1 - gym_direct;
    println!("bridge overhead per step (1 copy): {bridge_overhead:.1} µs");
    println!(
        "{}",
        serde_json::json!({
            "native_us": [rows[0].1, rows[0].2],
            "env_server_us": [rows[1].1, rows[1].2],
            "bridge_us": [rows[2].1, rows[2].2],
            "gymnasium_direct_us": gym_direct,
            "bridge_overhead_us": bridge_overhead,
        })
    );
}
