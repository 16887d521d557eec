//! The parameter codec: a model's parameters as one little-endian `f32` byte string in a fixed
//! order, and the layout fingerprint that lets both ends check they mean the same order.

use bytes::Bytes;
use thiserror::Error;

/// One parameter tensor: its module path and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamEntry {
    /// Module path, e.g. `actor.layers.0.weight`.
    pub path: String,
    /// Shape.
    pub shape: Vec<usize>,
}

impl ParamEntry {
    /// A new entry.
    pub fn new(path: impl Into<String>, shape: Vec<usize>) -> Self {
        Self {
            path: path.into(),
            shape,
        }
    }

    /// Number of values.
    pub fn num_floats(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The ordered list of parameters that make up a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamLayout {
    entries: Vec<ParamEntry>,
    /// What the network reads, when that is more than its first layer's width says (e.g.
    /// `u8 image [4, 84, 84]`); part of the fingerprint.
    input: String,
}

/// Errors decoding parameters.
#[derive(Debug, Error, PartialEq)]
pub enum CodecError {
    /// The byte string's length does not match the layout.
    #[error("parameter data has {got} bytes, the model layout needs {want} ({floats} f32 values)")]
    Length {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        want: usize,
        /// Values expected.
        floats: usize,
    },
    /// A value is NaN or infinite.
    #[error("parameter value {index} ({path}) is not finite")]
    NotFinite {
        /// Flat index of the first bad value.
        index: usize,
        /// The parameter it belongs to.
        path: String,
    },
    /// The sender's fingerprint differs from ours.
    #[error(
        "model fingerprint mismatch: expected {expected}, got {got}; learner and actor build different models (are they the same shoal version?)"
    )]
    Fingerprint {
        /// Ours.
        expected: String,
        /// Theirs.
        got: String,
    },
}

impl ParamLayout {
    /// A layout from entries in transfer order.
    pub fn new(entries: Vec<ParamEntry>) -> Self {
        Self {
            entries,
            input: String::new(),
        }
    }

    /// The same layout for a network that reads `input` (fed into the fingerprint, so that
    /// networks with equal parameters and different inputs do not pass for each other).
    pub fn with_input(mut self, input: String) -> Self {
        self.input = input;
        self
    }

    /// What the network reads beyond its first layer's width (empty for vectors).
    pub fn input(&self) -> &str {
        &self.input
    }

    /// The entries in transfer order.
    pub fn entries(&self) -> &[ParamEntry] {
        &self.entries
    }

    /// Each parameter's values in the flat vector, in layout order.
    pub fn ranges(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        self.entries.iter().scan(0, |offset, e| {
            let start = *offset;
            *offset += e.num_floats();
            Some(start..*offset)
        })
    }

    /// The values and shape of the parameter at `path`.
    pub fn find(&self, path: &str) -> Option<(std::ops::Range<usize>, &[usize])> {
        self.entries
            .iter()
            .zip(self.ranges())
            .find(|(e, _)| e.path == path)
            .map(|(e, r)| (r, e.shape.as_slice()))
    }

    /// Total number of `f32` values.
    pub fn num_floats(&self) -> usize {
        self.entries.iter().map(ParamEntry::num_floats).sum()
    }

