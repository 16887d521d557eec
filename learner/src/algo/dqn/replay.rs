//! The learner's replay buffer: n-step transitions in host memory as struct-of-arrays, a fixed
//! capacity (the oldest are overwritten), uniform or prioritised sampling (Schaul et al. 2016:
//! `P(i) = p_i^α / Σ p^α`, importance weights `(N·P(i))^−β / max w`, priorities from TD errors).

use std::io::{self, Read, Write};

use shoal_common::obs::{ObsFormat, Observations};
use shoal_common::rng::Rng;

use super::sum_tree::SumTree;

/// One n-step transition as actors send it: row `row` of a batch's observation arrays.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition<'a> {
    /// Which row of `obs` and `next_obs`.
    pub row: usize,
    /// `s_t` is row `row`, `[O]`.
    pub obs: &'a Observations,
    /// `a_t`.
    pub action: u32,
    /// `Σ_{k<n} γ^k r_{t+k}`.
    pub reward: f32,
    /// `γ^n` when the return bootstraps from `next_obs`, 0 when the episode terminated within
    /// the n steps.
    pub discount: f32,
    /// `s_{t+n}` (or the last observation before the episode ended) is row `row`, `[O]`.
    pub next_obs: &'a Observations,
}

/// A sampled batch, laid out for one tensor per field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampledBatch {
    /// Slots sampled (for priority updates).
    pub indices: Vec<usize>,
    /// `[B, O]`.
    pub obs: Observations,
    /// `[B]`.
    pub actions: Vec<u32>,
    /// `[B]`.
    pub rewards: Vec<f32>,
    /// `[B]`.
    pub discounts: Vec<f32>,
    /// `[B, O]`.
    pub next_obs: Observations,
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

/// A saved buffer's first bytes, by observation format (`f32` buffers keep the first
/// version's).
fn magic(format: ObsFormat) -> &'static [u8; 8] {
    match format {
        ObsFormat::F32 => b"SHOALRB1",
        ObsFormat::U8 => b"SHOALRB8",
    }
}

/// A bounded replay buffer.
#[derive(Debug, Clone)]
pub struct ReplayBuffer {
    capacity: usize,
    obs_dim: usize,
    len: usize,
    next: usize,
    obs: Observations,
    actions: Vec<u32>,
    rewards: Vec<f32>,
    discounts: Vec<f32>,
    next_obs: Observations,
    priorities: Option<(Prioritized, SumTree, f64)>,
}

