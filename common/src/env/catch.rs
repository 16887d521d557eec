//! `Catch-v0`: catch a falling ball with a paddle, the smallest image environment.
//!
//! Rules:
//! - The board has 10 rows and 5 columns; row 0 is the top, row 9 the bottom.
//! - On reset the ball is in row 0, in a column drawn uniformly from 0..5, and the paddle is in
//!   the bottom row, in the middle column (2).
//! - Actions (`Discrete(3)`): 0 moves the paddle one column left, 1 keeps it, 2 moves it one
//!   column right; the paddle stays on the board (a move into an edge does nothing).
//! - Each step the paddle moves first, then the ball falls one row.
//! - When the ball reaches the bottom row the episode terminates with reward +1 if the paddle is
//!   in the ball's column and −1 otherwise; every other step gives 0. Every episode is exactly 9
//!   steps long.
//! - Observation: `Image { channels: 1, height: 10, width: 5 }`, 255 in the ball's cell and the
//!   paddle's cell, 0 elsewhere.
//! - [`Env::reset_to`] state: `[ball_row, ball_col, paddle_col]`, integers with `ball_row` in
//!   0..=8 (row 9 is terminal), `ball_col` and `paddle_col` in 0..=4.

use super::paddle::{cell, move_paddle};
use super::{Action, Env, EnvError, Space, Step, state_array};
use crate::rng::Rng;

/// Rows of the board.
pub const ROWS: usize = 10;
/// Columns of the board.
pub const COLS: usize = 5;
const PADDLE_START: usize = 2;

/// The Catch game (rules in the module documentation).
#[derive(Debug, Clone)]
pub struct Catch {
    ball_row: usize,
    ball_col: usize,
    paddle_col: usize,
}

impl Default for Catch {
    fn default() -> Self {
        Self {
            ball_row: 0,
            ball_col: COLS / 2,
            paddle_col: PADDLE_START,
        }
    }
}

impl Catch {
    /// The internal state `[ball_row, ball_col, paddle_col]`.
    pub fn state(&self) -> [usize; 3] {
        [self.ball_row, self.ball_col, self.paddle_col]
    }

    fn write_obs(&self, obs: &mut [f32]) {
        obs.fill(0.0);
        obs[self.ball_row * COLS + self.ball_col] = 255.0;
        obs[(ROWS - 1) * COLS + self.paddle_col] = 255.0;
    }
}

impl Env for Catch {
    fn observation_space(&self) -> Space {
        Space::Image {
            channels: 1,
            height: ROWS,
            width: COLS,
        }
    }

    fn action_space(&self) -> Space {
        Space::Discrete(3)
    }

    fn reset(&mut self, rng: &mut Rng, obs: &mut [f32]) {
        self.ball_row = 0;
        self.ball_col = rng.below(COLS);
        self.paddle_col = PADDLE_START;
        self.write_obs(obs);
    }

