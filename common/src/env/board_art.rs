//! Test helper: image observations written and compared as string-art boards.
//!
//! A board is one string per row, one character per cell; a legend maps each character to the
//! channels that are 255 in that cell (`.` is always "none"). Comparing the rendering of an
//! observation with the rendering of the expected board makes a failing test print two boards.

use super::{Action, Env};

/// A legend: a character and the channels it sets. Rendering picks the first character whose
/// channel set matches a cell exactly.
pub(crate) type Legend<'a> = &'a [(char, &'a [usize])];

/// The image `[C, H, W]` (pixel values 0 or 255) that `board` draws.
pub(crate) fn parse(board: &[&str], shape: [usize; 3], legend: Legend<'_>) -> Vec<f32> {
    let [c, h, w] = shape;
    assert_eq!(board.len(), h, "board rows");
    let mut image = vec![0.0; c * h * w];
    for (r, row) in board.iter().enumerate() {
        assert_eq!(row.chars().count(), w, "row {r}: {row:?}");
        for (col, ch) in row.chars().enumerate() {
            if ch == '.' {
                continue;
            }
            let (_, channels) = legend
                .iter()
                .find(|(l, _)| *l == ch)
                .unwrap_or_else(|| panic!("no legend entry for {ch:?}"));
            for &k in *channels {
                image[k * h * w + r * w + col] = 255.0;
            }
        }
    }
    image
}

/// `image` as a board: `.` where no channel is set, the legend's character for the set of
/// channels that are, `?` for a set the legend has no character for.
///
/// # Panics
/// On a pixel that is neither 0 nor 255.
pub(crate) fn render(image: &[f32], shape: [usize; 3], legend: Legend<'_>) -> Vec<String> {
    let [c, h, w] = shape;
    assert_eq!(image.len(), c * h * w, "image size");
    (0..h)
        .map(|r| {
            (0..w)
                .map(|col| {
                    let set: Vec<usize> = (0..c)
                        .filter(|&k| match image[k * h * w + r * w + col] {
                            0.0 => false,
                            255.0 => true,
                            v => panic!("pixel ({k}, {r}, {col}) is {v}"),
                        })
                        .collect();
                    if set.is_empty() {
                        return '.';
                    }
                    legend
                        .iter()
                        .find(|(_, channels)| *channels == set.as_slice())
                        .map_or('?', |(ch, _)| *ch)
                })
                .collect()
        })
        .collect()
}

/// Asserts that `image` is the board `want`, printing both boards when it is not.
#[track_caller]
pub(crate) fn assert_board(
    image: &[f32],
    want: &[&str],
    shape: [usize; 3],
    legend: Legend<'_>,
    context: &str,
) {
    let got = render(image, shape, legend);
    let want = render(&parse(want, shape, legend), shape, legend);
    assert!(
        got == want,
        "{context}:\n got:\n  {}\n want:\n  {}",
        got.join("\n  "),
        want.join("\n  ")
    );
}

/// Puts `env` in `state` ([`Env::reset_to`]) and checks its frame against `first`; then, per
/// step `(action, board, reward, terminated)`, plays the action and checks the frame, the
/// reward and the end flags (never truncated).
#[track_caller]
pub(crate) fn play<const H: usize>(
    env: &mut dyn Env,
    state: &[f64],
    first: [&str; H],
    steps: &[(usize, [&str; H], f64, bool)],
    shape: [usize; 3],
    legend: Legend<'_>,
) {
    let mut obs = vec![0f32; shape.iter().product()];
    env.reset_to(state, &mut obs).unwrap();
    assert_board(&obs, &first, shape, legend, "after reset_to");
    for (t, (action, board, reward, terminated)) in steps.iter().enumerate() {
        let step = env.step(Action::Discrete(*action), &mut obs);
        assert_board(&obs, board, shape, legend, &format!("after step {}", t + 1));
        assert_eq!(
            (step.reward, step.terminated, step.truncated),
            (*reward, *terminated, false),
            "step {}",
            t + 1
        );
    }
}
