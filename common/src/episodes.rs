//! What an actor may claim about the episodes it finished: each claim must fit the environment
//! (its time limit and the rewards it can give, from the registry) and the push (a push whose
//! claims do not is refused), and over all of an actor's pushes the episodes counted cannot
//! span more steps than the actor pushed ([`EpisodeLedger`]). The learner's episode statistics
//! (and "solved") come only from claims that pass.

use thiserror::Error;

use crate::env::EnvInfo;

/// What an environment allows an episode to be.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpisodeBounds {
    /// The time limit (longest episode), in steps.
    pub max_length: u32,
    /// Smallest and largest reward of one step.
    pub reward_range: (f64, f64),
}

impl EpisodeBounds {
    /// The bounds of a registered environment (no time limit: any `u32` length).
    pub fn of(info: &EnvInfo) -> Self {
        Self {
            max_length: info
                .max_episode_steps
                .map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX)),
            reward_range: info.reward_range,
        }
    }

    /// Steps an actor's `num_envs` environments may have taken before its first push, in
    /// episodes that end later (each environment: one episode, one step short of the limit).
    pub fn carried_steps(&self, num_envs: usize) -> u64 {
        num_envs as u64 * u64::from(self.max_length.saturating_sub(1))
    }
}

/// Why a push's episode claims were refused.
#[derive(Debug, Error, PartialEq)]
pub enum EpisodeError {
    /// Returns and lengths do not pair up.
    #[error("{returns} episode returns for {lengths} lengths")]
    Unpaired {
        /// Returns sent.
        returns: usize,
        /// Lengths sent.
        lengths: usize,
    },
    /// More episodes ended than steps were taken.
    #[error("{episodes} episodes ended in {steps} steps")]
    TooMany {
        /// Episodes claimed.
        episodes: usize,
        /// Steps pushed.
        steps: u64,
    },
    /// A length of zero or beyond the time limit.
    #[error("episode {index}: length {length} is outside 1..={max} (the time limit)")]
    Length {
        /// Which episode.
        index: usize,
        /// Claimed.
        length: u32,
        /// The limit.
        max: u32,
    },
    /// A return the environment cannot give in that many steps.
    #[error(
        "episode {index}: return {value} is outside what {length} steps can give ({lo}..={hi})"
    )]
    Return {
        /// Which episode.
        index: usize,
        /// Claimed.
        value: f32,
        /// Its length.
        length: u32,
        /// Smallest possible.
        lo: f64,
        /// Largest possible.
        hi: f64,
    },
    /// The episodes are longer than the steps the actor's environments took.
    #[error(
        "episodes of {claimed} steps in all, but the actor's environments took {available} steps not yet in an episode"
    )]
    Steps {
        /// Steps in the episodes claimed.
        claimed: u64,
        /// Steps available for them.
        available: u64,
    },
}

/// The range of returns an episode of `length` steps can have under `bounds`, with room for
/// the rounding of an `f32` sum.
pub fn return_range(bounds: &EpisodeBounds, length: u32) -> (f64, f64) {
    let (lo, hi) = bounds.reward_range;
    let n = f64::from(length);
    let slack = |x: f64| 1e-3 * x.abs().max(1.0);
    let (lo, hi) = (lo * n, hi * n);
    (lo - slack(lo), hi + slack(hi))
}

/// Checks one push's claims: `steps` environment steps by `num_envs` environments ended the
/// episodes `returns`/`lengths`. Returns the steps those episodes span.
///
/// Each step ends at most one episode; each length is within the time limit; each return
/// within what that many steps can give; and the episodes span at most the push's steps plus
/// what each environment carried in from before ([`EpisodeBounds::carried_steps`]).
pub fn check_claims(
    bounds: &EpisodeBounds,
    steps: u64,
    num_envs: usize,
    returns: &[f32],
    lengths: &[u32],
) -> Result<u64, EpisodeError> {
    if returns.len() != lengths.len() {
        return Err(EpisodeError::Unpaired {
            returns: returns.len(),
            lengths: lengths.len(),
        });
    }
    if returns.len() as u64 > steps {
        return Err(EpisodeError::TooMany {
            episodes: returns.len(),
            steps,
        });
    }
    let mut claimed = 0u64;
    for (index, (&value, &length)) in returns.iter().zip(lengths).enumerate() {
        if length == 0 || length > bounds.max_length {
            return Err(EpisodeError::Length {
                index,
                length,
                max: bounds.max_length,
            });
        }
        let (lo, hi) = return_range(bounds, length);
        if !(value.is_finite() && (lo..=hi).contains(&f64::from(value))) {
            return Err(EpisodeError::Return {
                index,
                value,
                length,
                lo,
                hi,
            });
        }
        claimed += u64::from(length);
    }
    let available = steps + bounds.carried_steps(num_envs);
    if claimed > available {
        return Err(EpisodeError::Steps { claimed, available });
    }
    Ok(claimed)
}

