//! A3C's staleness bound, checked in one place on both sides: at the door (the ack says so and
//! carries fresh parameters) and when a queued gradient's turn comes (it may have aged in the
//! queue). Every gradient dropped either way is counted once, here.

use std::sync::atomic::{AtomicU64, Ordering};

/// See the module docs.
#[derive(Debug)]
pub struct StalenessBound {
    max: u64,
    dropped: AtomicU64,
}

impl StalenessBound {
    /// Gradients more than `max` versions behind are dropped; `dropped` were before (a resume).
    pub fn new(max: u64, dropped: u64) -> Self {
        Self {
            max,
            dropped: AtomicU64::new(dropped),
        }
    }

    /// The largest staleness allowed.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// `Ok(staleness)` for a gradient computed on `version` when the learner is at `current`,
    /// or `Err(staleness)` when it is too stale (then counted as dropped).
    pub fn check(&self, version: u64, current: u64) -> Result<u64, u64> {
        let staleness = current.saturating_sub(version);
        if staleness > self.max {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Err(staleness);
        }
        Ok(staleness)
    }

    /// Gradients dropped as too stale so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradients_beyond_the_bound_are_dropped_and_counted_once() {
        let bound = StalenessBound::new(2, 5);
        assert_eq!(bound.check(8, 10), Ok(2));
        assert_eq!(bound.check(7, 10), Err(3));
        assert_eq!(bound.check(11, 10), Ok(0));
        assert_eq!(bound.dropped(), 6);
    }
}
