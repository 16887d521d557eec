//! IMPALA's training batches: rollouts regrouped into trajectories (one per environment of each
//! rollout, `T` steps in time order, the unit V-trace and minibatches work on), assembled on
//! the batcher thread so that the trainer only picks up ready batches.

use crossbeam_channel::{Receiver, Sender};
use shoal_common::normalize::NormStats;
use shoal_common::obs::Observations;
use shoal_common::rollout::Rollout;

/// What the run counts of one rollout in a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutInfo {
    /// Sender.
    pub actor_id: u32,
    /// The version it was made with.
    pub version: u64,
    /// Its steps (T × N).
    pub env_steps: u64,
    /// Episodes it finished.
    pub episode_returns: Vec<f32>,
    /// Their lengths.
    pub episode_lengths: Vec<u32>,
    /// Its raw statistics.
    pub moments: NormStats,
}

/// A batch of `C` trajectories of `T` steps each, trajectory-major (`[C, T, ...]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrajectoryBatch {
    /// T.
    pub t_len: usize,
    /// O.
    pub obs_dim: usize,
    /// The width of an action (1 for categorical).
    pub action_width: usize,
    /// The rollouts, in the order they were taken.
    pub rollouts: Vec<RolloutInfo>,
    /// `[C]`: which rollout each trajectory comes from.
    pub rollout_of: Vec<usize>,
    /// `[C, T, O]`.
    pub obs: Observations,
    /// `[C, T, A]`: action indices (categorical) or vectors (Gaussian).
    pub actions: Vec<f32>,
    /// `[C, T]`.
    pub rewards: Vec<f32>,
    /// `[C, T]`: log μ(a_t | x_t) of the behaviour policy.
    pub behaviour_log_probs: Vec<f32>,
    /// `[C, T]`.
    pub terminated: Vec<bool>,
    /// `[C, T]`.
    pub truncated: Vec<bool>,
    /// `[C, O]`: the observation after each trajectory's last step.
    pub bootstrap_obs: Observations,
    /// `[K, O]`: the final observation of every truncated step, in `[C, T]` order.
    pub truncation_obs: Observations,
}

impl TrajectoryBatch {
    /// Regroups `rollouts` (validated, all of one shape, each with its final observations).
    pub fn from_rollouts(rollouts: Vec<Rollout>) -> Self {
        let Some(first) = rollouts.first() else {
            return Self::default();
        };
        let (t_len, n, o) = (
            first.shape.n_steps,
            first.shape.num_envs,
            first.shape.obs_dim,
        );
        let w = first.shape.action.action_width();
        let format = first.shape.obs_format;
        let c = rollouts.len() * n;
        let mut b = TrajectoryBatch {
            t_len,
            obs_dim: o,
            action_width: w,
            rollouts: Vec::with_capacity(rollouts.len()),
            rollout_of: Vec::with_capacity(c),
            obs: Observations::with_capacity(format, c * t_len * o),
            actions: Vec::with_capacity(c * t_len * w),
            rewards: Vec::with_capacity(c * t_len),
            behaviour_log_probs: Vec::with_capacity(c * t_len),
            terminated: Vec::with_capacity(c * t_len),
            truncated: Vec::with_capacity(c * t_len),
            bootstrap_obs: Observations::with_capacity(format, c * o),
            truncation_obs: Observations::with_capacity(format, 0),
        };
        for (index, r) in rollouts.into_iter().enumerate() {
            let finals = r
                .final_obs
                .as_ref()
                .expect("admission requires the final observations");
            // Truncation rows arrive in [T, N] order; trajectories want them in [N, T] order.
            let mut cut_rows = vec![usize::MAX; t_len * n];
            let mut k = 0;
            for (i, &cut) in r.truncated.iter().enumerate() {
                if cut {
                    cut_rows[i] = k;
                    k += 1;
                }
            }
            for env in 0..n {
                b.rollout_of.push(index);
                for t in 0..t_len {
                    let i = t * n + env;
                    b.obs.extend_from(&r.obs, i * o..(i + 1) * o);
                    b.actions.extend_from_slice(&r.actions[i * w..(i + 1) * w]);
                    b.rewards.push(r.rewards[i]);
                    b.behaviour_log_probs.push(r.log_probs[i]);
                    b.terminated.push(r.terminated[i]);
                    b.truncated.push(r.truncated[i]);
                    if r.truncated[i] {
                        let row = cut_rows[i];
                        b.truncation_obs
                            .extend_from(&finals.truncation, row * o..(row + 1) * o);
                    }
                }
                b.bootstrap_obs
                    .extend_from(&finals.bootstrap, env * o..(env + 1) * o);
            }
            b.rollouts.push(RolloutInfo {
                actor_id: r.actor_id,
                version: r.version,
                env_steps: r.env_steps() as u64,
                episode_returns: r.episode_returns,
                episode_lengths: r.episode_lengths,
                moments: r.moments,
            });
        }
        b
    }

    /// Trajectories.
    pub fn trajectories(&self) -> usize {
        self.rollout_of.len()
    }

