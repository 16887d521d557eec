//! The tabular gridworlds of shoal's design notes, and value iteration for their optimal values.
//!
//! States are numbered 1..=rows·cols row-major. Actions: 0 up, 1 down, 2 left, 3 right; moving
//! into a wall leaves the agent in place. Entering the trap gives −1 and entering the goal +1,
//! both ending the episode; every other transition gives 0. Observations are one-hot vectors of
//! the state.

use super::{Action, Env, EnvError, Space, Step, state_array};
use crate::rng::Rng;

/// A gridworld's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridSpec {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Start state (1-based).
    pub start: usize,
    /// Trap state: −1 and the episode ends.
    pub trap: usize,
    /// Goal state: +1 and the episode ends.
    pub goal: usize,
}

/// `GridWorld-3x3`: start 1, trap 6, goal 8.
pub const GRID_3X3: GridSpec = GridSpec {
    rows: 3,
    cols: 3,
    start: 1,
    trap: 6,
    goal: 8,
};

/// `GridWorld-4x4`: start 1, trap 15, goal 16.
pub const GRID_4X4: GridSpec = GridSpec {
    rows: 4,
    cols: 4,
    start: 1,
    trap: 15,
    goal: 16,
};

/// Number of actions (up, down, left, right).
pub const NUM_ACTIONS: usize = 4;

impl GridSpec {
    /// Number of states.
    pub fn num_states(&self) -> usize {
        self.rows * self.cols
    }

    /// True for the trap and the goal.
    pub fn is_terminal(&self, state: usize) -> bool {
        state == self.trap || state == self.goal
    }

    /// The deterministic transition: next state, reward, episode ended.
    pub fn transition(&self, state: usize, action: usize) -> (usize, f64, bool) {
        let (r, c) = ((state - 1) / self.cols, (state - 1) % self.cols);
        let (r, c) = match action {
            0 => (r.saturating_sub(1), c),
            1 => ((r + 1).min(self.rows - 1), c),
            2 => (r, c.saturating_sub(1)),
            _ => (r, (c + 1).min(self.cols - 1)),
        };
        let next = r * self.cols + c + 1;
        if next == self.trap {
            (next, -1.0, true)
        } else if next == self.goal {
            (next, 1.0, true)
        } else {
            (next, 0.0, false)
        }
    }
}

/// Optimal values of a gridworld: `v[s − 1]` = V*(s) and `q[s − 1][a]` = Q*(s, a); terminal
/// states have value 0.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimalValues {
    /// V*.
    pub v: Vec<f64>,
    /// Q*.
    pub q: Vec<[f64; NUM_ACTIONS]>,
}

impl OptimalValues {
    /// The greedy optimal action in `state` (lowest index among ties).
    pub fn greedy(&self, state: usize) -> usize {
        let q = &self.q[state - 1];
        (0..NUM_ACTIONS).fold(0, |best, a| if q[a] > q[best] { a } else { best })
    }
}

/// Value iteration to a sup-norm change below `tol`:
/// Q(s, a) = r(s, a) + γ V(s') (1 − done), V(s) = max_a Q(s, a).
pub fn value_iteration(spec: &GridSpec, gamma: f64, tol: f64) -> OptimalValues {
    let n = spec.num_states();
    let mut v = vec![0.0; n];
    let mut q = vec![[0.0; NUM_ACTIONS]; n];
    loop {
        let mut delta: f64 = 0.0;
        for s in 1..=n {
            if spec.is_terminal(s) {
                continue;
            }
            for (a, q_sa) in q[s - 1].iter_mut().enumerate() {
                let (next, reward, done) = spec.transition(s, a);
                *q_sa = reward + if done { 0.0 } else { gamma * v[next - 1] };
            }
            let best = q[s - 1].iter().copied().fold(f64::NEG_INFINITY, f64::max);
            delta = delta.max((best - v[s - 1]).abs());
            v[s - 1] = best;
        }
        if delta < tol {
            return OptimalValues { v, q };
        }
    }
}

/// The gridworld as an environment.
#[derive(Debug, Clone)]
pub struct GridWorld {
    spec: GridSpec,
    state: usize,
}

