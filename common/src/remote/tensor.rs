//! dm_env_rpc tensors to and from shoal's values: numeric payloads read as `f64`, shapes with a
//! variable dimension or a broadcast element resolved against the shape a spec promises.

use crate::env_rpc_proto::dm_env_rpc::v1::{DataType, Tensor, tensor};

use super::RemoteError;

/// The element type a tensor's payload holds (`INVALID_DATA_TYPE` when it holds none).
pub(crate) fn data_type(t: &Tensor) -> DataType {
    use tensor::Payload as P;
    match &t.payload {
        None => DataType::InvalidDataType,
        Some(P::Floats(_)) => DataType::Float,
        Some(P::Doubles(_)) => DataType::Double,
        Some(P::Int8s(_)) => DataType::Int8,
        Some(P::Int32s(_)) => DataType::Int32,
        Some(P::Int64s(_)) => DataType::Int64,
        Some(P::Uint8s(_)) => DataType::Uint8,
        Some(P::Uint32s(_)) => DataType::Uint32,
        Some(P::Uint64s(_)) => DataType::Uint64,
        Some(P::Bools(_)) => DataType::Bool,
        Some(P::Strings(_)) => DataType::String,
        Some(P::Protos(_)) => DataType::Proto,
    }
}

/// Whether `dtype` holds numbers (what bounds and shoal's spaces are made of).
pub(crate) fn is_numeric(dtype: DataType) -> bool {
    !matches!(
        dtype,
        DataType::InvalidDataType | DataType::Bool | DataType::String | DataType::Proto
    )
}

/// The elements of a numeric payload as `f64`, for both payload enums the protocol has (a
/// tensor's, `tensor::Payload`, and a spec bound's, `tensor_spec::value::Payload`: the same
/// numeric arrays); `None` for any other variant. One macro, not a function, because the two
/// enums are distinct generated types.
macro_rules! numeric_payload {
    ($payload:path, $value:expr) => {{
        use $payload as P;
        #[allow(unreachable_patterns)] // a spec bound has only numeric arrays
        match $value {
            P::Floats(a) => Some(a.array.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>()),
            P::Doubles(a) => Some(a.array.clone()),
            P::Int8s(a) => Some(a.array.iter().map(|&x| f64::from(x as i8)).collect()),
            P::Int32s(a) => Some(a.array.iter().map(|&x| f64::from(x)).collect()),
            P::Int64s(a) => Some(a.array.iter().map(|&x| x as f64).collect()),
            P::Uint8s(a) => Some(a.array.iter().map(|&x| f64::from(x)).collect()),
            P::Uint32s(a) => Some(a.array.iter().map(|&x| f64::from(x)).collect()),
            P::Uint64s(a) => Some(a.array.iter().map(|&x| x as f64).collect()),
            _ => None,
        }
    }};
}
pub(crate) use numeric_payload;

/// A numeric tensor's elements as `f64` (exact for every type but 64-bit integers beyond 2⁵³,
/// which only matter to bounds checks, where the rounding keeps their side of any bound a
/// shoal space can have). `None` for strings, booleans, protos and an empty payload.
pub(crate) fn numbers(t: &Tensor) -> Option<Vec<f64>> {
    numeric_payload!(tensor::Payload, t.payload.as_ref()?)
}

/// Number of elements in a payload.
fn payload_len(t: &Tensor) -> usize {
    use tensor::Payload as P;
    match &t.payload {
        None => 0,
        Some(P::Floats(a)) => a.array.len(),
        Some(P::Doubles(a)) => a.array.len(),
        Some(P::Int8s(a)) => a.array.len(),
        Some(P::Int32s(a)) => a.array.len(),
        Some(P::Int64s(a)) => a.array.len(),
        Some(P::Uint8s(a)) => a.array.len(),
        Some(P::Uint32s(a)) => a.array.len(),
        Some(P::Uint64s(a)) => a.array.len(),
        Some(P::Bools(a)) => a.array.len(),
        Some(P::Strings(a)) => a.array.len(),
        Some(P::Protos(a)) => a.array.len(),
    }
}

/// How the elements of a tensor fill the shape a spec promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    /// One element per position.
    Full,
    /// One element, repeated at every position.
    Broadcast,
}

