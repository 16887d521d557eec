//! `MountainCar-v0` and `MountainCarContinuous-v0`, ported from Gymnasium.
//!
//! The discrete task computes in `f64` throughout, like Gymnasium. The continuous one stores its
//! state as `float32` after every step and mixes NumPy `float32` scalars with Python floats, so
//! its arithmetic switches between `f32` and `f64` from step to step; [`Num`] follows NumPy 2's
//! promotion rules (NEP 50) so that the results match Gymnasium to the bit.

use super::{Action, Env, EnvError, Space, Step, state_array};
use crate::rng::Rng;

const MIN_POSITION: f64 = -1.2;
const MAX_POSITION: f64 = 0.6;
const MAX_SPEED: f64 = 0.07;

/// Observation bounds, as Gymnasium's `float32` arrays.
fn observation_space() -> Space {
    Space::Box {
        low: vec![MIN_POSITION as f32 as f64, -MAX_SPEED as f32 as f64],
        high: vec![MAX_POSITION as f32 as f64, MAX_SPEED as f32 as f64],
    }
}

/// Drive an under-powered car up a hill: `[position, velocity]`, actions push left, do nothing
/// or push right, reward −1 per step until the flag at 0.5.
#[derive(Debug, Clone, Default)]
pub struct MountainCar {
    state: [f64; 2],
}

impl Env for MountainCar {
    fn observation_space(&self) -> Space {
        observation_space()
    }

    fn action_space(&self) -> Space {
        Space::Discrete(3)
    }

    fn reset(&mut self, rng: &mut Rng, obs: &mut [f32]) {
        self.state = [rng.uniform(-0.6, -0.4), 0.0];
        write_obs(self.state, obs);
    }

    fn reset_to(&mut self, state: &[f64], obs: &mut [f32]) -> Result<(), EnvError> {
        self.state = state_array(state)?;
        write_obs(self.state, obs);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Step {
        let a = match action {
            Action::Discrete(a) => a.min(2) as f64,
            Action::Continuous(a) => a.first().map_or(1.0, |&v| v.round().clamp(0.0, 2.0) as f64),
        };
        let [mut position, mut velocity] = self.state;
        velocity += (a - 1.0) * 0.001 + (3.0 * position).cos() * (-0.0025);
        velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED);
        position += velocity;
        position = position.clamp(MIN_POSITION, MAX_POSITION);
        if position == MIN_POSITION && velocity < 0.0 {
            velocity = 0.0;
        }
        let terminated = position >= 0.5 && velocity >= 0.0;
        self.state = [position, velocity];
        write_obs(self.state, obs);
        Step {
            reward: -1.0,
            terminated,
            truncated: false,
        }
    }
}

fn write_obs(state: [f64; 2], obs: &mut [f32]) {
    obs[0] = state[0] as f32;
    obs[1] = state[1] as f32;
}

/// A NumPy scalar as Gymnasium's code holds it: `np.float32`, `np.float64` or a Python float.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    F32(f32),
    F64(f64),
    Py(f64),
}

impl Num {
    fn value(self) -> f64 {
        match self {
            Num::F32(v) => v as f64,
            Num::F64(v) | Num::Py(v) => v,
        }
    }

    /// NEP 50: a Python float adopts the other operand's type; `float32` with `float64` is
    /// `float64`.
    fn binary(self, other: Num, f32_op: fn(f32, f32) -> f32, f64_op: fn(f64, f64) -> f64) -> Num {
        use Num::*;
        match (self, other) {
            (F32(a), F32(b)) => F32(f32_op(a, b)),
            (F32(a), Py(b)) => F32(f32_op(a, b as f32)),
            (Py(a), F32(b)) => F32(f32_op(a as f32, b)),
            (Py(a), Py(b)) => Py(f64_op(a, b)),
            (a, b) => F64(f64_op(a.value(), b.value())),
        }
    }

    fn add(self, o: Num) -> Num {
        self.binary(o, |a, b| a + b, |a, b| a + b)
    }

    fn sub(self, o: Num) -> Num {
        self.binary(o, |a, b| a - b, |a, b| a - b)
    }

