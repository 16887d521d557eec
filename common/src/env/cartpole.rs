//! `CartPole-v1`, a line-for-line port of Gymnasium's `CartPoleEnv` (Euler integrator).

use super::{Action, Env, EnvError, Space, Step, state_array};
use crate::rng::Rng;

const GRAVITY: f64 = 9.8;
const MASS_CART: f64 = 1.0;
const MASS_POLE: f64 = 0.1;
const TOTAL_MASS: f64 = MASS_POLE + MASS_CART;
const LENGTH: f64 = 0.5; // half the pole's length
const POLE_MASS_LENGTH: f64 = MASS_POLE * LENGTH;
const FORCE_MAG: f64 = 10.0;
const TAU: f64 = 0.02;
const THETA_THRESHOLD_RADIANS: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
const X_THRESHOLD: f64 = 2.4;

/// The cart-pole balancing task: `[x, x_dot, theta, theta_dot]`, actions push left (0) or
/// right (1), reward 1 per step including the terminating one.
#[derive(Debug, Clone, Default)]
pub struct CartPole {
    state: [f64; 4],
}

impl CartPole {
    /// The internal state `[x, x_dot, theta, theta_dot]`.
    pub fn state(&self) -> [f64; 4] {
        self.state
    }

    /// Sets the internal state (for reference trajectories).
    pub fn set_state(&mut self, state: [f64; 4]) {
        self.state = state;
    }

    fn write_obs(&self, obs: &mut [f32]) {
        for (o, s) in obs.iter_mut().zip(self.state) {
            *o = s as f32;
        }
    }
}

impl Env for CartPole {
    fn observation_space(&self) -> Space {
        let high = vec![
            X_THRESHOLD * 2.0,
            f32::MAX as f64,
            THETA_THRESHOLD_RADIANS * 2.0,
            f32::MAX as f64,
        ];
        Space::symmetric(high)
    }

    fn action_space(&self) -> Space {
        Space::Discrete(2)
    }

    fn reset(&mut self, rng: &mut Rng, obs: &mut [f32]) {
        for s in &mut self.state {
            *s = rng.uniform(-0.05, 0.05);
        }
        self.write_obs(obs);
    }

    fn reset_to(&mut self, state: &[f64], obs: &mut [f32]) -> Result<(), EnvError> {
        self.state = state_array(state)?;
        self.write_obs(obs);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Step {
        let push_right = match action {
            Action::Discrete(a) => a == 1,
            Action::Continuous(a) => a.first().is_some_and(|&v| v >= 0.5),
        };
        let [x, x_dot, theta, theta_dot] = self.state;
        let force = if push_right { FORCE_MAG } else { -FORCE_MAG };
        let costheta = theta.cos();
        let sintheta = theta.sin();
        let temp = (force + POLE_MASS_LENGTH * theta_dot * theta_dot * sintheta) / TOTAL_MASS;
        let thetaacc = (GRAVITY * sintheta - costheta * temp)
            / (LENGTH * (4.0 / 3.0 - MASS_POLE * costheta * costheta / TOTAL_MASS));
        let xacc = temp - POLE_MASS_LENGTH * thetaacc * costheta / TOTAL_MASS;
        self.state = [
            x + TAU * x_dot,
            x_dot + TAU * xacc,
            theta + TAU * theta_dot,
            theta_dot + TAU * thetaacc,
        ];
        let [x, _, theta, _] = self.state;
        let terminated = !(-X_THRESHOLD..=X_THRESHOLD).contains(&x)
            || !(-THETA_THRESHOLD_RADIANS..=THETA_THRESHOLD_RADIANS).contains(&theta);
        self.write_obs(obs);
        Step {
            reward: 1.0,
            terminated,
            truncated: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One step from a fixed state, computed by hand from Gymnasium's equations.
    #[test]
    fn one_step_matches_the_equations() {
        let mut env = CartPole::default();
        env.set_state([0.01, -0.02, 0.03, 0.04]);
        let mut obs = [0f32; 4];
        let step = env.step(Action::Discrete(1), &mut obs);
        let (s, c) = (0.03f64.sin(), 0.03f64.cos());
        let temp = (10.0 + 0.05 * 0.04 * 0.04 * s) / 1.1;
        let thetaacc = (9.8 * s - c * temp) / (0.5 * (4.0 / 3.0 - 0.1 * c * c / 1.1));
        let xacc = temp - 0.05 * thetaacc * c / 1.1;
        let want = [
            0.01 + 0.02 * -0.02,
            -0.02 + 0.02 * xacc,
            0.03 + 0.02 * 0.04,
            0.04 + 0.02 * thetaacc,
        ];
        for (got, want) in env.state().iter().zip(want) {
            assert!((got - want).abs() < 1e-15);
        }
        assert_eq!(step.reward, 1.0);
        assert!(!step.terminated && !step.truncated);
        assert_eq!(obs[3], want[3] as f32);
    }

    #[test]
    fn leaving_the_track_terminates() {
        let mut env = CartPole::default();
        env.set_state([2.399, 1.0, 0.0, 0.0]);
        let step = env.step(Action::Discrete(1), &mut [0.0; 4]);
        assert!(step.terminated);
        env.set_state([0.0, 0.0, 0.2094, 1.0]);
        assert!(env.step(Action::Discrete(0), &mut [0.0; 4]).terminated);
    }
}
