//! What the paddle games (Catch, MinBreakout) share: the three paddle actions and reading the
//! integer cells of a `reset_to` state.

use super::{Action, EnvError};

/// The paddle's position after `action` of `Discrete(3)` (0 left, 1 stay, 2 right; larger
/// indices stay right, a continuous action is rounded), kept within `0..=max`.
pub(crate) fn move_paddle(position: usize, action: Action<'_>, max: usize) -> usize {
    let a = match action {
        Action::Discrete(a) => a.min(2),
        Action::Continuous(a) => a.first().map_or(1, |&v| v.round().clamp(0.0, 2.0) as usize),
    };
    (position + a).saturating_sub(1).min(max)
}

/// `value` as an integer in `0..=max`, or an `InvalidState` naming `game` and `what`.
pub(crate) fn cell(game: &str, value: f64, max: usize, what: &str) -> Result<usize, EnvError> {
    if value.fract() == 0.0 && (0.0..=max as f64).contains(&value) {
        Ok(value as usize)
    } else {
        Err(EnvError::InvalidState(format!(
            "{game}: {what} must be an integer in 0..={max}, got {value}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paddles_move_one_cell_and_stop_at_the_edges() {
        assert_eq!(move_paddle(3, Action::Discrete(0), 4), 2);
        assert_eq!(move_paddle(3, Action::Discrete(1), 4), 3);
        assert_eq!(move_paddle(3, Action::Discrete(2), 4), 4);
        assert_eq!(move_paddle(4, Action::Discrete(2), 4), 4);
        assert_eq!(move_paddle(0, Action::Discrete(0), 4), 0);
        assert_eq!(move_paddle(2, Action::Continuous(&[0.2]), 4), 1);
        assert_eq!(cell("G", 3.0, 4, "x"), Ok(3));
        assert!(cell("G", 2.5, 4, "x").is_err());
        assert!(cell("G", 5.0, 4, "x").is_err());
    }
}
