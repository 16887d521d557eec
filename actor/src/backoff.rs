//! Capped exponential backoff with jitter, for reconnecting to the learner.

use std::time::Duration;

use shoal_common::rng::Rng;

/// Delays of `initial · 2^k`, capped at `max`, each scaled by a random factor in [0.5, 1)
/// so that many actors restarted together do not reconnect in lockstep (and no delay exceeds
/// `max`: a restarted learner sees its actors back within `max`).
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
    rng: Rng,
}

impl Backoff {
    /// A backoff starting at `initial` and never exceeding `max` (before jitter).
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Self {
        Self {
            initial,
            max,
            attempt: 0,
            rng: Rng::new(seed),
        }
    }

    /// Failed attempts since the last [`Backoff::reset`].
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt += 1;
        base.mul_f64(self.rng.uniform(0.5, 1.0))
    }

    /// Back to the initial delay (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 1);
        let d: Vec<f64> = (0..8).map(|_| b.next_delay().as_secs_f64()).collect();
        for (k, &x) in d.iter().enumerate() {
            let base = (0.1 * 2f64.powi(k as i32)).min(2.0);
            assert!(x >= 0.5 * base - 1e-9 && x < base + 1e-9, "{k}: {x}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