/// One actor's account over all its pushes: steps its environments took that no counted
/// episode covers yet. A push's episodes count only when the account (with the push's own
/// steps) covers them; a new actor's account starts empty, so no actor, and no number of
/// registrations, can have more episode steps counted than it pushed. An honest actor's
/// account holds the steps of its environments' current episodes, at most
/// [`EpisodeBounds::carried_steps`]; more is not kept, so that steps long past (stale pushes,
/// say) cannot pay for a burst of claims. What an honest actor can lose: the statistics of
/// episodes begun before it registered under this id, or spanning a push lost on the way.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpisodeLedger {
    unclaimed: u64,
    cap: u64,
}

impl EpisodeLedger {
    /// A new actor's account, empty.
    pub fn new(bounds: &EpisodeBounds, num_envs: usize) -> Self {
        Self {
            unclaimed: 0,
            cap: bounds.carried_steps(num_envs),
        }
    }

    /// Books a push of `steps` whose episodes span `claimed` steps: `true` when the account
    /// covers them (they count), `false` when it does not (only the steps are booked; the
    /// episodes do not count).
    pub fn book(&mut self, steps: u64, claimed: u64) -> bool {
        let available = self.unclaimed.saturating_add(steps);
        let counts = claimed <= available;
        let spent = if counts { claimed } else { 0 };
        self.unclaimed = (available - spent).min(self.cap);
        counts
    }

    /// Undoes [`EpisodeLedger::book`] for a push that was not taken after all (a full queue
    /// sends it back, and it comes again).
    pub fn refund(&mut self, steps: u64, spent: u64) {
        self.unclaimed = self
            .unclaimed
            .saturating_add(spent)
            .saturating_sub(steps)
            .min(self.cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARTPOLE: EpisodeBounds = EpisodeBounds {
        max_length: 500,
        reward_range: (0.0, 1.0),
    };

    #[test]
    fn honest_claims_pass() {
        assert_eq!(
            check_claims(&CARTPOLE, 256, 2, &[22.0, 500.0], &[22, 500]),
            Ok(522)
        );
        assert_eq!(check_claims(&CARTPOLE, 256, 2, &[], &[]), Ok(0));
        // Pendulum's returns are negative.
        let pendulum = EpisodeBounds {
            max_length: 200,
            reward_range: (-16.2736045, 0.0),
        };
        assert!(check_claims(&pendulum, 200, 1, &[-1500.0], &[200]).is_ok());
        assert!(check_claims(&pendulum, 200, 1, &[-3300.0], &[200]).is_err());
    }

    #[test]
    fn the_probes_claims_are_refused() {
        // 128 episodes of return 500 and length 1.
        let returns = vec![500.0; 128];
        let lengths = vec![1; 128];
        assert!(matches!(
            check_claims(&CARTPOLE, 2048, 8, &returns, &lengths),
            Err(EpisodeError::Return { index: 0, .. })
        ));
        // A length of u32::MAX, and of zero.
        assert!(matches!(
            check_claims(&CARTPOLE, 2048, 8, &[500.0], &[u32::MAX]),
            Err(EpisodeError::Length { .. })
        ));
        assert!(matches!(
            check_claims(&CARTPOLE, 2048, 8, &[0.0], &[0]),
            Err(EpisodeError::Length { .. })
        ));
        // More episodes than steps, unpaired lists, non-finite returns.
        assert!(matches!(
            check_claims(&CARTPOLE, 1, 1, &[1.0, 1.0], &[1, 1]),
            Err(EpisodeError::TooMany { .. })
        ));
        assert!(matches!(
            check_claims(&CARTPOLE, 8, 1, &[1.0], &[]),
            Err(EpisodeError::Unpaired { .. })
        ));
        assert!(check_claims(&CARTPOLE, 8, 1, &[f32::NAN], &[3]).is_err());
        // Twenty full-length episodes out of one 5-step push of 2 environments.
        assert_eq!(
            check_claims(&CARTPOLE, 10, 2, &[500.0; 3], &[500; 3]),
            Err(EpisodeError::Steps {
                claimed: 1500,
                available: 10 + 2 * 499
            })
        );
    }

    #[test]
    fn the_ledger_counts_what_was_pushed_and_no_more() {
        let mut ledger = EpisodeLedger::new(&CARTPOLE, 2);
        // A new account is empty: a full-length episode in a 10-step push does not count, nor
        // does it come out of the account.
        assert!(!ledger.book(10, 500));
        assert!(ledger.book(0, 10));
        // Episodes count once the steps behind them were pushed.
        for _ in 0..49 {
            assert!(ledger.book(10, 0));
        }
        assert!(ledger.book(10, 500));
        assert!(!ledger.book(0, 1));
        // Steps long past are not saved up for a burst of claims: at most one episode in
        // progress per environment.
        let mut idle = EpisodeLedger::new(&CARTPOLE, 1);
        for _ in 0..1000 {
            idle.book(100, 0);
        }
        assert!(idle.book(100, 499 + 100));
        assert!(!idle.book(0, 1));
        // A refund undoes a booking.
        let mut l = EpisodeLedger::new(&CARTPOLE, 2);
        l.book(300, 0);
        let before = l;
        assert!(l.book(10, 200));
        l.refund(10, 200);
        assert_eq!(l, before);
    }
}