    /// Samples (C × T).
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.rewards.is_empty()
    }
}

/// The batcher thread's body: takes rollouts as admission queued them, `per_batch` at a
/// time, and hands the trainer each batch ready to train on. Ends when admission's queue
/// closes (the batch in progress is dropped: the run is ending), when the trainer is gone, or
/// when `stop`'s sender is dropped (the run that owns it ended).
pub(crate) fn batcher(
    rollouts: Receiver<Rollout>,
    batches: Sender<TrajectoryBatch>,
    per_batch: usize,
    stop: Receiver<()>,
) {
    let mut pending = Vec::with_capacity(per_batch);
    loop {
        let rollout = crossbeam_channel::select! {
            recv(rollouts) -> r => match r {
                Ok(r) => r,
                Err(_) => return,
            },
            recv(stop) -> _ => return,
        };
        pending.push(rollout);
        if pending.len() == per_batch {
            let batch = TrajectoryBatch::from_rollouts(std::mem::take(&mut pending));
            if batches.send(batch).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_common::model::ActionHead;
    use shoal_common::obs::ObsFormat;
    use shoal_common::rollout::{FinalObservations, RolloutShape};

    /// A rollout whose every number says where it came from: observation `(r, t, n)` as
    /// `100 r + 10 t + n`.
    fn rollout(r: u32) -> Rollout {
        let shape = RolloutShape {
            n_steps: 3,
            num_envs: 2,
            obs_dim: 1,
            obs_format: ObsFormat::F32,
            action: ActionHead::Categorical(2),
        };
        let code = |t: usize, n: usize| (100 * r as usize + 10 * t + n) as f32;
        let cells: Vec<(usize, usize)> = (0..3).flat_map(|t| (0..2).map(move |n| (t, n))).collect();
        // Env 1 is truncated after step 1, env 0 terminated after step 2.
        let truncated: Vec<bool> = cells.iter().map(|&(t, n)| (t, n) == (1, 1)).collect();
        let terminated: Vec<bool> = cells.iter().map(|&(t, n)| (t, n) == (2, 0)).collect();
        Rollout {
            actor_id: r,
            version: 5 + r as u64,
            shape,
            obs: Observations::F32(cells.iter().map(|&(t, n)| code(t, n)).collect()),
            actions: cells.iter().map(|&(_, n)| n as f32).collect(),
            rewards: cells.iter().map(|&(t, n)| code(t, n) + 0.5).collect(),
            terminated,
            truncated,
            log_probs: cells.iter().map(|&(t, n)| -code(t, n)).collect(),
            values: vec![0.0; 6],
            bootstrap_values: vec![0.0; 2],
            truncation_values: vec![0.0; 6],
            episode_returns: vec![1.0, 2.0],
            episode_lengths: vec![1, 2],
            moments: NormStats::new(1),
            final_obs: Some(FinalObservations {
                bootstrap: Observations::F32(vec![-1.0 - r as f32, -2.0 - r as f32]),
                truncation: Observations::F32(vec![code(1, 1) + 0.25]),
            }),
        }
    }

    #[test]
    fn rollouts_become_trajectories_in_time_order() {
        let b = TrajectoryBatch::from_rollouts(vec![rollout(0), rollout(1)]);
        assert_eq!((b.trajectories(), b.len(), b.t_len), (4, 12, 3));
        assert_eq!(b.rollout_of, vec![0, 0, 1, 1]);
        // Trajectory 1 is rollout 0's env 1; trajectory 2 is rollout 1's env 0.
        let obs = b.obs.to_f32();
        assert_eq!(obs[3..6], [1.0, 11.0, 21.0]);
        assert_eq!(obs[6..9], [100.0, 110.0, 120.0]);
        assert_eq!(b.behaviour_log_probs[6..9], [-100.0, -110.0, -120.0]);
        assert_eq!(b.actions[3..6], [1.0, 1.0, 1.0]);
        assert_eq!(b.truncated[3..6], [false, true, false]);
        assert_eq!(b.terminated[0..3], [false, false, true]);
        assert_eq!(b.bootstrap_obs.to_f32(), vec![-1.0, -2.0, -2.0, -3.0]);
        assert_eq!(b.truncation_obs.to_f32(), vec![11.25, 111.25]);
        assert_eq!(b.rollouts[1].version, 6);
        assert_eq!(b.rollouts[1].env_steps, 6);
    }

    #[test]
    fn the_batcher_hands_over_full_batches_and_ends_with_its_queue() {
        let (tx, rx) = crossbeam_channel::bounded(8);
        let (btx, brx) = crossbeam_channel::bounded(8);
        for r in 0..5 {
            tx.send(rollout(r)).unwrap();
        }
        drop(tx);
        let (_stop, stop) = crossbeam_channel::bounded(0);
        batcher(rx, btx, 2, stop);
        let got: Vec<TrajectoryBatch> = brx.iter().collect();
        assert_eq!(got.len(), 2, "the fifth rollout never fills a batch");
        assert_eq!(got[1].rollouts[0].actor_id, 2);
    }
}
