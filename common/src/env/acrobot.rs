//! `Acrobot-v1`, ported from Gymnasium ("book" dynamics, RK4 over one 0.2 s step).

use std::f64::consts::PI;

use super::{Action, Env, EnvError, Space, Step, state_array};
use crate::rng::Rng;

const DT: f64 = 0.2;
const MAX_VEL_1: f64 = 4.0 * PI;
const MAX_VEL_2: f64 = 9.0 * PI;
const TORQUES: [f64; 3] = [-1.0, 0.0, 1.0];

/// Swing the tip of a two-link chain above the bar: `[cos θ1, sin θ1, cos θ2, sin θ2, θ̇1, θ̇2]`,
/// torque −1, 0 or +1 on the joint, reward −1 per step until the tip is high enough.
#[derive(Debug, Clone, Default)]
pub struct Acrobot {
    state: [f64; 4],
}

fn dsdt(s: &[f64; 5]) -> [f64; 5] {
    let (m1, m2, l1, lc1, lc2, i1, i2, g) = (1.0, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0, 9.8);
    let a = s[4];
    let (theta1, theta2, dtheta1, dtheta2) = (s[0], s[1], s[2], s[3]);
    let d1 = m1 * lc1 * lc1 + m2 * (l1 * l1 + lc2 * lc2 + 2.0 * l1 * lc2 * theta2.cos()) + i1 + i2;
    let d2 = m2 * (lc2 * lc2 + l1 * lc2 * theta2.cos()) + i2;
    let phi2 = m2 * lc2 * g * (theta1 + theta2 - PI / 2.0).cos();
    let phi1 = -m2 * l1 * lc2 * dtheta2.powi(2) * theta2.sin()
        - 2.0 * m2 * l1 * lc2 * dtheta2 * dtheta1 * theta2.sin()
        + (m1 * lc1 + m2 * l1) * g * (theta1 - PI / 2.0).cos()
        + phi2;
    let ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1.powi(2) * theta2.sin() - phi2)
        / (m2 * lc2 * lc2 + i2 - d2 * d2 / d1);
    let ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    [dtheta1, dtheta2, ddtheta1, ddtheta2, 0.0]
}

/// Gymnasium's `rk4` for one interval `[0, dt]`.
fn rk4(y0: [f64; 5], dt: f64) -> [f64; 5] {
    let dt2 = dt / 2.0;
    let axpy = |y: &[f64; 5], h: f64, k: &[f64; 5]| std::array::from_fn(|i| y[i] + h * k[i]);
    let k1 = dsdt(&y0);
    let k2 = dsdt(&axpy(&y0, dt2, &k1));
    let k3 = dsdt(&axpy(&y0, dt2, &k2));
    let k4 = dsdt(&axpy(&y0, dt, &k3));
    std::array::from_fn(|i| y0[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]))
}

fn wrap(mut x: f64, m: f64, big_m: f64) -> f64 {
    let diff = big_m - m;
    while x > big_m {
        x -= diff;
    }
    while x < m {
        x += diff;
    }
    x
}

impl Acrobot {
    fn write_obs(&self, obs: &mut [f32]) {
        let s = self.state;
        let o = [s[0].cos(), s[0].sin(), s[1].cos(), s[1].sin(), s[2], s[3]];
        for (dst, v) in obs.iter_mut().zip(o) {
            *dst = v as f32;
        }
    }
}

impl Env for Acrobot {
    fn observation_space(&self) -> Space {
        let high = vec![
            1.0,
            1.0,
            1.0,
            1.0,
            MAX_VEL_1 as f32 as f64,
            MAX_VEL_2 as f32 as f64,
        ];
        Space::symmetric(high)
    }

    fn action_space(&self) -> Space {
        Space::Discrete(3)
    }

    fn reset(&mut self, rng: &mut Rng, obs: &mut [f32]) {
        // Gymnasium draws the state as float32.
        for s in &mut self.state {
            *s = rng.uniform(-0.1, 0.1) as f32 as f64;
        }
        self.write_obs(obs);
    }

    fn reset_to(&mut self, state: &[f64], obs: &mut [f32]) -> Result<(), EnvError> {
        self.state = state_array(state)?;
        self.write_obs(obs);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Step {
        let a = match action {
            Action::Discrete(a) => a.min(2),
            Action::Continuous(a) => a.first().map_or(1, |&v| v.round().clamp(0.0, 2.0) as usize),
        };
        let s = self.state;
        let ns = rk4([s[0], s[1], s[2], s[3], TORQUES[a]], DT);
        self.state = [
            wrap(ns[0], -PI, PI),
            wrap(ns[1], -PI, PI),
            ns[2].clamp(-MAX_VEL_1, MAX_VEL_1),
            ns[3].clamp(-MAX_VEL_2, MAX_VEL_2),
        ];
        let [t1, t2, _, _] = self.state;
        let terminated = -t1.cos() - (t2 + t1).cos() > 1.0;
        self.write_obs(obs);
        Step {
            reward: if terminated { 0.0 } else { -1.0 },
            terminated,
            truncated: false,
        }
    }
}
