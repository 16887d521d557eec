//! Names the bottleneck from consecutive status rows, as Sample Factory's reports do, and
//! rate-limits the warnings (each kind at most once per [`Bottlenecks::REPEAT`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::metrics::StatusRow;

/// The kinds of bottleneck and what to do about each.
const ADVICE: [(&str, &str); 4] = [
    (
        "learner-bound",
        "the learner updated nearly all the interval or its queue was full: actors produce \
         faster than it learns (a faster device or cheaper updates help; more actors do not)",
    ),
    (
        "actor-bound",
        "the learner was idle most of the interval with an empty queue: experience arrives too \
         slowly (more actors or environments per actor help)",
    ),
    (
        "policy-lag-growing",
        "experience is made with ever older parameters (the learner falls behind, or versions \
         reach the actors late)",
    ),
    (
        "stale-data-rising",
        "a growing share of the experience arrives too old to be used and is dropped",
    ),
];

/// See the module docs.
#[derive(Debug)]
pub struct Bottlenecks {
    capacity: u64,
    previous: Option<StatusRow>,
    lag_rises: u32,
    last_warned: HashMap<&'static str, Instant>,
}

impl Bottlenecks {
    /// Warnings of one kind come at most this often.
    pub const REPEAT: Duration = Duration::from_secs(30);

    /// For a learner whose queue holds `capacity` items.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity as u64,
            previous: None,
            lag_rises: 0,
            last_warned: HashMap::new(),
        }
    }

    /// The bottlenecks `row` shows (after the previous row); logs a warning for each, unless
    /// one of its kind was logged within [`Bottlenecks::REPEAT`].
    pub fn check(&mut self, row: &StatusRow) -> Vec<&'static str> {
        let kinds = self.detect(row);
        for kind in &kinds {
            if self
                .last_warned
                .get(kind)
                .is_none_or(|t| t.elapsed() >= Self::REPEAT)
            {
                self.last_warned.insert(kind, Instant::now());
                let advice = ADVICE.iter().find(|(k, _)| k == kind).map_or("", |a| a.1);
                // Which side is slower is a diagnosis (synchronous PPO is learner-bound by
                // design); lag or stale data that grows is a problem.
                if matches!(*kind, "learner-bound" | "actor-bound") {
                    tracing::info!(target: "shoal::bottleneck", bottleneck = kind, "{kind}: {advice}");
                } else {
                    tracing::warn!(
                        target: "shoal::bottleneck",
                        bottleneck = kind,
                        queue_depth = row.queue_depth,
                        learner_busy = row.learner_busy,
                        lag_avg = row.version_diff_avg,
                        "{kind}: {advice}"
                    );
                }
            }
        }
        kinds
    }

    /// The pure part of [`Bottlenecks::check`].
    pub fn detect(&mut self, row: &StatusRow) -> Vec<&'static str> {
        let mut kinds = Vec::new();
        let Some(prev) = self.previous.replace(row.clone()) else {
            return kinds;
        };
        let count = |f: fn(&StatusRow) -> Option<u64>| {
            f(row).unwrap_or(0) as f64 - f(&prev).unwrap_or(0) as f64
        };
        let depth = row.queue_depth.unwrap_or(0) as f64;
        let busy = row.learner_busy.unwrap_or(0.0);
        if count(|r| r.queue_full) > 0.0 || depth >= 0.75 * self.capacity as f64 || busy >= 0.9 {
            kinds.push("learner-bound");
        }
        let actors = row.connected_actors.unwrap_or(0);
        if busy < 0.5 && depth == 0.0 && actors > 0 && count(|r| r.env_steps) > 0.0 {
            kinds.push("actor-bound");
        }
        match (row.version_diff_avg, prev.version_diff_avg) {
            (Some(now), Some(before)) if now > before => self.lag_rises += 1,
            _ => self.lag_rises = 0,
        }
        if self.lag_rises >= 3 && row.version_diff_avg.unwrap_or(0.0) > 1.0 {
            kinds.push("policy-lag-growing");
        }
        let stale = count(|r| r.rollouts_stale) + count(|r| r.gradients_stale);
        let used = count(|r| r.rollouts_used) + count(|r| r.gradients_applied);
        if stale > 0.0 && stale > 0.25 * (stale + used) {
            kinds.push("stale-data-rising");
        }
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bottlenecks_are_named_from_consecutive_rows() {
        let mut b = Bottlenecks::new(64);
        let row =
            |steps: u64, full: u64, depth: u64, busy: f64, lag: f64, stale: u64, used: u64| {
                StatusRow {
                    env_steps: Some(steps),
                    queue_full: Some(full),
                    queue_depth: Some(depth),
                    learner_busy: Some(busy),
                    connected_actors: Some(2),
                    version_diff_avg: Some(lag),
                    rollouts_stale: Some(stale),
                    rollouts_used: Some(used),
                    ..StatusRow::default()
                }
            };
        let none: [&str; 0] = [];
        assert_eq!(
            b.detect(&row(0, 0, 0, 0.6, 0.0, 0, 0)),
            none,
            "no previous row"
        );
        assert_eq!(b.detect(&row(100, 0, 3, 0.6, 0.2, 0, 10)), none);
        // The queue filled up, or the learner updated nearly all the time.
        assert_eq!(
            b.detect(&row(200, 5, 60, 0.6, 0.1, 0, 20)),
            ["learner-bound"]
        );
        assert_eq!(
            b.detect(&row(250, 5, 0, 0.95, 0.1, 0, 25)),
            ["learner-bound"]
        );
        // Idle with an empty queue.
        assert_eq!(b.detect(&row(300, 5, 0, 0.1, 0.1, 0, 30)), ["actor-bound"]);
        // 9 of 10 rollouts too old.
        assert_eq!(
            b.detect(&row(400, 5, 1, 0.6, 0.1, 9, 31)),
            ["stale-data-rising"]
        );
        // Lag up three intervals in a row, above one version.
        assert_eq!(b.detect(&row(500, 5, 1, 0.6, 1.5, 9, 40)), none);
        assert_eq!(b.detect(&row(600, 5, 1, 0.6, 2.0, 9, 50)), none);
        assert_eq!(
            b.detect(&row(700, 5, 1, 0.6, 2.5, 9, 60)),
            ["policy-lag-growing"]
        );
    }
}
