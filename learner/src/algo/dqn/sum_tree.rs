//! A sum-tree over priorities (Schaul et al. 2016): O(log n) updates and proportional sampling.

use shoal_common::rng::Rng;

/// Priorities of `capacity` slots in a complete binary tree whose inner nodes hold the sums of
/// their children; the root holds the total.
#[derive(Debug, Clone)]
pub struct SumTree {
    capacity: usize,
    /// `nodes[1]` is the root; leaves are `nodes[capacity..2 * capacity]` (capacity rounded up to
    /// a power of two).
    nodes: Vec<f64>,
}

impl SumTree {
    /// All priorities zero.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1).next_power_of_two();
        Self {
            capacity,
            nodes: vec![0.0; 2 * capacity],
        }
    }

    /// Sum of all priorities.
    pub fn total(&self) -> f64 {
        self.nodes[1]
    }

    /// The priority of slot `i`.
    pub fn get(&self, i: usize) -> f64 {
        self.nodes[self.capacity + i]
    }

    /// Sets slot `i`'s priority (finite, non-negative).
    pub fn set(&mut self, i: usize, priority: f64) {
        debug_assert!(priority.is_finite() && priority >= 0.0);
        let mut node = self.capacity + i;
        self.nodes[node] = priority;
        while node > 1 {
            node /= 2;
            self.nodes[node] = self.nodes[2 * node] + self.nodes[2 * node + 1];
        }
    }

    /// The slot whose cumulative priority range holds `mass` (`0 ≤ mass < total`).
    pub fn find(&self, mut mass: f64) -> usize {
        let mut node = 1;
        while node < self.capacity {
            let left = self.nodes[2 * node];
            if mass < left {
                node *= 2;
            } else {
                mass -= left;
                node = 2 * node + 1;
            }
        }
        node - self.capacity
    }

    /// `batch` slots drawn in proportion to priority, one from each of `batch` equal segments
    /// of the total (stratified, as in the paper). Slots with zero priority are never drawn.
    pub fn sample(&self, batch: usize, rng: &mut Rng) -> Vec<usize> {
        let total = self.total();
        let segment = total / batch as f64;
        (0..batch)
            .map(|k| {
                let mass = (k as f64 + rng.next_f64()) * segment;
                let mut i = self.find(mass.min(total * (1.0 - 1e-12)));
                // Rounding can land on an empty leaf right of the last filled one.
                while self.get(i) == 0.0 && i > 0 {
                    i -= 1;
                }
                i
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_lookups() {
        let mut t = SumTree::new(5);
        for (i, p) in [1.0, 2.0, 0.0, 4.0, 3.0].into_iter().enumerate() {
            t.set(i, p);
        }
        assert_eq!(t.total(), 10.0);
        assert_eq!(t.find(0.5), 0);
        assert_eq!(t.find(1.0), 1);
        assert_eq!(t.find(2.99), 1);
        assert_eq!(t.find(3.0), 3);
        assert_eq!(t.find(9.99), 4);
        t.set(3, 0.5);
        assert_eq!(t.total(), 6.5);
    }

    /// Sampling frequencies follow the priorities: a chi-square test with a fixed seed.
    #[test]
    fn sampling_frequencies_match_priorities() {
        let priorities = [1.0, 2.0, 0.0, 4.0, 3.0, 0.5, 9.5];
        let mut t = SumTree::new(priorities.len());
        for (i, &p) in priorities.iter().enumerate() {
            t.set(i, p);
        }
        let mut rng = Rng::new(7);
        let mut counts = [0u64; 7];
        let draws = 200_000;
        for _ in 0..draws / 50 {
            for i in t.sample(50, &mut rng) {
                counts[i] += 1;
            }
        }
        assert_eq!(counts[2], 0, "zero priority is never drawn");
        let total: f64 = priorities.iter().sum();
        let chi2: f64 = priorities
            .iter()
            .zip(&counts)
            .filter(|(p, _)| **p > 0.0)
            .map(|(p, &c)| {
                let expected = draws as f64 * p / total;
                (c as f64 - expected).powi(2) / expected
            })
            .sum();
        // 6 non-zero categories → 5 degrees of freedom; the 0.999 quantile is 20.5. Stratified
        // sampling makes the statistic smaller than for independent draws.
        assert!(chi2 < 20.5, "chi2 {chi2}, counts {counts:?}");
    }
}
