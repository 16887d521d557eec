//! Distributed DQN's unit of experience: a batch of n-step transitions, and its validation at
//! the learner's boundary.

use thiserror::Error;

use crate::codec::{decode_f32, encode_f32};
use crate::obs::{ObsError, ObsFormat, Observations};
use crate::proto;

/// A batch of n-step transitions in host memory (`[B, ...]` arrays).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TransitionBatch {
    /// Sender.
    pub actor_id: u32,
    /// Parameter version the actions were chosen with.
    pub version: u64,
    /// `[B, O]`.
    pub obs: Observations,
    /// `[B]` action indices.
    pub actions: Vec<u32>,
    /// `[B]` n-step discounted rewards.
    pub rewards: Vec<f32>,
    /// `[B]` `γ^m`, or 0 after a terminal state.
    pub discounts: Vec<f32>,
    /// `[B, O]`.
    pub next_obs: Observations,
    /// Episodes finished while collecting.
    pub episode_returns: Vec<f32>,
    /// Their lengths.
    pub episode_lengths: Vec<u32>,
}

/// Why a transition batch was refused.
#[derive(Debug, Error, PartialEq)]
pub enum TransitionError {
    /// A field has the wrong length.
    #[error("transition field `{field}` has {got} bytes, expected {want}")]
    Length {
        /// The field.
        field: &'static str,
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// A value is NaN, infinite, beyond ±`MAX_ABS_VALUE` or out of range.
    #[error("transition field `{field}` holds an invalid value at index {index}")]
    Value {
        /// The field.
        field: &'static str,
        /// Flat index.
        index: usize,
    },
    /// Episode statistics are inconsistent.
    #[error("transition episode statistics are inconsistent")]
    Episodes,
}

impl TransitionBatch {
    /// Transitions in the batch.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Validates a batch of `batch` transitions with `obs_dim` observations in `format` and
    /// `num_actions` discrete actions.
    pub fn from_proto(
        msg: &proto::TransitionBatch,
        batch: usize,
        (obs_dim, format): (usize, ObsFormat),
        num_actions: usize,
    ) -> Result<Self, TransitionError> {
        let observations = |field: &'static str, data: &[u8]| {
            Observations::decode(format, data, batch * obs_dim).map_err(|e| match e {
                ObsError::Length { got, want } => TransitionError::Length { field, got, want },
                ObsError::NotFinite { index } => TransitionError::Value { field, index },
            })
        };
        let floats = |field: &'static str, data: &[u8], len: usize| {
            let v = decode_f32(data, len).ok_or(TransitionError::Length {
                field,
                got: data.len(),
                want: len * 4,
            })?;
            match crate::codec::first_implausible(&v) {
                Some(index) => Err(TransitionError::Value { field, index }),
                None => Ok(v),
            }
        };
        let actions_f = floats("actions", &msg.actions, batch)?;
        if let Some(index) = actions_f
            .iter()
            .position(|&a| a < 0.0 || a.fract() != 0.0 || a as usize >= num_actions)
        {
            return Err(TransitionError::Value {
                field: "actions",
                index,
            });
        }
        let discounts = floats("discounts", &msg.discounts, batch)?;
        if let Some(index) = discounts.iter().position(|d| !(0.0..=1.0).contains(d)) {
            return Err(TransitionError::Value {
                field: "discounts",
                index,
            });
        }
        if msg.episode_returns.len() != msg.episode_lengths.len()
            || msg.episode_returns.len() > batch
            || msg
                .episode_returns
                .iter()
                .any(|r| !(r.is_finite() && r.abs() < 1e12))
        {
            return Err(TransitionError::Episodes);
        }
        Ok(Self {
            actor_id: msg.actor_id,
            version: msg.version,
            obs: observations("observations", &msg.observations)?,
            actions: actions_f.iter().map(|&a| a as u32).collect(),
            rewards: floats("rewards", &msg.rewards, batch)?,
            discounts,
            next_obs: observations("next_observations", &msg.next_observations)?,
            episode_returns: msg.episode_returns.clone(),
            episode_lengths: msg.episode_lengths.clone(),
        })
    }

    /// The wire form.
    pub fn to_proto(&self, model_fingerprint: &str) -> proto::TransitionBatch {
        let actions: Vec<f32> = self.actions.iter().map(|&a| a as f32).collect();
        proto::TransitionBatch {
            actor_id: self.actor_id,
            model_fingerprint: model_fingerprint.to_string(),
            version: self.version,
            observations: self.obs.encode(),
            actions: encode_f32(&actions),
            rewards: encode_f32(&self.rewards),
            discounts: encode_f32(&self.discounts),
            next_observations: self.next_obs.encode(),
            episode_returns: self.episode_returns.clone(),
            episode_lengths: self.episode_lengths.clone(),
            actor_stats: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F32: (usize, ObsFormat) = (2, ObsFormat::F32);

    /// Two transitions of 2-value vector observations.
    fn sample() -> TransitionBatch {
        TransitionBatch {
            actor_id: 1,
            version: 3,
            obs: Observations::F32(vec![0.0, 1.0, 2.0, 3.0]),
            actions: vec![1, 0],
            rewards: vec![1.0, 2.9701],
            discounts: vec![0.0, 0.970299],
            next_obs: Observations::F32(vec![4.0, 5.0, 6.0, 7.0]),
            episode_returns: vec![9.0],
            episode_lengths: vec![9],
        }
    }

    #[test]
    fn image_transitions_travel_as_bytes() {
        let b = TransitionBatch {
            obs: Observations::U8(vec![0, 255, 7, 9]),
            next_obs: Observations::U8(vec![1, 2, 3, 4]),
            ..sample()
        };
        let msg = b.to_proto("fp");
        assert_eq!(msg.observations.len(), 4);
        let u8s = (2, ObsFormat::U8);
        assert_eq!(TransitionBatch::from_proto(&msg, 2, u8s, 2).unwrap(), b);
        let mut short = msg;
        short.next_observations = short.next_observations.slice(1..);
        assert_eq!(
            TransitionBatch::from_proto(&short, 2, u8s, 2),
            Err(TransitionError::Length {
                field: "next_observations",
                got: 3,
                want: 4
            })
        );
    }

    #[test]
    fn transition_batches_round_trip_and_bad_ones_are_refused() {
        let b = sample();
        let msg = b.to_proto("fp");
        assert_eq!(TransitionBatch::from_proto(&msg, 2, F32, 2).unwrap(), b);
        assert!(matches!(
            TransitionBatch::from_proto(&msg, 2, F32, 1),
            Err(TransitionError::Value {
                field: "actions",
                index: 0
            })
        ));
        assert!(matches!(
            TransitionBatch::from_proto(&msg, 3, F32, 2),
            Err(TransitionError::Length { .. })
        ));
        let mut bad = msg.clone();
        bad.discounts = encode_f32(&[0.5, 1.5]);
        assert!(TransitionBatch::from_proto(&bad, 2, F32, 2).is_err());
        let mut bad = msg;
        bad.next_observations = encode_f32(&[0.0, f32::NAN, 0.0, 0.0]);
        assert!(matches!(
            TransitionBatch::from_proto(&bad, 2, F32, 2),
            Err(TransitionError::Value {
                field: "next_observations",
                index: 1
            })
        ));
    }
}