    fn mul(self, o: Num) -> Num {
        self.binary(o, |a, b| a * b, |a, b| a * b)
    }

    /// `self > o` with a Python float cast to `float32` against a `float32`.
    fn gt(self, o: Num) -> bool {
        match (self, o) {
            (Num::F32(a), Num::Py(b)) => a > b as f32,
            (Num::Py(a), Num::F32(b)) => a as f32 > b,
            (a, b) => a.value() > b.value(),
        }
    }

    fn eq(self, o: Num) -> bool {
        match (self, o) {
            (Num::F32(a), Num::Py(b)) => a == b as f32,
            (Num::Py(a), Num::F32(b)) => a as f32 == b,
            (a, b) => a.value() == b.value(),
        }
    }
}

/// Python's `min(max(x, lo), hi)`: returns whichever object wins, keeping its type.
fn py_clip(x: Num, lo: Num, hi: Num) -> Num {
    let x = if lo.gt(x) { lo } else { x };
    if x.gt(hi) { hi } else { x }
}

/// The continuous version: a force in `[-1, 1]`, reward 100 at the flag minus 0.1·force².
#[derive(Debug, Clone)]
pub struct MountainCarContinuous {
    state: [Num; 2],
}

impl Default for MountainCarContinuous {
    fn default() -> Self {
        Self {
            state: [Num::F64(0.0), Num::F64(0.0)],
        }
    }
}

impl MountainCarContinuous {
    fn write_obs(&self, obs: &mut [f32]) {
        obs[0] = self.state[0].value() as f32;
        obs[1] = self.state[1].value() as f32;
    }
}

impl Env for MountainCarContinuous {
    fn observation_space(&self) -> Space {
        observation_space()
    }

    fn action_space(&self) -> Space {
        Space::Box {
            low: vec![-1.0],
            high: vec![1.0],
        }
    }

    fn reset(&mut self, rng: &mut Rng, obs: &mut [f32]) {
        // Gymnasium keeps the reset state as float64 until the first step.
        self.state = [Num::F64(rng.uniform(-0.6, -0.4)), Num::F64(0.0)];
        self.write_obs(obs);
    }

    fn reset_to(&mut self, state: &[f64], obs: &mut [f32]) -> Result<(), EnvError> {
        self.state = state_array(state)?.map(Num::F64);
        self.write_obs(obs);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Step {
        let a = match action {
            Action::Continuous(a) => a.first().copied().unwrap_or(0.0),
            Action::Discrete(a) => a as f32,
        };
        let [position, velocity] = self.state;
        let force = py_clip(Num::F32(a), Num::Py(-1.0), Num::Py(1.0));
        // velocity += force * power - 0.0025 * math.cos(3 * position)
        let cos = Num::Py(Num::Py(3.0).mul(position).value().cos());
        let delta = force.mul(Num::Py(0.0015)).sub(Num::Py(0.0025).mul(cos));
        let mut velocity = velocity.add(delta);
        if velocity.gt(Num::Py(MAX_SPEED)) {
            velocity = Num::Py(MAX_SPEED);
        }
        if Num::Py(-MAX_SPEED).gt(velocity) {
            velocity = Num::Py(-MAX_SPEED);
        }
        let mut position = position.add(velocity);
        if position.gt(Num::Py(MAX_POSITION)) {
            position = Num::Py(MAX_POSITION);
        }
        if Num::Py(MIN_POSITION).gt(position) {
            position = Num::Py(MIN_POSITION);
        }
        if position.eq(Num::Py(MIN_POSITION)) && Num::Py(0.0).gt(velocity) {
            velocity = Num::Py(0.0);
        }
        let terminated = !Num::Py(0.45).gt(position) && !Num::Py(0.0).gt(velocity);
        let mut reward = if terminated { 100.0 } else { 0.0 };
        reward -= (a as f64).powi(2) * 0.1;
        // np.array([position, velocity], dtype=np.float32)
        self.state = [
            Num::F32(position.value() as f32),
            Num::F32(velocity.value() as f32),
        ];
        self.write_obs(obs);
        Step {
            reward,
            terminated,
            truncated: false,
        }
    }
}
