//! A3C's unit of experience: one actor's flat gradient, and its validation at the boundary.

use thiserror::Error;

use crate::codec::{decode_f32, encode_f32};
use crate::proto;

/// A gradient from an actor, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GradientPush {
    /// Sender.
    pub actor_id: u32,
    /// The parameter version it was computed on.
    pub version: u64,
    /// d loss / d parameters in layout order.
    pub grad: Vec<f32>,
    /// Environment steps behind it.
    pub env_steps: u32,
    /// Returns of episodes finished while collecting it.
    pub episode_returns: Vec<f32>,
    /// Their lengths.
    pub episode_lengths: Vec<u32>,
    /// Policy loss (monitoring).
    pub policy_loss: f32,
    /// Value loss (monitoring).
    pub value_loss: f32,
    /// Mean entropy (monitoring).
    pub entropy: f32,
}

/// Why a gradient from the network was refused.
#[derive(Debug, Error, PartialEq)]
pub enum GradientError {
    /// Wrong number of bytes for the model.
    #[error("gradient has {got} bytes, the model needs {want}")]
    Length {
        /// Received.
        got: usize,
        /// Expected.
        want: usize,
    },
    /// NaN or infinity.
    #[error("gradient holds a non-finite value at index {0}")]
    NotFinite(usize),
    /// Steps or episode statistics out of range.
    #[error("gradient metadata is inconsistent: {0}")]
    Metadata(String),
}

impl GradientPush {
    /// Validates a gradient for a model of `num_floats` parameters whose actors push after
    /// `env_steps` steps each.
    pub fn from_proto(
        msg: &proto::Gradient,
        num_floats: usize,
        env_steps: u32,
    ) -> Result<Self, GradientError> {
        let grad = decode_f32(&msg.data, num_floats).ok_or(GradientError::Length {
            got: msg.data.len(),
            want: num_floats * 4,
        })?;
        // One pass that vectorises first (an early-exit search does not); the index only for a
        // refusal.
        if !grad.iter().fold(true, |ok, g| ok & g.is_finite())
            && let Some(i) = grad.iter().position(|g| !g.is_finite())
        {
            return Err(GradientError::NotFinite(i));
        }
        if msg.env_steps != env_steps {
            return Err(GradientError::Metadata(format!(
                "{} env steps, the run pushes every {env_steps}",
                msg.env_steps
            )));
        }
        if msg.episode_returns.len() != msg.episode_lengths.len()
            || msg.episode_returns.len() > env_steps as usize
        {
            return Err(GradientError::Metadata(
                "episode returns and lengths do not match".into(),
            ));
        }
        let stats = [msg.policy_loss, msg.value_loss, msg.entropy];
        if msg
            .episode_returns
            .iter()
            .chain(&stats)
            .any(|x| !x.is_finite())
        {
            return Err(GradientError::Metadata("non-finite statistics".into()));
        }
        Ok(Self {
            actor_id: msg.actor_id,
            version: msg.version,
            grad,
            env_steps: msg.env_steps,
            episode_returns: msg.episode_returns.clone(),
            episode_lengths: msg.episode_lengths.clone(),
            policy_loss: msg.policy_loss,
            value_loss: msg.value_loss,
            entropy: msg.entropy,
        })
    }

    /// The wire form.
    pub fn to_proto(&self, model_fingerprint: &str) -> proto::Gradient {
        proto::Gradient {
            actor_id: self.actor_id,
            model_fingerprint: model_fingerprint.to_string(),
            version: self.version,
            data: encode_f32(&self.grad),
            env_steps: self.env_steps,
            episode_returns: self.episode_returns.clone(),
            episode_lengths: self.episode_lengths.clone(),
            policy_loss: self.policy_loss,
            value_loss: self.value_loss,
            entropy: self.entropy,
            actor_stats: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> GradientPush {
        GradientPush {
            actor_id: 2,
            version: 5,
            grad: vec![0.5, -1.0, 2.0],
            env_steps: 10,
            episode_returns: vec![12.0],
            episode_lengths: vec![12],
            policy_loss: 0.1,
            value_loss: 2.0,
            entropy: 0.69,
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let g = sample();
        let msg = g.to_proto("fp");
        assert_eq!(GradientPush::from_proto(&msg, 3, 10).unwrap(), g);
        assert!(matches!(
            GradientPush::from_proto(&msg, 4, 10),
            Err(GradientError::Length { got: 12, want: 16 })
        ));
        assert!(matches!(
            GradientPush::from_proto(&msg, 3, 20),
            Err(GradientError::Metadata(_))
        ));
        let mut bad = msg.clone();
        bad.data = encode_f32(&[0.0, f32::NAN, 1.0]);
        assert_eq!(
            GradientPush::from_proto(&bad, 3, 10),
            Err(GradientError::NotFinite(1))
        );
        let mut bad = msg;
        bad.entropy = f32::INFINITY;
        assert!(GradientPush::from_proto(&bad, 3, 10).is_err());
    }
}
