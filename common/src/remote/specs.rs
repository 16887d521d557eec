//! A served world's dm_env_rpc specs as shoal's spaces (what a remote run trains on): one
//! observation, one action, and the `reward` observation the protocol's convention names; the
//! checks of tensors against their specs. What `shoal env-server` announces is in
//! `announce.rs`.

use crate::env::Space;
use crate::env_rpc_proto::dm_env_rpc::v1::{
    ActionObservationSpecs, DataType, Tensor, TensorSpec, tensor_spec,
};

use super::RemoteError;
use super::tensor::{self, Fill, is_numeric};

/// The observation a served world's reward travels in (the dm_env_rpc convention).
pub const REWARD: &str = "reward";
/// The observation a served world's discount travels in (read by no shoal algorithm: the
/// episode's end state says whether to bootstrap).
pub const DISCOUNT: &str = "discount";
/// The name of the one action shoal's server takes.
pub const ACTION: &str = "action";
/// The name of the one observation (besides the reward) shoal's server sends.
pub const OBSERVATION: &str = "observation";
/// The UIDs shoal's server gives them.
pub(crate) const ACTION_UID: u64 = 1;
pub(crate) const OBSERVATION_UID: u64 = 1;
pub(crate) const REWARD_UID: u64 = 2;

/// The largest discrete action space a remote world may have (a bound on the policy head an
/// announced spec can make the learner build).
pub const MAX_DISCRETE_ACTIONS: i64 = 1 << 16;

/// A bound's elements as `f64`; `None` when the bound is not set.
pub(crate) fn bound_values(value: Option<&tensor_spec::Value>) -> Option<Vec<f64>> {
    tensor::numeric_payload!(tensor_spec::value::Payload, value?.payload.as_ref()?)
}

/// A spec's bounds, one per element of its (fixed) shape: a scalar bound is repeated, a missing
/// one is infinite.
pub(crate) fn bounds(spec: &TensorSpec, len: usize) -> Result<(Vec<f64>, Vec<f64>), RemoteError> {
    let expand =
        |value: Option<&tensor_spec::Value>, missing: f64, which: &str| match bound_values(value) {
            None => Ok(vec![missing; len]),
            Some(v) if v.len() == 1 => Ok(vec![v[0]; len]),
            Some(v) if v.len() == len => Ok(v),
            Some(v) => Err(RemoteError::Spec {
                name: spec.name.clone(),
                why: format!("{} {which} values for {len} elements", v.len()),
            }),
        };
    Ok((
        expand(spec.min.as_ref(), f64::NEG_INFINITY, "min")?,
        expand(spec.max.as_ref(), f64::INFINITY, "max")?,
    ))
}

/// A tensor's `len` values, checked against its spec: the type, the shape (a broadcast element
/// fills it), finiteness and the bounds. What the client asks of an observation and the server
/// of an action.
pub(crate) fn checked(t: &Tensor, spec: &TensorSpec, len: usize) -> Result<Vec<f64>, RemoteError> {
    let bad = |why: String| RemoteError::Tensor {
        name: crate::text::bounded(&spec.name),
        why,
    };
    let want = DataType::try_from(spec.dtype).unwrap_or(DataType::InvalidDataType);
    let got = tensor::data_type(t);
    if got != want {
        return Err(bad(format!(
            "{} sent, the spec says {}",
            got.as_str_name(),
            want.as_str_name()
        )));
    }
    let (fill, positions) = tensor::fit_shape(t, &spec.shape, &spec.name)?;
    if positions != len {
        return Err(bad(format!(
            "{positions} values, the spec's shape has {len}"
        )));
    }
    let mut values = tensor::numbers(t).ok_or_else(|| bad("not numbers".into()))?;
    if fill == Fill::Broadcast {
        values = vec![values[0]; len];
    }
    let (low, high) = bounds(spec, len)?;
    for (k, &x) in values.iter().enumerate() {
        if !x.is_finite() {
            return Err(bad(format!("element {k} is {x}")));
        }
        if x < low[k] || x > high[k] {
            return Err(bad(format!(
                "element {k} is {x}, outside the spec's [{}, {}]",
                low[k], high[k]
            )));
        }
    }
    Ok(values)
}

/// How a served world's action is sent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ActionEncoding {
    /// Discrete action `a` travels as the integer `offset + a` of type `dtype`.
    Integer {
        /// The spec's element type.
        dtype: DataType,
        /// The spec's minimum.
        offset: i64,
    },
    /// Continuous actions travel as a vector of `dtype` (`FLOAT` or `DOUBLE`); `scalar` when
    /// the spec's shape is `[]` (one value).
    Real {
        /// The spec's element type.
        dtype: DataType,
        /// Shape `[]` rather than `[A]`.
        scalar: bool,
    },
}

