//! MinBreakout's dynamics against hand-worked boards, its seeding and its random baseline.

use super::super::board_art::{self, Legend};
use super::*;

const SHAPE: [usize; 3] = [CHANNELS, SIZE, SIZE];
/// `P` paddle, `O` ball, `x` trail, `#` brick; `@` ball on its own trail (it did not move),
/// `%` trail on a brick (a refilled cell).
const LEGEND: Legend<'static> = &[
    ('P', &[0]),
    ('O', &[1]),
    ('x', &[2]),
    ('#', &[3]),
    ('@', &[1, 2]),
    ('%', &[2, 3]),
];
const WALL: &str = "##########";
const EMPTY: &str = "..........";

type Board = [&'static str; SIZE];

/// Plays from `state`, checking the first frame and, per step, the action's frame, reward
/// and termination.
fn play(state: &[f64], first: Board, steps: &[(usize, Board, f64, bool)]) -> MinBreakout {
    let mut env = MinBreakout::default();
    board_art::play(&mut env, state, first, steps, SHAPE, LEGEND);
    env
}

/// A state with only the bricks at `(row, col)` standing.
fn with_bricks(ball: [f64; 5], bricks: &[(usize, usize)]) -> Vec<f64> {
    let mut state = ball.to_vec();
    state.resize(STATE_LEN_WITH_BRICKS, 0.0);
    for &(row, col) in bricks {
        state[STATE_LEN + (row - BRICK_TOP) * SIZE + col] = 1.0;
    }
    state
}

#[test]
#[rustfmt::skip]
fn a_side_wall_reflects_and_a_miss_ends_the_episode() {
    play(
        &[6.0, 1.0, 1.0, -1.0, 4.0],
        [EMPTY, WALL, WALL, WALL, EMPTY, EMPTY,
         ".O........",
         EMPTY, EMPTY,
         "....PP...."],
        &[
            (1, [EMPTY, WALL, WALL, WALL, EMPTY, EMPTY,
                 ".x........",
                 "O.........",
                 EMPTY,
                 "....PP...."], 0.0, false),
            // The wall turns the ball right before it moves.
            (1, [EMPTY, WALL, WALL, WALL, EMPTY, EMPTY, EMPTY,
                 "x.........",
                 ".O........",
                 "....PP...."], 0.0, false),
            // Column 2 of the bottom row is not the paddle's: the ball falls in.
            (0, [EMPTY, WALL, WALL, WALL, EMPTY, EMPTY, EMPTY, EMPTY,
                 ".x........",
                 "..OPP....."], 0.0, true),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn the_left_paddle_cell_sends_the_ball_up_left() {
    // From the left onto the left cell: the ball goes back the way it came.
    play(
        &[7.0, 2.0, 1.0, 1.0, 4.0],
        [EMPTY, WALL, WALL, WALL, EMPTY, EMPTY, EMPTY,
         "..O.......",
         EMPTY,
         "....PP...."],
        &[
            (0, [EMPTY, WALL, WALL, WALL, EMPTY, EMPTY, EMPTY,
                 "..x.......",
                 "...O......",
                 "...PP....."], 0.0, false),
            // The paddle moves under the ball; the ball stays in row 8 above the left cell.
            (2, [EMPTY, WALL, WALL, WALL, EMPTY, EMPTY, EMPTY, EMPTY,
                 "...xO.....",
                 "....PP...."], 0.0, false),
            (1, [EMPTY, WALL, WALL, WALL, EMPTY, EMPTY, EMPTY,
                 "...O......",
                 "....x.....",
                 "....PP...."], 0.0, false),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn the_right_paddle_cell_sends_the_ball_up_right() {
    // From the right onto the right cell: back the way it came.
    play(
        &[7.0, 7.0, 1.0, -1.0, 4.0],
        [EMPTY, WALL, WALL, WALL, EMPTY, EMPTY, EMPTY,
         ".......O..",
         EMPTY,
         "....PP...."],
        &[
            (1, [EMPTY, WALL, WALL, WALL, EMPTY, EMPTY, EMPTY,
                 ".......x..",
                 "......O...",
                 "....PP...."], 0.0, false),
            (1, [EMPTY, WALL, WALL, WALL, EMPTY, EMPTY, EMPTY, EMPTY,
                 ".....Ox...",
                 "....PP...."], 0.0, false),
            (1, [EMPTY, WALL, WALL, WALL, EMPTY, EMPTY, EMPTY,
                 "......O...",
                 ".....x....",
                 "....PP...."], 0.0, false),
        ],
    );
    // From the left onto the right cell: the ball keeps going right.
    play(
        &[8.0, 4.0, 1.0, 1.0, 4.0],
        [EMPTY, WALL, WALL, WALL, EMPTY, EMPTY, EMPTY, EMPTY,
         "....O.....",
         "....PP...."],
        &[
            (1, [EMPTY, WALL, WALL, WALL, EMPTY, EMPTY, EMPTY, EMPTY,
                 "....xO....",
                 "....PP...."], 0.0, false),
            (1, [EMPTY, WALL, WALL, WALL, EMPTY, EMPTY, EMPTY,
                 "......O...",
                 ".....x....",
                 "....PP...."], 0.0, false),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn a_brick_hit_from_below_pays_one_and_reflects() {
    play(
        &[5.0, 2.0, -1.0, 1.0, 4.0],
        [EMPTY, WALL, WALL, WALL, EMPTY,
         "..O.......",
         EMPTY, EMPTY, EMPTY,
         "....PP...."],
        &[
            (1, [EMPTY, WALL, WALL, WALL,
                 "...O......",
                 "..x.......",
                 EMPTY, EMPTY, EMPTY,
                 "....PP...."], 0.0, false),
            // The brick at (3, 4) breaks; the ball moves sideways under the hole.
            (1, [EMPTY, WALL, WALL,
                 "####.#####",
                 "...xO.....",
                 EMPTY, EMPTY, EMPTY, EMPTY,
                 "....PP...."], 1.0, false),
            (1, [EMPTY, WALL, WALL,
                 "####.#####",
                 "....x.....",
                 ".....O....",
                 EMPTY, EMPTY, EMPTY,
                 "....PP...."], 0.0, false),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn the_ball_slips_between_bricks_and_breaks_the_wall_from_above() {
    // A diagonal tunnel (3, 5), (2, 6), (1, 7): the bricks beside the path are not hit.
    let mut state = vec![4.0, 4.0, -1.0, 1.0, 4.0];
    state.extend((0..NUM_BRICKS).map(|i| if [25, 16, 7].contains(&i) { 0.0 } else { 1.0 }));
    play(
        &state,
        [EMPTY,
         "#######.##",
         "######.###",
         "#####.####",
         "....O.....",
         EMPTY, EMPTY, EMPTY, EMPTY,
         "....PP...."],
        &[
            (1, [EMPTY,
                 "#######.##",
                 "######.###",
                 "#####O####",
                 "....x.....",
                 EMPTY, EMPTY, EMPTY, EMPTY,
                 "....PP...."], 0.0, false),
            (1, [EMPTY,
                 "#######.##",
                 "######O###",
                 "#####x####",
                 EMPTY, EMPTY, EMPTY, EMPTY, EMPTY,
                 "....PP...."], 0.0, false),
            (1, [EMPTY,
                 "#######O##",
                 "######x###",
                 "#####.####",
                 EMPTY, EMPTY, EMPTY, EMPTY, EMPTY,
                 "....PP...."], 0.0, false),
            (1, ["........O.",
                 "#######x##",
                 "######.###",
                 "#####.####",
                 EMPTY, EMPTY, EMPTY, EMPTY, EMPTY,
                 "....PP...."], 0.0, false),
            // The top wall turns the ball down onto (1, 9): it breaks and the ball skims on.
            (1, ["........xO",
                 "#######.#.",
                 "######.###",
                 "#####.####",
                 EMPTY, EMPTY, EMPTY, EMPTY, EMPTY,
                 "....PP...."], 1.0, false),
            // Top and right wall at once, then (1, 8) breaks.
            (1, ["........Ox",
                 "#######...",
                 "######.###",
                 "#####.####",
                 EMPTY, EMPTY, EMPTY, EMPTY, EMPTY,
                 "....PP...."], 1.0, false),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn a_hit_with_a_brick_beside_is_a_corner() {
    // The ball sits in a hole at (3, 4); it breaks (2, 5), cannot move sideways into
    // (3, 5), so it stays and both directions reverse.
    let mut state = vec![3.0, 4.0, -1.0, 1.0, 4.0];
    state.extend((0..NUM_BRICKS).map(|i| if i == 24 { 0.0 } else { 1.0 }));
    play(
        &state,
        [EMPTY, WALL, WALL,
         "####O#####",
         EMPTY, EMPTY, EMPTY, EMPTY, EMPTY,
         "....PP...."],
        &[
            (1, [EMPTY, WALL,
                 "#####.####",
                 "####@#####",
                 EMPTY, EMPTY, EMPTY, EMPTY, EMPTY,
                 "....PP...."], 1.0, false),
            (1, [EMPTY, WALL,
                 "#####.####",
                 "####x#####",
                 "...O......",
                 EMPTY, EMPTY, EMPTY, EMPTY,
                 "....PP...."], 0.0, false),
        ],
    );
}

#[test]
#[rustfmt::skip]
fn breaking_the_last_brick_refills_the_wall() {
    let env = play(
        &with_bricks([5.0, 4.0, -1.0, 1.0, 4.0], &[(3, 6)]),
        [EMPTY, EMPTY, EMPTY,
         "......#...",
         EMPTY,
         "....O.....",
         EMPTY, EMPTY, EMPTY,
         "....PP...."],
        &[
            (1, [EMPTY, EMPTY, EMPTY,
                 "......#...",
                 ".....O....",
                 "....x.....",
                 EMPTY, EMPTY, EMPTY,
                 "....PP...."], 0.0, false),
            (1, [EMPTY, WALL, WALL, WALL,
                 ".....xO...",
                 EMPTY, EMPTY, EMPTY, EMPTY,
                 "....PP...."], 1.0, false),
        ],
    );
    assert_eq!(env.bricks_left(), 30);
}

#[test]
#[rustfmt::skip]
fn the_refill_spares_the_ball_s_cell() {
    let env = play(
        &with_bricks([2.0, 2.0, -1.0, 1.0, 4.0], &[(1, 3)]),
        [EMPTY,
         "...#......",
         "..O.......",
         EMPTY, EMPTY, EMPTY, EMPTY, EMPTY, EMPTY,
         "....PP...."],
        &[
            // The trail's cell is refilled, the ball's is not.
            (1, [EMPTY, WALL,
                 "##%O######",
                 WALL,
                 EMPTY, EMPTY, EMPTY, EMPTY, EMPTY,
                 "....PP...."], 1.0, false),
            // Walled in: (3, 4) breaks, (2, 4) beside it stands, so the ball stays.
            (1, [EMPTY, WALL,
                 "###@######",
                 "####.#####",
                 EMPTY, EMPTY, EMPTY, EMPTY, EMPTY,
                 "....PP...."], 1.0, false),
        ],
    );
    assert_eq!(env.bricks_left(), 28);
}

#[test]
fn stepping_after_a_miss_changes_nothing() {
    let mut env = MinBreakout::default();
    let mut obs = [0f32; CHANNELS * PLANE];
    env.reset_to(&[8.0, 0.0, 1.0, 1.0, 4.0], &mut obs).unwrap();
    assert!(env.step(Action::Discrete(1), &mut obs).terminated);
    let last = obs;
    let step = env.step(Action::Discrete(2), &mut obs);
    assert_eq!((step.reward, step.terminated), (0.0, true));
    assert_eq!(obs, last);
}

#[test]
fn reset_starts_below_the_wall_moving_down_and_seeds_fix_episodes() {
    let episodes = |seed| {
        let mut env = MinBreakout::default();
        let mut rng = Rng::new(seed);
        let mut obs = vec![0f32; CHANNELS * PLANE];
        let mut starts = Vec::new();
        let mut frames = Vec::new();
        for _ in 0..20 {
            env.reset(&mut rng, &mut obs);
            let [row, col, dr, dc] = env.ball();
            assert_eq!((row, dr, env.paddle(), env.bricks_left()), (4, 1, 4, 30));
            assert!(
                obs[2 * PLANE..3 * PLANE].iter().all(|&v| v == 0.0),
                "no trail"
            );
            starts.push((col, dc));
            for t in 0..50 {
                let step = env.step(Action::Discrete(t % 3), &mut obs);
                frames.extend_from_slice(&obs);
                if step.terminated {
                    break;
                }
            }
        }
        (starts, frames)
    };
    let (starts, frames) = episodes(3);
    assert_eq!((starts.clone(), frames), episodes(3));
    assert_ne!(starts, episodes(4).0);
    assert!(starts.iter().any(|s| s.1 == -1) && starts.iter().any(|s| s.1 == 1));
}

#[test]
fn reset_to_rejects_impossible_states() {
    let mut env = MinBreakout::default();
    let mut obs = [0f32; CHANNELS * PLANE];
    let bad: [&[f64]; 9] = [
        &[9.0, 0.0, 1.0, 1.0, 4.0],  // in the bottom row
        &[4.0, 10.0, 1.0, 1.0, 4.0], // off the board
        &[4.0, 0.0, 0.0, 1.0, 4.0],  // dr 0
        &[4.0, 0.0, 1.0, 2.0, 4.0],  // dc 2
        &[4.0, 0.0, 1.0, 1.0, 9.0],  // paddle past the edge
        &[2.0, 0.0, 1.0, 1.0, 4.0],  // inside a brick
        &[4.0, 0.0, 1.0, 1.0],       // too short
        &[4.0, 0.0, 1.0, 1.0, 4.0, 1.0],
        &[4.0, 0.5, 1.0, 1.0, 4.0],
    ];
    for state in bad {
        assert!(
            matches!(
                env.reset_to(state, &mut obs),
                Err(EnvError::InvalidState(_))
            ),
            "{state:?}"
        );
    }
    let no_bricks = with_bricks([4.0, 0.0, 1.0, 1.0, 4.0], &[]);
    assert!(env.reset_to(&no_bricks, &mut obs).is_err());
    let mut two = with_bricks([4.0, 0.0, 1.0, 1.0, 4.0], &[(1, 0)]);
    two[STATE_LEN + 1] = 2.0;
    assert!(env.reset_to(&two, &mut obs).is_err());
}

#[test]
fn random_policy_mean_return_and_length() {
    let mut env = super::super::make("MinBreakout-v0").unwrap();
    let mut rng = Rng::new(0);
    let mut obs = vec![0f32; CHANNELS * PLANE];
    let episodes = 1000;
    let (mut total, mut steps) = (0.0, 0usize);
    for _ in 0..episodes {
        env.reset(&mut rng, &mut obs);
        loop {
            let step = env.step(Action::Discrete(rng.below(3)), &mut obs);
            assert!(step.reward == 0.0 || step.reward == 1.0);
            total += step.reward;
            steps += 1;
            if step.terminated || step.truncated {
                break;
            }
        }
    }
    let (mean, length) = (total / episodes as f64, steps as f64 / episodes as f64);
    println!(
        "MinBreakout-v0 random policy: mean return {mean:.3}, mean length {length:.1} \
         over {episodes} episodes"
    );
    assert!(mean > 0.0 && length > 5.0, "{mean} {length}");
}