impl GridWorld {
    /// A gridworld with layout `spec`, at its start.
    pub fn new(spec: GridSpec) -> Self {
        Self {
            spec,
            state: spec.start,
        }
    }

    fn write_obs(&self, obs: &mut [f32]) {
        obs.fill(0.0);
        obs[self.state - 1] = 1.0;
    }
}

impl Env for GridWorld {
    fn observation_space(&self) -> Space {
        let n = self.spec.num_states();
        Space::Box {
            low: vec![0.0; n],
            high: vec![1.0; n],
        }
    }

    fn action_space(&self) -> Space {
        Space::Discrete(NUM_ACTIONS)
    }

    fn reset(&mut self, _rng: &mut Rng, obs: &mut [f32]) {
        self.state = self.spec.start;
        self.write_obs(obs);
    }

    fn reset_to(&mut self, state: &[f64], obs: &mut [f32]) -> Result<(), EnvError> {
        let [value] = state_array(state)?;
        let s = value as usize;
        if value.fract() != 0.0 || s < 1 || s > self.spec.num_states() {
            return Err(EnvError::State {
                got: s,
                want: self.spec.num_states(),
            });
        }
        self.state = s;
        self.write_obs(obs);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Step {
        let a = match action {
            Action::Discrete(a) => a,
            Action::Continuous(a) => a.first().map_or(0, |&v| v.max(0.0) as usize),
        };
        let (next, reward, terminated) = self.spec.transition(self.state, a);
        self.state = next;
        self.write_obs(obs);
        Step {
            reward,
            terminated,
            truncated: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walls_trap_and_goal() {
        let g = GRID_3X3;
        assert_eq!(g.transition(1, 0), (1, 0.0, false)); // up into the wall
        assert_eq!(g.transition(1, 2), (1, 0.0, false)); // left into the wall
        assert_eq!(g.transition(1, 3), (2, 0.0, false));
        assert_eq!(g.transition(3, 1), (6, -1.0, true)); // into the trap
        assert_eq!(g.transition(7, 3), (8, 1.0, true)); // into the goal
        assert_eq!(g.transition(9, 3), (9, 0.0, false));
    }

    #[test]
    fn value_iteration_reproduces_the_known_optimal_values() {
        let opt = value_iteration(&GRID_3X3, 0.9, 1e-12);
        let v = |s: usize| opt.v[s - 1];
        // Next to the goal: one step to +1.
        for s in [5, 7, 9] {
            assert!((v(s) - 1.0).abs() < 1e-12, "V*({s}) = {}", v(s));
        }
        assert!((v(4) - 0.9).abs() < 1e-12);
        assert!((v(2) - 0.9).abs() < 1e-12);
        assert!((v(1) - 0.81).abs() < 1e-12);
        assert!((v(3) - 0.81).abs() < 1e-12); // 3 → 2 → 5 → 8
        assert_eq!((v(6), v(8)), (0.0, 0.0));
        // Q* of stepping into the trap from 3 is −1; the greedy action from 5 goes down.
        assert_eq!(opt.q[2][1], -1.0);
        assert_eq!(opt.greedy(5), 1);

        let opt4 = value_iteration(&GRID_4X4, 0.9, 1e-12);
        assert!((opt4.v[12 - 1] - 1.0).abs() < 1e-12);
        // From the start: 6 steps to the goal avoiding the trap at 15 → 0.9^5.
        assert!((opt4.v[0] - 0.9f64.powi(5)).abs() < 1e-12, "{}", opt4.v[0]);
    }

    #[test]
    fn env_follows_the_spec_with_one_hot_observations() {
        let mut env = GridWorld::new(GRID_3X3);
        let mut obs = [0f32; 9];
        env.reset(&mut Rng::new(0), &mut obs);
        assert_eq!(obs, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        for a in [1, 1] {
            assert!(!env.step(Action::Discrete(a), &mut obs).terminated);
        }
        let step = env.step(Action::Discrete(3), &mut obs);
        assert_eq!((step.reward, step.terminated), (1.0, true));
        assert_eq!(obs[7], 1.0);
        assert!(env.reset_to(&[10.0], &mut obs).is_err());
    }
}