impl ReplayBuffer {
    /// Room for `capacity` transitions of `obs_dim` observations in `format` (images as bytes);
    /// prioritised when `prioritized` is given. All memory is allocated here, once.
    pub fn new(
        capacity: usize,
        (obs_dim, format): (usize, ObsFormat),
        prioritized: Option<Prioritized>,
    ) -> Self {
        Self {
            capacity,
            obs_dim,
            len: 0,
            next: 0,
            obs: Observations::zeros(format, capacity * obs_dim),
            actions: vec![0; capacity],
            rewards: vec![0.0; capacity],
            discounts: vec![0.0; capacity],
            next_obs: Observations::zeros(format, capacity * obs_dim),
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

    /// Bytes of host memory the buffer's arrays take (constant after [`ReplayBuffer::new`]):
    /// per transition `2·O` observation values (one byte each for images, four otherwise) and
    /// 12 bytes of action, reward and discount, plus 8 of priority when prioritised.
    pub fn memory_bytes(&self) -> usize {
        self.obs.memory_bytes()
            + self.next_obs.memory_bytes()
            + 4 * (self.actions.capacity() + self.rewards.capacity() + self.discounts.capacity())
    }

    /// Adds one transition, overwriting the oldest when full. New transitions get the highest
    /// priority seen so far, so each is sampled at least once soon.
    pub fn push(&mut self, t: &Transition<'_>) {
        let (i, o) = (self.next, self.obs_dim);
        let row = t.row * o..(t.row + 1) * o;
        self.obs.copy_from(i * o, t.obs, row.clone());
        self.next_obs.copy_from(i * o, t.next_obs, row);
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
        let format = self.obs.format();
        let mut out = SampledBatch {
            obs: Observations::with_capacity(format, batch * o),
            next_obs: Observations::with_capacity(format, batch * o),
            weights,
            ..SampledBatch::default()
        };
        for &i in &indices {
            out.obs.extend_from(&self.obs, i * o..(i + 1) * o);
            out.next_obs.extend_from(&self.next_obs, i * o..(i + 1) * o);
            out.actions.push(self.actions[i]);
            out.rewards.push(self.rewards[i]);
            out.discounts.push(self.discounts[i]);
        }
        out.indices = indices;
        out
    }

    /// Writes the buffer's contents, for a checkpoint ([`ReplayBuffer::read_from`] reads them
    /// back): a header, then each array little-endian, then the priorities when prioritised.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(magic(self.obs.format()))?;
        for v in [self.capacity, self.obs_dim, self.len, self.next] {
            w.write_all(&(v as u64).to_le_bytes())?;
        }
        w.write_all(&[self.priorities.is_some() as u8])?;
        self.obs.write_to(w)?;
        for array in [&self.rewards, &self.discounts] {
            for x in array.iter() {
                w.write_all(&x.to_le_bytes())?;
            }
        }
        self.next_obs.write_to(w)?;
        for a in &self.actions {
            w.write_all(&a.to_le_bytes())?;
        }
        if let Some((_, tree, max)) = &self.priorities {
            w.write_all(&max.to_le_bytes())?;
            for i in 0..self.capacity {
                w.write_all(&tree.get(i).to_le_bytes())?;
            }
        }
        Ok(())
    }

    /// Replaces the contents with what [`ReplayBuffer::write_to`] wrote; the capacity,
    /// observation size and kind of sampling must match this buffer's.
    pub fn read_from(&mut self, r: &mut impl Read) -> io::Result<()> {
        let invalid = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        if &magic != self::magic(self.obs.format()) {
            return Err(invalid("not a shoal replay buffer"));
        }
        let mut word = [0u8; 8];
        let mut header = [0usize; 4];
        for h in &mut header {
            r.read_exact(&mut word)?;
            *h = u64::from_le_bytes(word) as usize;
        }
        let [capacity, obs_dim, len, next] = header;
        let mut flag = [0u8; 1];
        r.read_exact(&mut flag)?;
        if capacity != self.capacity
            || obs_dim != self.obs_dim
            || (flag[0] == 1) != self.priorities.is_some()
            || len > capacity
            || next >= capacity.max(1)
        {
            return Err(invalid(
                "the saved buffer's capacity, observation size or sampling differs from the run's",
            ));
        }
        self.obs.read_from(r)?;
        read_f32s(r, &mut self.rewards)?;
        read_f32s(r, &mut self.discounts)?;
        self.next_obs.read_from(r)?;
        let mut b = [0u8; 4];
        for a in &mut self.actions {
            r.read_exact(&mut b)?;
            *a = u32::from_le_bytes(b);
        }
        if let Some((_, tree, max)) = &mut self.priorities {
            r.read_exact(&mut word)?;
            *max = f64::from_le_bytes(word);
            for i in 0..capacity {
                r.read_exact(&mut word)?;
                let p = f64::from_le_bytes(word);
                if !(p.is_finite() && p >= 0.0) {
                    return Err(invalid(
                        "a saved priority is not a finite non-negative number",
                    ));
                }
                tree.set(i, p);
            }
        }
        self.len = len;
        self.next = next;
        Ok(())
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

/// Fills `values` with little-endian `f32`s from `r`.
fn read_f32s(r: &mut impl Read, values: &mut [f32]) -> io::Result<()> {
    let mut b = [0u8; 4];
    for x in values {
        r.read_exact(&mut b)?;
        *x = f32::from_le_bytes(b);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const F32: (usize, ObsFormat) = (2, ObsFormat::F32);

    fn t(x: f32) -> (Observations, Observations) {
        (
            Observations::F32(vec![x, -x]),
            Observations::F32(vec![x + 1.0, -x - 1.0]),
        )
    }

    #[test]
    fn memory_stays_bounded_at_capacity_and_the_oldest_go_first() {
        let mut buf = ReplayBuffer::new(100, F32, None);
        let bytes = buf.memory_bytes();
        assert_eq!(bytes, 4 * (100 * 2 * 2 + 3 * 100));
        for k in 0..1000 {
            let (obs, next) = t(k as f32);
            buf.push(&Transition {
                row: 0,
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
        let (obs, next) = (s.obs.to_f32(), s.next_obs.to_f32());
        for (b, &r) in s.rewards.iter().enumerate() {
            assert!((900.0..1000.0).contains(&r));
            assert_eq!(obs[2 * b], r);
            assert_eq!(next[2 * b], r + 1.0);
            assert_eq!(s.actions[b], (r as u32) % 2);
        }
        assert!(s.weights.iter().all(|&w| w == 1.0));
    }

    #[test]
    fn images_are_stored_as_bytes_and_saved_as_such() {
        let image = (400, ObsFormat::U8);
        let mut buf = ReplayBuffer::new(1000, image, None);
        // Two 400-pixel observations per transition at one byte each, 12 bytes of scalars.
        assert_eq!(buf.memory_bytes(), 1000 * (2 * 400 + 12));
        let f32s = ReplayBuffer::new(1000, (400, ObsFormat::F32), None);
        assert_eq!(f32s.memory_bytes(), 1000 * (2 * 1600 + 12));
        let obs = Observations::U8((0..800).map(|i| (i % 256) as u8).collect());
        let next = Observations::U8(vec![255; 800]);
        for row in [1, 0, 1] {
            buf.push(&Transition {
                row,
                obs: &obs,
                action: 2,
                reward: 1.0,
                discount: 0.9,
                next_obs: &next,
            });
        }
        let s = buf.sample(8, 0.4, &mut Rng::new(2));
        let Observations::U8(sampled) = &s.obs else {
            panic!("images sample as bytes")
        };
        for row in sampled.chunks(400) {
            assert!(row[0] == 0 || row[0] == (400 % 256) as u8);
        }
        let mut bytes = Vec::new();
        buf.write_to(&mut bytes).unwrap();
        let mut back = ReplayBuffer::new(1000, image, None);
        back.read_from(&mut bytes.as_slice()).unwrap();
        assert_eq!(back.sample(8, 0.4, &mut Rng::new(2)), s);
        // A vector buffer of the same size does not read it.
        let mut vectors = ReplayBuffer::new(1000, (400, ObsFormat::F32), None);
        assert!(vectors.read_from(&mut bytes.as_slice()).is_err());
    }

    #[test]
    fn a_saved_buffer_reads_back_identical() {
        let p = Prioritized {
            alpha: 0.6,
            epsilon: 1e-6,
        };
        let mut buf = ReplayBuffer::new(8, F32, Some(p));
        for k in 0..11 {
            let (obs, next) = t(k as f32);
            buf.push(&Transition {
                row: 0,
                obs: &obs,
                action: k % 3,
                reward: k as f32,
                discount: 0.9,
                next_obs: &next,
            });
        }
        buf.update_priorities(&[1, 4], &[2.0, -0.5]);
        let mut bytes = Vec::new();
        buf.write_to(&mut bytes).unwrap();
        let mut back = ReplayBuffer::new(8, F32, Some(p));
        back.read_from(&mut bytes.as_slice()).unwrap();
        let (a, b) = (
            buf.sample(64, 0.5, &mut Rng::new(9)),
            back.sample(64, 0.5, &mut Rng::new(9)),
        );
        assert_eq!(a, b);
        assert_eq!((back.len(), back.next), (buf.len(), buf.next));
        // Another shape is refused, as are truncated bytes.
        let mut other = ReplayBuffer::new(16, F32, Some(p));
        assert!(other.read_from(&mut bytes.as_slice()).is_err());
        let mut uniform = ReplayBuffer::new(8, F32, None);
        assert!(uniform.read_from(&mut bytes.as_slice()).is_err());
        assert!(back.read_from(&mut &bytes[..bytes.len() - 3]).is_err());
    }

    #[test]
    fn priorities_follow_td_errors_and_weights_correct_for_them() {
        let p = Prioritized {
            alpha: 1.0,
            epsilon: 0.0,
        };
        let mut buf = ReplayBuffer::new(4, F32, Some(p));
        for k in 0..4 {
            let (obs, next) = t(k as f32);
            buf.push(&Transition {
                row: 0,
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
