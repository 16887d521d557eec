//! `MinBreakout-v0`: a minimal Breakout on a 10×10 board, shoal's own rules.
//!
//! Rules (row 0 is the top, row 9 the bottom; a step moves the paddle, then the ball):
//! - **Bricks** fill rows 1, 2 and 3 (30 bricks). When the last one breaks, all three rows are
//!   refilled at once, except the cell the ball is in.
//! - **Paddle**: two cells wide, in the bottom row; it starts in columns 4–5. Actions
//!   (`Discrete(3)`): 0 moves it one column left, 1 keeps it, 2 moves it one column right; it
//!   stays on the board (left cell in 0..=8).
//! - **Ball**: one cell, always moving diagonally, one row and one column per step
//!   (`dr`, `dc` ∈ {−1, +1}). On reset it is in row 4 (just below the bricks), in a column drawn
//!   uniformly from 0..10, moving down (`dr` = +1) and left or right with equal probability.
//! - **Walls**: before the ball moves, `dc` reverses if the move would leave the board at a side,
//!   and `dr` becomes +1 if it would leave through the top. (A corner reverses both.)
//! - **Bricks are hit only by the cell the ball would enter** (the diagonal one); bricks that
//!   merely share an edge with the ball's path are not touched, so the ball can slip diagonally
//!   between two bricks. A hit breaks that brick (reward +1), reverses `dr`, and the ball moves
//!   sideways to the cell beside the one it hit (same row, column `c + dc`), as a reflection off
//!   the brick's face. If that sideways cell is a brick as well, it is not broken: the ball
//!   stays where it was and `dc` reverses too (a corner). At most one brick breaks per step, so
//!   a step's reward is 0 or 1.
//! - **Paddle bounce**: when the ball would enter the bottom row in one of the paddle's two
//!   cells, it bounces: it moves sideways to the cell above the paddle cell it hit (row 8),
//!   `dr` becomes −1, and `dc` becomes −1 if it hit the paddle's left cell and +1 if it hit the
//!   right cell — so the agent chooses where the ball goes.
//! - **Miss**: when the ball would enter the bottom row anywhere else, it does, and the episode
//!   terminates (reward 0 for that step). There is no other termination; the registry's time
//!   limit (1000 steps) truncates long episodes.
//! - **Observation**: `Image { channels: 4, height: 10, width: 10 }`, channels in order 0
//!   paddle, 1 ball, 2 trail, 3 bricks; 255 where set, 0 elsewhere. The trail marks the cell the
//!   ball was in before the last step (the ball's own cell when it did not move), so one frame
//!   shows the ball's direction; right after a reset the trail is empty.
//! - [`Env::reset_to`] state: `[ball_row, ball_col, dr, dc, paddle_col]` with a full brick wall,
//!   or those five followed by 30 brick flags (0 or 1) for rows 1, 2, 3, row by row, left to
//!   right. `ball_row` is in 0..=8, `ball_col` in 0..=9, `dr` and `dc` are −1 or +1,
//!   `paddle_col` (the paddle's left cell) is in 0..=8; at least one brick must remain and the
//!   ball may not be inside one.

use super::paddle::{cell, move_paddle};
use super::{Action, Env, EnvError, Space, Step};
use crate::rng::Rng;

/// Rows and columns of the board.
pub const SIZE: usize = 10;
/// Number of channels: paddle, ball, trail, bricks.
pub const CHANNELS: usize = 4;
/// Rows holding bricks: `BRICK_TOP..BRICK_TOP + BRICK_ROWS`.
const BRICK_TOP: usize = 1;
const BRICK_ROWS: usize = 3;
const NUM_BRICKS: usize = BRICK_ROWS * SIZE;
const FULL_WALL: u32 = (1 << NUM_BRICKS) - 1;
const BALL_START_ROW: usize = 4;
const PADDLE_START: usize = 4;
/// Largest column of the paddle's left cell (it is two cells wide).
const PADDLE_MAX: usize = SIZE - 2;
const BOTTOM: usize = SIZE - 1;
const PLANE: usize = SIZE * SIZE;