    fn reset_to(&mut self, state: &[f64], obs: &mut [f32]) -> Result<(), EnvError> {
        let [ball_row, ball_col, paddle_col] = state_array(state)?;
        self.ball_row = cell("Catch", ball_row, ROWS - 2, "ball_row")?;
        self.ball_col = cell("Catch", ball_col, COLS - 1, "ball_col")?;
        self.paddle_col = cell("Catch", paddle_col, COLS - 1, "paddle_col")?;
        self.write_obs(obs);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Step {
        self.paddle_col = move_paddle(self.paddle_col, action, COLS - 1);
        // Stepping on after the end keeps the ball in the bottom row.
        self.ball_row = (self.ball_row + 1).min(ROWS - 1);
        self.write_obs(obs);
        let terminated = self.ball_row == ROWS - 1;
        let reward = match (terminated, self.paddle_col == self.ball_col) {
            (false, _) => 0.0,
            (true, true) => 1.0,
            (true, false) => -1.0,
        };
        Step {
            reward,
            terminated,
            truncated: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::board_art::{self, Legend};
    use super::*;

    const SHAPE: [usize; 3] = [1, ROWS, COLS];
    /// `B` ball, `P` paddle: both are 255 in the one channel.
    const LEGEND: Legend<'static> = &[('#', &[0]), ('B', &[0]), ('P', &[0])];

    /// Plays `actions` from `state` and checks every frame, reward and end flag.
    fn play(state: [f64; 3], first: [&str; ROWS], steps: &[(usize, [&str; ROWS], f64, bool)]) {
        board_art::play(&mut Catch::default(), &state, first, steps, SHAPE, LEGEND);
    }

    #[test]
    #[rustfmt::skip]
    fn the_paddle_moves_then_the_ball_falls_and_a_catch_pays_one() {
        play(
            [6.0, 0.0, 2.0],
            [".....", ".....", ".....", ".....", ".....", ".....", "B....", ".....", ".....", "..P.."],
            &[
                (0, [".....", ".....", ".....", ".....", ".....", ".....", ".....", "B....", ".....", ".P..."], 0.0, false),
                (1, [".....", ".....", ".....", ".....", ".....", ".....", ".....", ".....", "B....", ".P..."], 0.0, false),
                // The ball lands on the paddle: one lit cell.
                (0, [".....", ".....", ".....", ".....", ".....", ".....", ".....", ".....", ".....", "B...."], 1.0, true),
            ],
        );
    }

    #[test]
    #[rustfmt::skip]
    fn a_miss_costs_one_and_the_paddle_stops_at_the_edge() {
        play(
            [7.0, 2.0, 4.0],
            [".....", ".....", ".....", ".....", ".....", ".....", ".....", "..B..", ".....", "....P"],
            &[
                (2, [".....", ".....", ".....", ".....", ".....", ".....", ".....", ".....", "..B..", "....P"], 0.0, false),
                (0, [".....", ".....", ".....", ".....", ".....", ".....", ".....", ".....", ".....", "..BP."], -1.0, true),
            ],
        );
    }

    #[test]
    fn every_episode_lasts_nine_steps_from_a_uniform_column() {
        let mut env = Catch::default();
        let mut rng = Rng::new(7);
        let mut obs = [0f32; ROWS * COLS];
        let mut columns = [0usize; COLS];
        for _ in 0..500 {
            env.reset(&mut rng, &mut obs);
            let [row, col, paddle] = env.state();
            assert_eq!((row, paddle), (0, PADDLE_START));
            assert_eq!(obs[col], 255.0);
            columns[col] += 1;
            for t in 1..=9 {
                let step = env.step(Action::Discrete(rng.below(3)), &mut obs);
                assert_eq!(step.terminated, t == 9, "step {t}");
            }
        }
        assert!(columns.iter().all(|&n| n > 60), "{columns:?}");
    }

    #[test]
    fn seeds_fix_the_starts() {
        let starts = |seed| {
            let mut env = Catch::default();
            let mut rng = Rng::new(seed);
            (0..20)
                .map(|_| {
                    env.reset(&mut rng, &mut [0.0; ROWS * COLS]);
                    env.state()[1]
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(starts(1), starts(1));
        assert_ne!(starts(1), starts(2));
    }

    #[test]
    fn reset_to_rejects_states_off_the_board() {
        let mut env = Catch::default();
        let mut obs = [0f32; ROWS * COLS];
        for bad in [
            [9.0, 0.0, 2.0],
            [0.0, 5.0, 2.0],
            [0.0, 1.5, 2.0],
            [-1.0, 0.0, 2.0],
        ] {
            assert!(
                matches!(env.reset_to(&bad, &mut obs), Err(EnvError::InvalidState(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            env.reset_to(&[0.0, 0.0], &mut obs),
            Err(EnvError::State { got: 2, want: 3 })
        ));
    }

    #[test]
    fn random_policy_mean_return() {
        let mut env = Catch::default();
        let mut rng = Rng::new(0);
        let mut obs = [0f32; ROWS * COLS];
        let episodes = 10_000;
        let mut total = 0.0;
        for _ in 0..episodes {
            env.reset(&mut rng, &mut obs);
            loop {
                let step = env.step(Action::Discrete(rng.below(3)), &mut obs);
                total += step.reward;
                if step.terminated {
                    break;
                }
            }
        }
        let mean = total / episodes as f64;
        println!("Catch-v0 random policy: mean return {mean:.3} over {episodes} episodes");
        // P(catch) ≈ 0.2 → mean ≈ −0.6.
        assert!((-0.7..-0.5).contains(&mean), "{mean}");
    }
}
