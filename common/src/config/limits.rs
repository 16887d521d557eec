//! The `[learner.limits]` section: how much of the learner one client, or all of them, may
//! hold (connections, streams, time to authenticate), and their ranges.

use serde::{Deserialize, Serialize};

use super::range::{Invalid, Range, Section};

/// The learner's limits on what clients hold. Message sizes are not here: they follow from
/// the run (twice its largest push).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Open TCP connections at most (each actor holds one). A connection beyond it first
    /// displaces the oldest one that has not authenticated; if every one has, it is closed at
    /// once. Lowered at start-up to what the open-file limit leaves room for.
    pub max_connections: usize,
    /// A connection that has not made an authenticated request this many seconds after it
    /// was accepted is closed (one that never sends a byte, or sends no token).
    pub auth_timeout_secs: f64,
    /// Concurrent HTTP/2 streams (calls) on one connection.
    pub max_streams_per_connection: u32,
    /// Open parameter subscriptions of one actor.
    pub max_subscriptions_per_actor: usize,
    /// Open parameter subscriptions in all.
    pub max_subscriptions: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            auth_timeout_secs: 10.0,
            max_streams_per_connection: 64,
            max_subscriptions_per_actor: 2,
            max_subscriptions: 1024,
        }
    }
}

impl LimitsConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), Invalid> {
        let s = Section("learner.limits");
        s.count(
            "max_connections",
            self.max_connections as u64,
            Range::AT_LEAST_ONE,
        )?;
        s.check("auth_timeout_secs", self.auth_timeout_secs, Range::POSITIVE)?;
        s.count(
            "max_streams_per_connection",
            u64::from(self.max_streams_per_connection),
            Range::AT_LEAST_ONE,
        )?;
        s.count(
            "max_subscriptions_per_actor",
            self.max_subscriptions_per_actor as u64,
            Range::AT_LEAST_ONE,
        )?;
        s.count(
            "max_subscriptions",
            self.max_subscriptions as u64,
            Range::AT_LEAST_ONE,
        )
    }
}