/// Checks `t` (named `name` in errors) against the shape a spec promises (`spec_shape`, whose
/// negative entries are variable): same rank, at most one inferred dimension in the tensor, and
/// either one element per position or one element to broadcast. Returns how it fills the shape
/// and the number of positions.
pub(crate) fn fit_shape(
    t: &Tensor,
    spec_shape: &[i32],
    name: &str,
) -> Result<(Fill, usize), RemoteError> {
    let bad = |why: String| RemoteError::Tensor {
        name: name.to_string(),
        why,
    };
    if t.shape.len() != spec_shape.len() {
        return Err(bad(format!(
            "shape {:?} has rank {}, the spec's {:?} has rank {}",
            t.shape,
            t.shape.len(),
            spec_shape,
            spec_shape.len()
        )));
    }
    let len = payload_len(t);
    let variable = t.shape.iter().filter(|&&d| d < 0).count();
    if variable > 1 {
        return Err(bad(format!(
            "shape {:?} has more than one variable dimension",
            t.shape
        )));
    }
    let known: usize = t
        .shape
        .iter()
        .filter(|&&d| d >= 0)
        .fold(1usize, |n, &d| n.saturating_mul(d as usize));
    let mut shape: Vec<i32> = t.shape.clone();
    if variable == 1 {
        if known == 0 || !len.is_multiple_of(known) {
            return Err(bad(format!(
                "{len} elements cannot fill shape {:?}",
                t.shape
            )));
        }
        let inferred = i32::try_from(len / known).map_err(|_| bad("too large".into()))?;
        for d in shape.iter_mut().filter(|d| **d < 0) {
            *d = inferred;
        }
    }
    for (&got, &want) in shape.iter().zip(spec_shape) {
        if want >= 0 && got != want {
            return Err(bad(format!(
                "shape {:?} does not match the spec's {spec_shape:?}",
                t.shape
            )));
        }
    }
    let positions: usize = shape
        .iter()
        .fold(1usize, |n, &d| n.saturating_mul(d as usize));
    match len {
        n if n == positions => Ok((Fill::Full, positions)),
        1 => Ok((Fill::Broadcast, positions)),
        n => Err(bad(format!(
            "{n} elements for shape {:?} ({positions} positions)",
            t.shape
        ))),
    }
}

/// A tensor of `f32` values.
pub(crate) fn floats(values: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor {
        payload: Some(tensor::Payload::Floats(tensor::FloatArray {
            array: values,
        })),
        shape: dims(shape),
    }
}

/// A tensor of `f64` values.
pub(crate) fn doubles(values: Vec<f64>, shape: &[usize]) -> Tensor {
    Tensor {
        payload: Some(tensor::Payload::Doubles(tensor::DoubleArray {
            array: values,
        })),
        shape: dims(shape),
    }
}

/// A tensor of `u8` values (pixels).
pub(crate) fn bytes(values: Vec<u8>, shape: &[usize]) -> Tensor {
    Tensor {
        payload: Some(tensor::Payload::Uint8s(tensor::Uint8Array {
            array: values.into(),
        })),
        shape: dims(shape),
    }
}

/// A scalar of type `dtype` holding the integer `value` (a discrete action in the type its spec
/// names). `None` when `dtype` is not an integer type or cannot hold `value`.
pub(crate) fn integer(dtype: DataType, value: i64) -> Option<Tensor> {
    use tensor::Payload as P;
    let payload = match dtype {
        DataType::Int8 => P::Int8s(tensor::Int8Array {
            array: vec![i8::try_from(value).ok()? as u8].into(),
        }),
        DataType::Int32 => P::Int32s(tensor::Int32Array {
            array: vec![i32::try_from(value).ok()?],
        }),
        DataType::Int64 => P::Int64s(tensor::Int64Array { array: vec![value] }),
        DataType::Uint8 => P::Uint8s(tensor::Uint8Array {
            array: vec![u8::try_from(value).ok()?].into(),
        }),
        DataType::Uint32 => P::Uint32s(tensor::Uint32Array {
            array: vec![u32::try_from(value).ok()?],
        }),
        DataType::Uint64 => P::Uint64s(tensor::Uint64Array {
            array: vec![u64::try_from(value).ok()?],
        }),
        _ => return None,
    };
    Some(Tensor {
        payload: Some(payload),
        shape: Vec::new(),
    })
}

