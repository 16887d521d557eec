//! `Pendulum-v1`, ported from Gymnasium: swing a pendulum up and keep it there.

use std::f64::consts::PI;

use super::{Action, Env, EnvError, Space, Step, state_array};
use crate::rng::Rng;

const MAX_SPEED: f64 = 8.0;
const MAX_TORQUE: f64 = 2.0;
const DT: f64 = 0.05;
const G: f64 = 10.0;

/// `[cos θ, sin θ, θ̇]`, a torque in `[-2, 2]`, reward `−(θ² + 0.1 θ̇² + 0.001 u²)` with θ
/// normalised to `[-π, π)`; never terminates (the time limit truncates at 200 steps).
#[derive(Debug, Clone, Default)]
pub struct Pendulum {
    state: [f64; 2],
}

/// `((x + π) mod 2π) − π` with NumPy's floor modulo.
fn angle_normalize(x: f64) -> f64 {
    (x + PI).rem_euclid(2.0 * PI) - PI
}

impl Pendulum {
    fn write_obs(&self, obs: &mut [f32]) {
        let [th, thdot] = self.state;
        obs[0] = th.cos() as f32;
        obs[1] = th.sin() as f32;
        obs[2] = thdot as f32;
    }
}

impl Env for Pendulum {
    fn observation_space(&self) -> Space {
        Space::symmetric(vec![1.0, 1.0, MAX_SPEED])
    }

    fn action_space(&self) -> Space {
        Space::symmetric(vec![MAX_TORQUE])
    }

    fn reset(&mut self, rng: &mut Rng, obs: &mut [f32]) {
        self.state = [rng.uniform(-PI, PI), rng.uniform(-1.0, 1.0)];
        self.write_obs(obs);
    }

    fn reset_to(&mut self, state: &[f64], obs: &mut [f32]) -> Result<(), EnvError> {
        self.state = state_array(state)?;
        self.write_obs(obs);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Step {
        let u = match action {
            Action::Continuous(a) => a.first().copied().unwrap_or(0.0),
            Action::Discrete(a) => a as f32,
        };
        // The action stays float32: u², 0.001·u² and 3·u are float32 products in Gymnasium.
        let u = u.clamp(-MAX_TORQUE as f32, MAX_TORQUE as f32);
        let [th, thdot] = self.state;
        let costs = angle_normalize(th).powi(2) + 0.1 * thdot.powi(2) + (0.001f32 * (u * u)) as f64;
        let mut newthdot = thdot + (3.0 * G / 2.0 * th.sin() + (3.0f32 * u) as f64) * DT;
        newthdot = newthdot.clamp(-MAX_SPEED, MAX_SPEED);
        let newth = th + newthdot * DT;
        self.state = [newth, newthdot];
        self.write_obs(obs);
        Step {
            reward: -costs,
            terminated: false,
            truncated: false,
        }
    }
}
