//! Policy lag in one status interval (PPO: versions a rollout is behind; A3C: versions a
//! gradient is behind when applied; DQN: versions a transition batch is behind), as a bounded
//! histogram: min, mean, p50, p90 and max without keeping every sample.

use super::metrics::StatusRow;

/// One bucket per version up to [`LagStats::BUCKETS`] − 1, and one for everything beyond.
#[derive(Debug, Clone, Default)]
pub struct LagStats {
    counts: Vec<u64>,
    max: u64,
    sum: u64,
    count: u64,
}

impl LagStats {
    /// Histogram buckets (the last one holds every lag ≥ `BUCKETS − 1`).
    pub const BUCKETS: usize = 64;

    /// Records one lag.
    pub fn record(&mut self, lag: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; Self::BUCKETS];
        }
        self.counts[(lag as usize).min(Self::BUCKETS - 1)] += 1;
        self.max = self.max.max(lag);
        self.sum += lag;
        self.count += 1;
    }

    /// The smallest lag with at least `q` of the records at or below it (the last bucket
    /// stands for "at least 63").
    pub fn quantile(&self, q: f64) -> u64 {
        let want = (q * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (lag, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return lag as u64;
            }
        }
        self.max
    }

    /// Writes min, mean, p50, p90 and max into `row` (left empty when nothing was recorded).
    pub fn fill(&self, row: &mut StatusRow) {
        if self.count == 0 {
            return;
        }
        row.version_diff_min = Some(self.quantile(0.0));
        row.version_diff_avg = Some(self.sum as f64 / self.count as f64);
        row.version_diff_p50 = Some(self.quantile(0.5));
        row.version_diff_p90 = Some(self.quantile(0.9));
        row.version_diff_max = Some(self.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(lag: &LagStats) -> [Option<f64>; 5] {
        let mut row = StatusRow::default();
        lag.fill(&mut row);
        let f = |x: Option<u64>| x.map(|v| v as f64);
        [
            f(row.version_diff_min),
            row.version_diff_avg,
            f(row.version_diff_p50),
            f(row.version_diff_p90),
            f(row.version_diff_max),
        ]
    }

    #[test]
    fn lag_stats() {
        let mut lag = LagStats::default();
        assert_eq!(filled(&lag)[0], None);
        for l in [0, 2, 1] {
            lag.record(l);
        }
        assert_eq!(
            filled(&lag),
            [Some(0.0), Some(1.0), Some(1.0), Some(2.0), Some(2.0)]
        );
        // 90 records at 0, 10 at 5, one beyond the histogram: p50 0, p90 5, p99 5, max exact.
        let mut lag = LagStats::default();
        for _ in 0..90 {
            lag.record(0);
        }
        for _ in 0..10 {
            lag.record(5);
        }
        lag.record(1000);
        let [_, _, p50, p90, max] = filled(&lag);
        assert_eq!((p50, p90, max), (Some(0.0), Some(5.0), Some(1000.0)));
        assert_eq!(lag.quantile(0.99), 5);
    }
}