/// A scalar string tensor (a setting).
pub(crate) fn string(value: &str) -> Tensor {
    Tensor {
        payload: Some(tensor::Payload::Strings(tensor::StringArray {
            array: vec![value.to_string()],
        })),
        shape: Vec::new(),
    }
}

/// The one string a scalar string tensor holds.
pub(crate) fn as_string(t: &Tensor) -> Option<&str> {
    match &t.payload {
        Some(tensor::Payload::Strings(a)) if a.array.len() == 1 && t.shape.is_empty() => {
            Some(&a.array[0])
        }
        _ => None,
    }
}

/// The one integer a scalar integer tensor holds (any integer type).
pub(crate) fn as_integer(t: &Tensor) -> Option<i64> {
    use tensor::Payload as P;
    if !t.shape.is_empty() {
        return None;
    }
    match t.payload.as_ref()? {
        P::Int8s(a) if a.array.len() == 1 => Some(i64::from(a.array[0] as i8)),
        P::Int32s(a) if a.array.len() == 1 => Some(i64::from(a.array[0])),
        P::Int64s(a) if a.array.len() == 1 => Some(a.array[0]),
        P::Uint8s(a) if a.array.len() == 1 => Some(i64::from(a.array[0])),
        P::Uint32s(a) if a.array.len() == 1 => Some(i64::from(a.array[0])),
        P::Uint64s(a) if a.array.len() == 1 => i64::try_from(a.array[0]).ok(),
        _ => None,
    }
}

fn dims(shape: &[usize]) -> Vec<i32> {
    shape
        .iter()
        .map(|&d| i32::try_from(d).expect("tensor dimensions fit in i32"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_and_broadcast_shapes_resolve_against_the_spec() {
        let t = floats(vec![1.0, 2.0, 3.0], &[3]);
        assert_eq!(fit_shape(&t, &[3], "a").unwrap(), (Fill::Full, 3));
        let mut variable = t.clone();
        variable.shape = vec![-1];
        assert_eq!(fit_shape(&variable, &[3], "a").unwrap(), (Fill::Full, 3));
        assert_eq!(fit_shape(&variable, &[-1], "a").unwrap(), (Fill::Full, 3));
        let one = floats(vec![0.5], &[3]);
        assert_eq!(fit_shape(&one, &[3], "a").unwrap(), (Fill::Broadcast, 3));
        // Wrong rank, wrong length, two variable dimensions, a size the spec does not have.
        assert!(fit_shape(&floats(vec![1.0, 2.0, 3.0], &[3, 1]), &[3], "a").is_err());
        assert!(fit_shape(&floats(vec![1.0, 2.0], &[3]), &[3], "a").is_err());
        let mut two = floats(vec![0.0; 6], &[2, 3]);
        two.shape = vec![-1, -1];
        assert!(fit_shape(&two, &[2, 3], "a").is_err());
        let err = fit_shape(&floats(vec![0.0; 4], &[4]), &[3], "torque").unwrap_err();
        assert!(err.to_string().contains("torque"), "{err}");
        // A scalar.
        let s = integer(DataType::Int32, 2).unwrap();
        assert_eq!(fit_shape(&s, &[], "a").unwrap(), (Fill::Full, 1));
    }

    #[test]
    fn values_read_back_as_written() {
        assert_eq!(
            numbers(&bytes(vec![0, 255], &[2])).unwrap(),
            vec![0.0, 255.0]
        );
        assert_eq!(numbers(&doubles(vec![-1.5], &[])).unwrap(), vec![-1.5]);
        assert_eq!(
            numbers(&integer(DataType::Int8, -3).unwrap()).unwrap(),
            vec![-3.0]
        );
        assert_eq!(as_integer(&integer(DataType::Uint64, 7).unwrap()), Some(7));
        assert_eq!(integer(DataType::Uint8, 256), None);
        assert_eq!(integer(DataType::Float, 1), None);
        assert_eq!(as_string(&string("Catch-v0")), Some("Catch-v0"));
        assert_eq!(numbers(&string("x")), None);
        assert_eq!(data_type(&bytes(vec![], &[0])), DataType::Uint8);
        assert!(!is_numeric(DataType::Bool));
    }
}
