//! The learner's replay buffer: n-step transitions in host memory as struct-of-arrays, a fixed
//! capacity (the oldest are overwritten), uniform or prioritised sampling (Schaul et al. 2016:
//! `P(i) = p_i^α / Σ p^α`, importance weights `(N·P(i))^−β / max w`, priorities from TD errors).

use shoal_common::rng::Rng;

use super::sum_tree::SumTree;

/// One n-step transition as actors send it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition<'a> {
    /// `s_t`, `[O]`.
    pub obs: &'a [f32],
    /// `a_t`.
    pub action: u32,
    /// `Σ_{k<n} γ^k r_{t+k}`.
    pub reward: f32,
    /// `γ^n` when the return bootstraps from `next_obs`, 0 when the episode terminated within
    /// the n steps.
    pub discount: f32,
    /// `s_{t+n}` (or the last observation before the episode ended), `[O]`.
    pub next_obs: &'a [f32],
}

/// A sampled batch, laid out for one tensor per field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampledBatch {
    /// Slots sampled (for priority updates).
    pub indices: Vec<usize>,
    /// `[B, O]`.
    pub obs: Vec<f32>,
    /// `[B]`.
    pub actions: Vec<u32>,
    /// `[B]`.
    pub rewards: Vec<f32>,
    /// `[B]`.
    pub discounts: Vec<f32>,
    /// `[B, O]`.
    pub next_obs: Vec<f32>,
    /// `[B]` importance-sampling weights (all 1 for uniform sampling).
    pub weights: Vec<f32>,
}

/// Prioritised sampling settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prioritized {
    /// Priority exponent α.
    pub alpha: f64,
    /// Added to |TD error| so that no transition gets priority 0.
    pub epsilon: f64,
}

/// A bounded replay buffer.
#[derive(Debug, Clone)]
pub struct ReplayBuffer {
    capacity: usize,
    obs_dim: usize,
    len: usize,
    next: usize,
    obs: Vec<f32>,
    actions: Vec<u32>,
    rewards: Vec<f32>,
    discounts: Vec<f32>,
    next_obs: Vec<f32>,
    priorities: Option<(Prioritized, SumTree, f64)>,
}

impl ReplayBuffer {
    /// Room for `capacity` transitions of `obs_dim` observations; prioritised when `prioritized`
    /// is given. All memory is allocated here, once.
    pub fn new(capacity: usize, obs_dim: usize, prioritized: Option<Prioritized>) -> Self {
        Self {
            capacity,
            obs_dim,
            len: 0,
            next: 0,
            obs: vec![0.0; capacity * obs_dim],
            actions: vec![0; capacity],
            rewards: vec![0.0; capacity],
            discounts: vec![0.0; capacity],
            next_obs: vec![0.0; capacity * obs_dim],
            priorities: prioritized.map(|p| (p, SumTree::new(capacity), 1.0)),
        }
    }

    /// Transitions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of host memory the buffer's arrays take (constant after [`ReplayBuffer::new`]).
    pub fn memory_bytes(&self) -> usize {
        4 * (self.obs.capacity()
            + self.actions.capacity()
            + self.rewards.capacity()
            + self.discounts.capacity()
            + self.next_obs.capacity())
    }

