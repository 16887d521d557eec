//! shoal's spaces as dm_env_rpc specs: what `shoal env-server` announces for a world (the
//! action, the observation and the `reward` observation), read back by [`super::specs`].

use std::collections::HashMap;

use crate::env::Space;
use crate::env_rpc_proto::dm_env_rpc::v1::{
    ActionObservationSpecs, DataType, TensorSpec, tensor as payload, tensor_spec,
};

use super::specs::{ACTION, ACTION_UID, OBSERVATION, OBSERVATION_UID, REWARD, REWARD_UID};

/// The specs `shoal env-server` announces for an environment with these spaces: the action
/// (`INT32` scalar in `0..n`, or `FLOAT` vector within its bounds), the observation (`UINT8`
/// `[C, H, W]` pixels, or a `FLOAT` vector within its bounds) and the `reward` (`DOUBLE`
/// scalar within the registry's reward range).
pub(crate) fn announce(
    observation: &Space,
    action: &Space,
    reward_range: (f64, f64),
) -> ActionObservationSpecs {
    let action_spec = match action {
        Space::Discrete(n) => TensorSpec {
            name: ACTION.into(),
            shape: vec![],
            dtype: DataType::Int32 as i32,
            min: Some(int32_value(0)),
            max: Some(int32_value(*n as i32 - 1)),
        },
        Space::Box { low, high } => float_spec(ACTION, low, high),
        Space::Image { .. } | Space::Tokens { .. } => {
            unreachable!("no shoal environment acts with images or token sequences")
        }
    };
    let observation_spec = match observation {
        Space::Image {
            channels,
            height,
            width,
        } => TensorSpec {
            name: OBSERVATION.into(),
            shape: vec![*channels as i32, *height as i32, *width as i32],
            dtype: DataType::Uint8 as i32,
            min: Some(uint8_value(0)),
            max: Some(uint8_value(255)),
        },
        // The ids (each at most V − 1), then the text's length (at most L): a byte each
        // (a validated model has V ≤ 256 and L ≤ 255). The bounds are what marks a token
        // sequence for the client.
        Space::Tokens { length, vocab } => {
            let mut max = vec![(*vocab - 1) as u8; *length];
            max.push(*length as u8);
            TensorSpec {
                name: OBSERVATION.into(),
                shape: vec![*length as i32 + 1],
                dtype: DataType::Uint8 as i32,
                min: Some(uint8_value(0)),
                max: Some(tensor_spec::Value {
                    payload: Some(tensor_spec::value::Payload::Uint8s(payload::Uint8Array {
                        array: max.into(),
                    })),
                }),
            }
        }
        Space::Box { low, high } => float_spec(OBSERVATION, low, high),
        Space::Discrete(n) => TensorSpec {
            name: OBSERVATION.into(),
            shape: vec![],
            dtype: DataType::Int32 as i32,
            min: Some(int32_value(0)),
            max: Some(int32_value(*n as i32 - 1)),
        },
    };
    let (low, high) = reward_range;
    let bound = |x: f64| {
        x.is_finite().then(|| tensor_spec::Value {
            payload: Some(tensor_spec::value::Payload::Doubles(payload::DoubleArray {
                array: vec![x],
            })),
        })
    };
    let reward_spec = TensorSpec {
        name: REWARD.into(),
        shape: vec![],
        dtype: DataType::Double as i32,
        min: bound(low),
        max: bound(high),
    };
    ActionObservationSpecs {
        actions: HashMap::from([(ACTION_UID, action_spec)]),
        observations: HashMap::from([
            (OBSERVATION_UID, observation_spec),
            (REWARD_UID, reward_spec),
        ]),
    }
}

fn float_spec(name: &str, low: &[f64], high: &[f64]) -> TensorSpec {
    let value = |v: &[f64]| tensor_spec::Value {
        payload: Some(tensor_spec::value::Payload::Floats(payload::FloatArray {
            array: v.iter().map(|&x| x as f32).collect(),
        })),
    };
    TensorSpec {
        name: name.into(),
        shape: vec![low.len() as i32],
        dtype: DataType::Float as i32,
        min: Some(value(low)),
        max: Some(value(high)),
    }
}

fn int32_value(x: i32) -> tensor_spec::Value {
    tensor_spec::Value {
        payload: Some(tensor_spec::value::Payload::Int32s(payload::Int32Array {
            array: vec![x],
        })),
    }
}

pub(crate) fn uint8_value(x: u8) -> tensor_spec::Value {
    tensor_spec::Value {
        payload: Some(tensor_spec::value::Payload::Uint8s(payload::Uint8Array {
            array: vec![x].into(),
        })),
    }
}