/// Length of a [`Env::reset_to`] state with a full wall.
pub const STATE_LEN: usize = 5;
/// Length of a [`Env::reset_to`] state with its brick flags.
pub const STATE_LEN_WITH_BRICKS: usize = STATE_LEN + NUM_BRICKS;

/// The MinBreakout game (rules in the module documentation).
#[derive(Debug, Clone)]
pub struct MinBreakout {
    ball_row: usize,
    ball_col: usize,
    dr: isize,
    dc: isize,
    /// The paddle's left cell.
    paddle: usize,
    /// Bit `(row − 1) · 10 + col` is set where a brick stands.
    bricks: u32,
    /// The ball's cell before the last step (row · 10 + col), none right after a reset.
    trail: Option<usize>,
}

impl Default for MinBreakout {
    fn default() -> Self {
        Self {
            ball_row: BALL_START_ROW,
            ball_col: PADDLE_START,
            dr: 1,
            dc: 1,
            paddle: PADDLE_START,
            bricks: FULL_WALL,
            trail: None,
        }
    }
}

/// The brick bit of a cell, `None` outside the brick rows.
fn brick_bit(row: usize, col: usize) -> Option<u32> {
    (BRICK_TOP..BRICK_TOP + BRICK_ROWS)
        .contains(&row)
        .then(|| 1 << ((row - BRICK_TOP) * SIZE + col))
}

/// `value` as a direction, −1 or +1.
fn direction(value: f64, what: &str) -> Result<isize, EnvError> {
    match value {
        -1.0 => Ok(-1),
        1.0 => Ok(1),
        _ => Err(invalid(format!("{what} must be -1 or 1, got {value}"))),
    }
}

fn invalid(message: String) -> EnvError {
    EnvError::InvalidState(format!("MinBreakout: {message}"))
}

impl MinBreakout {
    /// The ball `[row, col, dr, dc]`.
    pub fn ball(&self) -> [isize; 4] {
        [
            self.ball_row as isize,
            self.ball_col as isize,
            self.dr,
            self.dc,
        ]
    }

    /// The column of the paddle's left cell.
    pub fn paddle(&self) -> usize {
        self.paddle
    }

    /// Number of bricks standing.
    pub fn bricks_left(&self) -> u32 {
        self.bricks.count_ones()
    }

    fn is_brick(&self, row: usize, col: usize) -> bool {
        brick_bit(row, col).is_some_and(|bit| self.bricks & bit != 0)
    }

    fn write_obs(&self, obs: &mut [f32]) {
        obs.fill(0.0);
        obs[BOTTOM * SIZE + self.paddle] = 255.0;
        obs[BOTTOM * SIZE + self.paddle + 1] = 255.0;
        obs[PLANE + self.ball_row * SIZE + self.ball_col] = 255.0;
        if let Some(cell) = self.trail {
            obs[2 * PLANE + cell] = 255.0;
        }
        let brick_plane = &mut obs[3 * PLANE + BRICK_TOP * SIZE..];
        let mut bricks = self.bricks;
        while bricks != 0 {
            brick_plane[bricks.trailing_zeros() as usize] = 255.0;
            bricks &= bricks - 1;
        }
    }