/// What a run needs to know about a served world: the spaces shoal trains on, where each
/// value travels, and the bounds episodes are checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct WorldLayout {
    /// The policy's observation space.
    pub observation_space: Space,
    /// The policy's action space.
    pub action_space: Space,
    /// Smallest and largest reward of one step (infinite where the spec sets no bound).
    pub reward_range: (f64, f64),
    pub(crate) observation_uid: u64,
    pub(crate) observation_spec: TensorSpec,
    pub(crate) reward_uid: Option<u64>,
    pub(crate) action_uid: u64,
    pub(crate) action: ActionEncoding,
}

impl WorldLayout {
    /// Reads a world's specs: one action (an integer scalar with both bounds, or a real scalar
    /// or vector with finite bounds), one observation besides `reward` and `discount` (`UINT8`
    /// of rank 2 or 3 is an image, `[H, W]` or `[C, H, W]`; any other numeric tensor of fixed
    /// shape is a vector of its elements, row-major) and an optional numeric scalar `reward`
    /// (none: every reward is 0).
    pub fn read(specs: &ActionObservationSpecs) -> Result<Self, RemoteError> {
        let unsupported = |name: &str, why: String| RemoteError::Spec {
            name: name.to_string(),
            why,
        };
        // The observation.
        let mut rest: Vec<(&u64, &TensorSpec)> = specs
            .observations
            .iter()
            .filter(|(_, s)| s.name != REWARD && s.name != DISCOUNT)
            .collect();
        rest.sort_by_key(|(uid, _)| **uid);
        let (observation_uid, observation_spec) = match rest.as_slice() {
            [one] => (*one.0, one.1.clone()),
            [] => return Err(unsupported("(observations)", "the world sends none".into())),
            many => {
                return Err(unsupported(
                    "(observations)",
                    format!(
                        "shoal trains on one observation; the world sends {} ({})",
                        many.len(),
                        many.iter()
                            .map(|(_, s)| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        };
        let observation_space = observation_space(&observation_spec)?;
        // The reward.
        let reward = specs.observations.iter().find(|(_, s)| s.name == REWARD);
        let reward_range = match reward {
            None => (0.0, 0.0),
            Some((_, spec)) => {
                let dtype = DataType::try_from(spec.dtype).unwrap_or(DataType::InvalidDataType);
                if !is_numeric(dtype) || !spec.shape.is_empty() {
                    return Err(unsupported(
                        REWARD,
                        format!(
                            "a reward must be a numeric scalar, not {} of shape {:?}",
                            dtype.as_str_name(),
                            spec.shape
                        ),
                    ));
                }
                let (low, high) = bounds(spec, 1)?;
                (low[0], high[0])
            }
        };
        // The action.
        let (action_uid, action_spec) = match specs.actions.iter().collect::<Vec<_>>().as_slice() {
            [(uid, spec)] => (**uid, *spec),
            other => {
                return Err(unsupported(
                    "(actions)",
                    format!("shoal sends one action; the world takes {}", other.len()),
                ));
            }
        };
        let (action_space, action) = action_space(action_spec)?;
        Ok(Self {
            observation_space,
            action_space,
            reward_range,
            observation_uid,
            observation_spec,
            reward_uid: reward.map(|(uid, _)| *uid),
            action_uid,
            action,
        })
    }
}

/// The most elements an announced action or observation may have: 16M (a 64 MB `f32` buffer
/// per copy), so that no spec can make an actor allocate without bound.
pub const MAX_ELEMENTS: usize = 1 << 24;

/// A spec's fixed shape, with at most [`MAX_ELEMENTS`] elements.
fn fixed_dims(spec: &TensorSpec) -> Result<Vec<usize>, RemoteError> {
    let bad = |why: String| RemoteError::Spec {
        name: spec.name.clone(),
        why,
    };
    let dims: Vec<usize> = spec
        .shape
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|_| {
            bad(format!(
                "variable shape {:?}: shoal's networks read fixed shapes",
                spec.shape
            ))
        })?;
    dims.iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| {
            bad(format!(
                "shape {:?} has more than {MAX_ELEMENTS} elements",
                spec.shape
            ))
        })?;
    Ok(dims)
}

fn observation_space(spec: &TensorSpec) -> Result<Space, RemoteError> {
    let dtype = DataType::try_from(spec.dtype).unwrap_or(DataType::InvalidDataType);
    if !is_numeric(dtype) {
        return Err(RemoteError::Spec {
            name: spec.name.clone(),
            why: format!("{} observations are not numbers", dtype.as_str_name()),
        });
    }
    let dims = fixed_dims(spec)?;
    let len: usize = dims.iter().product();
    if len == 0 {
        return Err(RemoteError::Spec {
            name: spec.name.clone(),
            why: format!("shape {:?} has no elements", spec.shape),
        });
    }
    // A byte vector is a token sequence when its bounds say so, as shoal announces its text
    // tasks: n − 1 ids with one maximum (V − 1), then the text's length, at most n − 1. Any
    // other byte vector (Atari RAM, say) is a vector of values.
    let vocab = match (dtype, dims.as_slice()) {
        (DataType::Uint8, &[n]) if n >= 2 => token_bounds(spec, n)?,
        _ => None,
    };
    Ok(match (dtype, dims.as_slice(), vocab) {
        (_, &[n], Some(vocab)) => Space::Tokens {
            length: n - 1,
            vocab,
        },
        (DataType::Uint8, &[height, width], _) => Space::Image {
            channels: 1,
            height,
            width,
        },
        (DataType::Uint8, &[channels, height, width], _) => Space::Image {
            channels,
            height,
            width,
        },
        _ => {
            let (low, high) = bounds(spec, len)?;
            Space::Box { low, high }
        }
    })
}

/// The vocabulary size when the bounds of a `UINT8` `[n]` spec mark a token sequence (every id
/// at least 0 and at most one shared V − 1, the last element at most n − 1).
fn token_bounds(spec: &TensorSpec, n: usize) -> Result<Option<usize>, RemoteError> {
    let (low, high) = bounds(spec, n)?;
    let (ids, last) = high.split_at(n - 1);
    let top = ids[0];
    let marked = low.iter().all(|&l| l == 0.0)
        && ids.iter().all(|&h| h == top)
        && last[0] == (n - 1) as f64
        && (0.0..=255.0).contains(&top);
    Ok(marked.then(|| top as usize + 1))
}

fn action_space(spec: &TensorSpec) -> Result<(Space, ActionEncoding), RemoteError> {
    let dtype = DataType::try_from(spec.dtype).unwrap_or(DataType::InvalidDataType);
    let bad = |why: String| RemoteError::Spec {
        name: spec.name.clone(),
        why,
    };
    let dims = fixed_dims(spec)?;
    match dtype {
        DataType::Float | DataType::Double => {
            let (scalar, len) = match dims.as_slice() {
                [] => (true, 1),
                [n] if *n > 0 => (false, *n),
                _ => return Err(bad(format!("continuous actions of shape {dims:?}"))),
            };
            let (low, high) = bounds(spec, len)?;
            if low.iter().chain(&high).any(|b| !b.is_finite()) {
                return Err(bad(
                    "continuous actions need finite bounds (shoal clips to them)".into(),
                ));
            }
            Ok((
                Space::Box { low, high },
                ActionEncoding::Real { dtype, scalar },
            ))
        }
        DataType::Int8
        | DataType::Int32
        | DataType::Int64
        | DataType::Uint8
        | DataType::Uint32
        | DataType::Uint64 => {
            if !dims.is_empty() {
                return Err(bad(format!(
                    "integer actions of shape {dims:?}: shoal sends one discrete choice"
                )));
            }
            let (low, high) = bounds(spec, 1)?;
            let (low, high) = (low[0], high[0]);
            if !low.is_finite() || !high.is_finite() || high < low {
                return Err(bad(
                    "a discrete action needs both bounds (its choices are min..=max)".into(),
                ));
            }
            let n = (high as i128 - low as i128 + 1).min(i128::from(i64::MAX)) as i64;
            if !(1..=MAX_DISCRETE_ACTIONS).contains(&n) {
                return Err(bad(format!(
                    "{n} choices; shoal takes 1..={MAX_DISCRETE_ACTIONS}"
                )));
            }
            Ok((
                Space::Discrete(n as usize),
                ActionEncoding::Integer {
                    dtype,
                    offset: low as i64,
                },
            ))
        }
        other => Err(bad(format!(
            "{} actions are not supported",
            other.as_str_name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::announce::{announce, uint8_value};
    use super::*;
    use crate::env;
    use crate::env_rpc_proto::dm_env_rpc::v1::tensor as payload;

    #[test]
    fn shoal_spaces_read_back_from_the_specs_they_announce() {
        for info in env::registry() {
            let e = env::make(info.id).unwrap();
            let specs = announce(&e.observation_space(), &e.action_space(), info.reward_range);
            let layout = WorldLayout::read(&specs).unwrap();
            assert_eq!(layout.action_space, e.action_space(), "{}", info.id);
            assert_eq!(layout.reward_uid, Some(REWARD_UID));
            // f32 bounds on the wire: compare as f32.
            let as_f32 = |s: &Space| match s {
                Space::Box { low, high } => Space::Box {
                    low: low.iter().map(|&x| x as f32 as f64).collect(),
                    high: high.iter().map(|&x| x as f32 as f64).collect(),
                },
                other => other.clone(),
            };
            assert_eq!(
                as_f32(&layout.observation_space),
                as_f32(&e.observation_space()),
                "{}",
                info.id
            );
            let finite = |x: f64| if x.is_finite() { x } else { 0.0 };
            assert_eq!(
                (finite(layout.reward_range.0), finite(layout.reward_range.1)),
                (finite(info.reward_range.0), finite(info.reward_range.1))
            );
        }
    }

    /// Only bounds that mark a token sequence make a byte vector tokens: a byte vector with
    /// plain byte bounds (Atari's RAM, say) stays a vector of values.
    #[test]
    fn byte_vectors_are_tokens_only_when_their_bounds_say_so() {
        let tokens = Space::Tokens {
            length: 9,
            vocab: 40,
        };
        let announced = announce(&tokens, &Space::Discrete(40), (-1.0, 1.0));
        let observation = announced
            .observations
            .values()
            .find(|s| s.name == OBSERVATION);
        assert_eq!(observation_space(observation.unwrap()).unwrap(), tokens);
        let mut ram = spec(OBSERVATION, DataType::Uint8, vec![128]);
        ram.min = Some(uint8_value(0));
        ram.max = Some(uint8_value(255));
        assert!(matches!(
            observation_space(&ram).unwrap(),
            Space::Box { .. }
        ));
        assert!(matches!(
            observation_space(&spec(OBSERVATION, DataType::Uint8, vec![5])).unwrap(),
            Space::Box { .. }
        ));
    }

    fn spec(name: &str, dtype: DataType, shape: Vec<i32>) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            shape,
            dtype: dtype as i32,
            min: None,
            max: None,
        }
    }

    #[test]
    fn other_servers_specs_map_to_spaces_or_say_why_not() {
        // A Gymnasium-style grayscale frame [H, W], an int64 action in 1..=4, no reward spec.
        let mut action = spec("act", DataType::Int64, vec![]);
        action.min = Some(tensor_spec::Value {
            payload: Some(tensor_spec::value::Payload::Int64s(payload::Int64Array {
                array: vec![1],
            })),
        });
        action.max = Some(tensor_spec::Value {
            payload: Some(tensor_spec::value::Payload::Int64s(payload::Int64Array {
                array: vec![4],
            })),
        });
        let specs = ActionObservationSpecs {
            actions: HashMap::from([(7, action.clone())]),
            observations: HashMap::from([(3, spec("frame", DataType::Uint8, vec![84, 84]))]),
        };
        let layout = WorldLayout::read(&specs).unwrap();
        assert_eq!(layout.observation_space.image_shape(), Some([1, 84, 84]));
        assert_eq!(layout.action_space, Space::Discrete(4));
        assert_eq!(
            layout.action,
            ActionEncoding::Integer {
                dtype: DataType::Int64,
                offset: 1
            }
        );
        assert_eq!((layout.reward_uid, layout.reward_range), (None, (0.0, 0.0)));
        // Refusals, each naming the tensor.
        let refused = |specs: ActionObservationSpecs, needle: &str| {
            let err = WorldLayout::read(&specs).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        };
        let mut two = specs.clone();
        two.observations
            .insert(4, spec("lives", DataType::Int32, vec![]));
        refused(two, "frame, lives");
        let mut variable = specs.clone();
        variable
            .observations
            .insert(3, spec("frame", DataType::Uint8, vec![-1, 84]));
        refused(variable, "variable shape");
        let mut unbounded = specs.clone();
        unbounded
            .actions
            .insert(7, spec("act", DataType::Int32, vec![]));
        refused(unbounded, "both bounds");
        let mut text = specs.clone();
        text.actions
            .insert(7, spec("say", DataType::String, vec![]));
        refused(text, "STRING actions");
        let mut none = specs;
        none.actions.clear();
        refused(none, "takes 0");
    }
}