    /// A stable 64-bit FNV-1a hash of paths, shapes and order, as 16 hex digits.
    pub fn fingerprint(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |bytes: &[u8]| {
            for &b in bytes {
                h ^= b as u64;
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        feed(b"shoal-layout-v1");
        if !self.input.is_empty() {
            feed(b"|input:");
            feed(self.input.as_bytes());
        }
        for e in &self.entries {
            feed(b"|");
            feed(e.path.as_bytes());
            for d in &e.shape {
                feed(b":");
                feed(&(*d as u64).to_le_bytes());
            }
        }
        format!("{h:016x}")
    }

    /// Checks a peer's fingerprint against ours.
    pub fn check_fingerprint(&self, got: &str) -> Result<(), CodecError> {
        let expected = self.fingerprint();
        if got == expected {
            Ok(())
        } else {
            // The peer's text is echoed bounded: it goes into logs and the refusal message.
            Err(CodecError::Fingerprint {
                expected,
                got: crate::text::bounded(got),
            })
        }
    }

    /// Decodes `data` (little-endian `f32`) and checks length and finiteness.
    pub fn decode(&self, data: &[u8]) -> Result<Vec<f32>, CodecError> {
        let floats = self.num_floats();
        let values = decode_f32(data, floats).ok_or(CodecError::Length {
            got: data.len(),
            want: floats * 4,
            floats,
        })?;
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            let mut start = 0;
            let path = self
                .entries
                .iter()
                .find(|e| {
                    start += e.num_floats();
                    index < start
                })
                .map(|e| e.path.clone())
                .unwrap_or_default();
            return Err(CodecError::NotFinite { index, path });
        }
        Ok(values)
    }
}

/// Encodes values as little-endian `f32` bytes.
pub fn encode_f32(values: &[f32]) -> Bytes {
    let mut out = Vec::with_capacity(values.len() * 4);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Bytes::from(out)
}

/// The largest magnitude a value of experience from the network may have (observations,
/// actions, rewards, values, log-probabilities). Real environments stay far below it; a value
/// beyond it is refused, so that no push can overflow the learner's arithmetic.
pub const MAX_ABS_VALUE: f32 = 1e6;

/// The index of the first value that is not finite or beyond ±[`MAX_ABS_VALUE`].
pub fn first_implausible(values: &[f32]) -> Option<usize> {
    values
        .iter()
        .position(|v| !(v.is_finite() && v.abs() <= MAX_ABS_VALUE))
}

/// Decodes little-endian `f32` bytes; `None` unless there are exactly `len` values.
pub fn decode_f32(data: &[u8], len: usize) -> Option<Vec<f32>> {
    if data.len() != len.checked_mul(4)? {
        return None;
    }
    Some(
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> ParamLayout {
        ParamLayout::new(vec![
            ParamEntry::new("a.weight", vec![2, 3]),
            ParamEntry::new("a.bias", vec![3]),
        ])
    }

    #[test]
    fn round_trip_is_bit_exact() {
        let values: Vec<f32> = (0..9).map(|i| i as f32 * -0.37 + 1e-30).collect();
        let bytes = encode_f32(&values);
        assert_eq!(bytes.len(), 36);
        assert_eq!(&bytes[..4], &values[0].to_le_bytes());
        assert_eq!(layout().decode(&bytes).unwrap(), values);
    }

    #[test]
    fn wrong_length_and_non_finite_are_refused() {
        let err = layout().decode(&encode_f32(&[0.0; 8])).unwrap_err();
        assert_eq!(
            err,
            CodecError::Length {
                got: 32,
                want: 36,
                floats: 9
            }
        );
        let mut values = vec![0.0; 9];
        values[7] = f32::NAN;
        let err = layout().decode(&encode_f32(&values)).unwrap_err();
        assert_eq!(
            err,
            CodecError::NotFinite {
                index: 7,
                path: "a.bias".into()
            }
        );
    }

    #[test]
    fn fingerprint_depends_on_paths_shapes_and_order() {
        let base = layout();
        let fp = base.fingerprint();
        assert_eq!(fp.len(), 16);
        assert_eq!(fp, layout().fingerprint());
        let reshaped = ParamLayout::new(vec![
            ParamEntry::new("a.weight", vec![3, 2]),
            ParamEntry::new("a.bias", vec![3]),
        ]);
        let reordered = ParamLayout::new(base.entries().iter().rev().cloned().collect());
        assert_ne!(reshaped.fingerprint(), fp);
        assert_ne!(reordered.fingerprint(), fp);
        let err = base.check_fingerprint(&reshaped.fingerprint()).unwrap_err();
        assert!(err.to_string().contains("model fingerprint mismatch"));
        assert!(base.check_fingerprint(&fp).is_ok());
    }
}
