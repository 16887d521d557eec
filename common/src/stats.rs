//! What an actor reports about itself with each push, for monitoring: its speed, episodes,
//! reconnects and inference time. The learner exports the newest report of each actor.

use thiserror::Error;

use crate::proto;

/// An actor's report.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ActorStats {
    /// Environment steps per second since the previous push.
    pub sps: f64,
    /// Episodes the actor process finished since it started.
    pub episodes: u64,
    /// Reconnects to the learner since it started.
    pub reconnects: u32,
    /// Mean seconds per batched policy forward pass in the last collection.
    pub inference_secs: f64,
    /// Environment steps the actor process took since it started.
    pub env_steps: u64,
    /// Share of its wall time the actor spent not collecting (waiting on the learner), when
    /// its algorithm measures it.
    pub idle_fraction: Option<f64>,
}

/// Why a report was refused.
#[derive(Debug, Error, PartialEq)]
#[error("actor_stats: `{0}` is not a plausible value (finite, non-negative, within bounds)")]
pub struct StatsError(pub &'static str);

impl ActorStats {
    /// Validates a report from the network; `None` when the push carries none.
    pub fn from_proto(msg: Option<&proto::ActorStats>) -> Result<Option<Self>, StatsError> {
        let Some(m) = msg else {
            return Ok(None);
        };
        // A second per forward pass or a billion steps a second is no real actor's.
        let plausible = |x: f64, max: f64| x.is_finite() && (0.0..=max).contains(&x);
        if !plausible(m.sps, 1e9) {
            return Err(StatsError("sps"));
        }
        if !plausible(m.inference_secs, 3600.0) {
            return Err(StatsError("inference_secs"));
        }
        if m.idle_fraction.is_some_and(|f| !plausible(f, 1.0)) {
            return Err(StatsError("idle_fraction"));
        }
        Ok(Some(Self {
            sps: m.sps,
            episodes: m.episodes,
            reconnects: m.reconnects,
            inference_secs: m.inference_secs,
            env_steps: m.env_steps,
            idle_fraction: m.idle_fraction,
        }))
    }

    /// The wire form.
    pub fn to_proto(&self) -> proto::ActorStats {
        proto::ActorStats {
            sps: self.sps,
            episodes: self.episodes,
            reconnects: self.reconnects,
            inference_secs: self.inference_secs,
            env_steps: self.env_steps,
            idle_fraction: self.idle_fraction,
        }
    }
}

/// Time spent in batched policy forward passes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct InferenceClock {
    /// Forward passes.
    pub calls: u64,
    /// Seconds in them.
    pub secs: f64,
}

impl InferenceClock {
    /// Runs `f` (one forward pass) and counts its time.
    pub fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let start = std::time::Instant::now();
        let out = f();
        self.secs += start.elapsed().as_secs_f64();
        self.calls += 1;
        out
    }

    /// Mean seconds per pass since the last call, and starts over.
    pub fn take_mean(&mut self) -> f64 {
        let c = std::mem::take(self);
        if c.calls == 0 {
            0.0
        } else {
            c.secs / c.calls as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_and_implausible_ones_are_refused() {
        let s = ActorStats {
            sps: 1234.5,
            episodes: 7,
            reconnects: 2,
            inference_secs: 2e-5,
            env_steps: 99,
            idle_fraction: Some(0.25),
        };
        assert_eq!(ActorStats::from_proto(Some(&s.to_proto())), Ok(Some(s)));
        assert_eq!(ActorStats::from_proto(None), Ok(None));
        for bad in [f64::NAN, -1.0, f64::INFINITY, 1e12] {
            let mut m = s.to_proto();
            m.sps = bad;
            assert_eq!(ActorStats::from_proto(Some(&m)), Err(StatsError("sps")));
        }
        let mut m = s.to_proto();
        m.inference_secs = -0.1;
        assert!(ActorStats::from_proto(Some(&m)).is_err());
        let mut m = s.to_proto();
        m.idle_fraction = Some(1.5);
        assert_eq!(
            ActorStats::from_proto(Some(&m)),
            Err(StatsError("idle_fraction"))
        );
    }

    #[test]
    fn the_inference_clock_averages_and_starts_over() {
        let mut c = InferenceClock::default();
        assert_eq!(c.take_mean(), 0.0);
        assert_eq!(c.time(|| 3), 3);
        c.time(|| ());
        assert_eq!(c.calls, 2);
        assert!(c.take_mean() >= 0.0);
        assert_eq!(c, InferenceClock::default());
    }
}