    /// Moves the ball one step; returns the reward and whether it fell past the paddle.
    fn move_ball(&mut self) -> (f64, bool) {
        let (row, col) = (self.ball_row, self.ball_col);
        if col.checked_add_signed(self.dc).is_none_or(|c| c >= SIZE) {
            self.dc = -self.dc;
        }
        if row == 0 && self.dr < 0 {
            self.dr = 1;
        }
        let next_row = row.wrapping_add_signed(self.dr);
        let next_col = col.wrapping_add_signed(self.dc);
        if let Some(bit) = brick_bit(next_row, next_col).filter(|bit| self.bricks & bit != 0) {
            self.bricks &= !bit;
            self.dr = -self.dr;
            if self.is_brick(row, next_col) {
                self.dc = -self.dc;
            } else {
                self.ball_col = next_col;
            }
            if self.bricks == 0 {
                self.bricks = FULL_WALL & !brick_bit(self.ball_row, self.ball_col).unwrap_or(0);
            }
            return (1.0, false);
        }
        if next_row == BOTTOM {
            if next_col == self.paddle || next_col == self.paddle + 1 {
                self.dr = -1;
                self.dc = if next_col == self.paddle { -1 } else { 1 };
                self.ball_col = next_col;
                return (0.0, false);
            }
            self.ball_row = next_row;
            self.ball_col = next_col;
            return (0.0, true);
        }
        self.ball_row = next_row;
        self.ball_col = next_col;
        (0.0, false)
    }
}

impl Env for MinBreakout {
    fn observation_space(&self) -> Space {
        Space::Image {
            channels: CHANNELS,
            height: SIZE,
            width: SIZE,
        }
    }

    fn action_space(&self) -> Space {
        Space::Discrete(3)
    }

    fn reset(&mut self, rng: &mut Rng, obs: &mut [f32]) {
        self.ball_row = BALL_START_ROW;
        self.ball_col = rng.below(SIZE);
        self.dr = 1;
        self.dc = if rng.below(2) == 0 { -1 } else { 1 };
        self.paddle = PADDLE_START;
        self.bricks = FULL_WALL;
        self.trail = None;
        self.write_obs(obs);
    }

    fn reset_to(&mut self, state: &[f64], obs: &mut [f32]) -> Result<(), EnvError> {
        if state.len() != STATE_LEN && state.len() != STATE_LEN_WITH_BRICKS {
            return Err(invalid(format!(
                "a state has {STATE_LEN} values [ball_row, ball_col, dr, dc, paddle_col], or \
                 {STATE_LEN_WITH_BRICKS} with 30 brick flags after them; got {}",
                state.len()
            )));
        }
        let ball_row = cell("MinBreakout", state[0], BOTTOM - 1, "ball_row")?;
        let ball_col = cell("MinBreakout", state[1], SIZE - 1, "ball_col")?;
        let dr = direction(state[2], "dr")?;
        let dc = direction(state[3], "dc")?;
        let paddle = cell("MinBreakout", state[4], PADDLE_MAX, "paddle_col")?;
        let mut bricks = FULL_WALL;
        if state.len() == STATE_LEN_WITH_BRICKS {
            bricks = 0;
            for (i, &flag) in state[STATE_LEN..].iter().enumerate() {
                if cell("MinBreakout", flag, 1, "a brick flag")? == 1 {
                    bricks |= 1 << i;
                }
            }
        }
        if bricks == 0 {
            return Err(invalid("at least one brick must stand".into()));
        }
        if brick_bit(ball_row, ball_col).is_some_and(|bit| bricks & bit != 0) {
            return Err(invalid(format!(
                "the ball ({ball_row}, {ball_col}) is inside a brick"
            )));
        }
        *self = Self {
            ball_row,
            ball_col,
            dr,
            dc,
            paddle,
            bricks,
            trail: None,
        };
        self.write_obs(obs);
        Ok(())
    }

    fn step(&mut self, action: Action<'_>, obs: &mut [f32]) -> Step {
        if self.ball_row == BOTTOM {
            // Stepping on after a miss changes nothing.
            self.write_obs(obs);
            return Step {
                reward: 0.0,
                terminated: true,
                truncated: false,
            };
        }
        self.paddle = move_paddle(self.paddle, action, PADDLE_MAX);
        self.trail = Some(self.ball_row * SIZE + self.ball_col);
        let (reward, terminated) = self.move_ball();
        self.write_obs(obs);
        Step {
            reward,
            terminated,
            truncated: false,
        }
    }
}

#[cfg(test)]
mod tests;