    /// Adds one transition, overwriting the oldest when full. New transitions get the highest
    /// priority seen so far, so each is sampled at least once soon.
    pub fn push(&mut self, t: &Transition<'_>) {
        let (i, o) = (self.next, self.obs_dim);
        self.obs[i * o..(i + 1) * o].copy_from_slice(t.obs);
        self.next_obs[i * o..(i + 1) * o].copy_from_slice(t.next_obs);
        self.actions[i] = t.action;
        self.rewards[i] = t.reward;
        self.discounts[i] = t.discount;
        if let Some((p, tree, max)) = &mut self.priorities {
            tree.set(i, max.powf(p.alpha));
        }
        self.next = (self.next + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
    }

    /// `batch` transitions: uniformly, or by priority with importance weights for `beta`.
    ///
    /// # Panics
    /// When the buffer is empty.
    pub fn sample(&self, batch: usize, beta: f64, rng: &mut Rng) -> SampledBatch {
        assert!(!self.is_empty(), "sampling from an empty replay buffer");
        let (indices, weights) = match &self.priorities {
            None => (
                (0..batch).map(|_| rng.below(self.len)).collect::<Vec<_>>(),
                vec![1.0; batch],
            ),
            Some((_, tree, _)) => {
                let indices = tree.sample(batch, rng);
                let total = tree.total();
                let n = self.len as f64;
                // w_i = (N P(i))^-β, normalised by the largest weight in the batch.
                let raw: Vec<f64> = indices
                    .iter()
                    .map(|&i| (n * tree.get(i) / total).powf(-beta))
                    .collect();
                let max = raw.iter().copied().fold(0.0, f64::max);
                let weights = raw.iter().map(|w| (w / max) as f32).collect();
                (indices, weights)
            }
        };
        let o = self.obs_dim;
        let mut out = SampledBatch {
            obs: Vec::with_capacity(batch * o),
            next_obs: Vec::with_capacity(batch * o),
            weights,
            ..SampledBatch::default()
        };
        for &i in &indices {
            out.obs.extend_from_slice(&self.obs[i * o..(i + 1) * o]);
            out.next_obs
                .extend_from_slice(&self.next_obs[i * o..(i + 1) * o]);
            out.actions.push(self.actions[i]);
            out.rewards.push(self.rewards[i]);
            out.discounts.push(self.discounts[i]);
        }
        out.indices = indices;
        out
    }

    /// Sets the priorities of sampled slots from their TD errors: `(|δ| + ε)^α`.
    pub fn update_priorities(&mut self, indices: &[usize], td_errors: &[f32]) {
        if let Some((p, tree, max)) = &mut self.priorities {
            for (&i, &d) in indices.iter().zip(td_errors) {
                let priority = d.abs() as f64 + p.epsilon;
                *max = max.max(priority);
                tree.set(i, priority.powf(p.alpha));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(x: f32) -> ([f32; 2], [f32; 2]) {
        ([x, -x], [x + 1.0, -x - 1.0])
    }

    #[test]
    fn memory_stays_bounded_at_capacity_and_the_oldest_go_first() {
        let mut buf = ReplayBuffer::new(100, 2, None);
        let bytes = buf.memory_bytes();
        assert_eq!(bytes, 4 * (100 * 2 * 2 + 3 * 100));
        for k in 0..1000 {
            let (obs, next) = t(k as f32);
            buf.push(&Transition {
                obs: &obs,
                action: (k % 2) as u32,
                reward: k as f32,
                discount: 0.99,
                next_obs: &next,
            });
            assert!(buf.len() <= 100);
        }
        assert_eq!(buf.len(), 100);
        assert_eq!(buf.memory_bytes(), bytes, "no growth after construction");
        // Only the last 100 transitions remain, each consistent across the arrays.
        let s = buf.sample(500, 0.4, &mut Rng::new(1));
        for (b, &r) in s.rewards.iter().enumerate() {
            assert!((900.0..1000.0).contains(&r));
            assert_eq!(s.obs[2 * b], r);
            assert_eq!(s.next_obs[2 * b], r + 1.0);
            assert_eq!(s.actions[b], (r as u32) % 2);
        }
        assert!(s.weights.iter().all(|&w| w == 1.0));
    }

    #[test]
    fn priorities_follow_td_errors_and_weights_correct_for_them() {
        let p = Prioritized {
            alpha: 1.0,
            epsilon: 0.0,
        };
        let mut buf = ReplayBuffer::new(4, 2, Some(p));
        for k in 0..4 {
            let (obs, next) = t(k as f32);
            buf.push(&Transition {
                obs: &obs,
                action: 0,
                reward: k as f32,
                discount: 0.0,
                next_obs: &next,
            });
        }
        // TD errors 1, 1, 1, 3: slot 3 is sampled half the time.
        buf.update_priorities(&[0, 1, 2, 3], &[1.0, -1.0, 1.0, 3.0]);
        let mut rng = Rng::new(3);
        let s = buf.sample(4000, 1.0, &mut rng);
        let share = s.indices.iter().filter(|&&i| i == 3).count() as f64 / 4000.0;
        assert!((share - 0.5).abs() < 0.02, "{share}");
        // β = 1: w ∝ 1/P(i); P(3) = 1/2, P(others) = 1/6 → w(3) = 1/3 of the others'.
        for (k, &i) in s.indices.iter().enumerate() {
            let want = if i == 3 { 1.0 / 3.0 } else { 1.0 };
            assert!((s.weights[k] - want).abs() < 1e-6);
        }
    }
}
