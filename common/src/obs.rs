//! Observations in host memory and on the wire: `f32` vectors, or `u8` images kept as bytes
//! until they become a tensor.
//!
//! Environments write every observation as `f32` (an image's pixels as the integers 0..=255);
//! what leaves an actor, crosses the network and sits in the learner's replay buffer is an
//! [`Observations`] in the run's [`ObsFormat`]: little-endian `f32` for vectors, one byte per
//! pixel for images (a quarter of the size). [`Observations::into_tensor`] makes the `f32` tensor;
//! the network scales pixels to `[0, 1]` as its first operation.

use std::io::{self, Read, Write};
use std::ops::Range;

use burn::tensor::{Device, Tensor, TensorData};
use bytes::Bytes;
use thiserror::Error;

use crate::codec::{decode_f32, encode_f32, first_implausible};

/// How a run's observations are stored and sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObsFormat {
    /// Little-endian `f32` values (vector observations).
    F32,
    /// One byte per value (image observations, pixels 0..=255).
    U8,
}

impl ObsFormat {
    /// Bytes one value takes on the wire and in memory.
    pub fn value_bytes(self) -> usize {
        match self {
            ObsFormat::F32 => 4,
            ObsFormat::U8 => 1,
        }
    }
}

/// Why observation bytes from the network were refused (the caller names the field).
#[derive(Debug, Error, PartialEq)]
pub enum ObsError {
    /// The field has the wrong byte length.
    #[error("{got} bytes, expected {want}")]
    Length {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// An `f32` value is NaN, infinite or implausibly large.
    #[error("a non-finite or implausibly large value at index {index}")]
    NotFinite {
        /// Flat index.
        index: usize,
    },
}

/// Rows of observations, flat and row-major, in one [`ObsFormat`].
#[derive(Debug, Clone, PartialEq)]
pub enum Observations {
    /// Vector observations.
    F32(Vec<f32>),
    /// Image observations, one byte per pixel.
    U8(Vec<u8>),
}

impl Default for Observations {
    fn default() -> Self {
        Observations::F32(Vec::new())
    }
}

impl Observations {
    /// `len` zero values.
    pub fn zeros(format: ObsFormat, len: usize) -> Self {
        match format {
            ObsFormat::F32 => Observations::F32(vec![0.0; len]),
            ObsFormat::U8 => Observations::U8(vec![0; len]),
        }
    }

    /// Empty, with room for `capacity` values.
    pub fn with_capacity(format: ObsFormat, capacity: usize) -> Self {
        match format {
            ObsFormat::F32 => Observations::F32(Vec::with_capacity(capacity)),
            ObsFormat::U8 => Observations::U8(Vec::with_capacity(capacity)),
        }
    }

    /// What an environment wrote, in `format`: pixels are rounded and clamped to 0..=255 (an
    /// image environment writes exact integers, so nothing changes).
    pub fn from_f32(format: ObsFormat, values: &[f32]) -> Self {
        match format {
            ObsFormat::F32 => Observations::F32(values.to_vec()),
            ObsFormat::U8 => Observations::U8(values.iter().map(|&v| pixel(v)).collect()),
        }
    }

    /// The format.
    pub fn format(&self) -> ObsFormat {
        match self {
            Observations::F32(_) => ObsFormat::F32,
            Observations::U8(_) => ObsFormat::U8,
        }
    }

    /// Number of values (rows × observation size).
    pub fn len(&self) -> usize {
        match self {
            Observations::F32(v) => v.len(),
            Observations::U8(v) => v.len(),
        }
    }

    /// True when there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every value, keeping the allocation.
    pub fn clear(&mut self) {
        match self {
            Observations::F32(v) => v.clear(),
            Observations::U8(v) => v.clear(),
        }
    }

    /// Appends `values` (written by an environment) in this format.
    pub fn extend_from_f32(&mut self, values: &[f32]) {
        match self {
            Observations::F32(v) => v.extend_from_slice(values),
            Observations::U8(v) => v.extend(values.iter().map(|&x| pixel(x))),
        }
    }

    /// Appends `src[range]` (value indices).
    ///
    /// # Panics
    /// When the formats differ.
    pub fn extend_from(&mut self, src: &Observations, range: Range<usize>) {
        match (self, src) {
            (Observations::F32(d), Observations::F32(s)) => d.extend_from_slice(&s[range]),
            (Observations::U8(d), Observations::U8(s)) => d.extend_from_slice(&s[range]),
            _ => panic!("observation formats differ"),
        }
    }

    /// Overwrites the values from `at` with `src[range]`.
    ///
    /// # Panics
    /// When the formats differ or the ranges leave the arrays.
    pub fn copy_from(&mut self, at: usize, src: &Observations, range: Range<usize>) {
        let n = range.len();
        match (self, src) {
            (Observations::F32(d), Observations::F32(s)) => {
                d[at..at + n].copy_from_slice(&s[range])
            }
            (Observations::U8(d), Observations::U8(s)) => d[at..at + n].copy_from_slice(&s[range]),
            _ => panic!("observation formats differ"),
        }
    }

    /// The values as `f32` (pixels as 0..=255, unscaled).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            Observations::F32(v) => v.clone(),
            Observations::U8(v) => v.iter().map(|&p| p as f32).collect(),
        }
    }

    /// The wire form: little-endian `f32`, or the bytes themselves.
    pub fn encode(&self) -> Bytes {
        match self {
            Observations::F32(v) => encode_f32(v),
            Observations::U8(v) => Bytes::copy_from_slice(v),
        }
    }

    /// Reads `len` values in `format` from the wire, refusing a wrong length and (for `f32`)
    /// non-finite or implausible values; every byte is a valid pixel.
    pub fn decode(format: ObsFormat, data: &[u8], len: usize) -> Result<Self, ObsError> {
        let want = len * format.value_bytes();
        if data.len() != want {
            return Err(ObsError::Length {
                got: data.len(),
                want,
            });
        }
        match format {
            ObsFormat::F32 => {
                let v = decode_f32(data, len).expect("length checked above");
                match first_implausible(&v) {
                    Some(index) => Err(ObsError::NotFinite { index }),
                    None => Ok(Observations::F32(v)),
                }
            }
            ObsFormat::U8 => Ok(Observations::U8(data.to_vec())),
        }
    }

    /// `[rows, len / rows]` `f32` tensor on `device`, taking the values without a copy. Images
    /// cross to the device as bytes and are cast there (pixels stay 0..=255; the network scales
    /// them).
    ///
    /// # Panics
    /// When `rows` does not divide the length.
    pub fn into_tensor(self, rows: usize, device: &Device) -> Tensor<2> {
        let cols = self.len().checked_div(rows).unwrap_or(0);
        assert_eq!(rows * cols, self.len(), "observations are not {rows} rows");
        match self {
            Observations::F32(v) => {
                Tensor::<2>::from_data(TensorData::new(v, [rows, cols]), device)
            }
            Observations::U8(v) => {
                Tensor::<2, burn::tensor::Int>::from_data(TensorData::new(v, [rows, cols]), device)
                    .float()
            }
        }
    }

    /// Bytes the values take in memory.
    pub fn memory_bytes(&self) -> usize {
        match self {
            Observations::F32(v) => 4 * v.capacity(),
            Observations::U8(v) => v.capacity(),
        }
    }

    /// Writes the values (as [`Observations::encode`] lays them out) to `w`.
    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&self.encode())
    }

    /// Overwrites every value with what [`Observations::write_to`] wrote, in this format and
    /// length.
    pub fn read_from(&mut self, r: &mut impl Read) -> io::Result<()> {
        match self {
            Observations::U8(v) => r.read_exact(v),
            Observations::F32(v) => {
                let mut b = [0u8; 4];
                for x in v.iter_mut() {
                    r.read_exact(&mut b)?;
                    *x = f32::from_le_bytes(b);
                }
                Ok(())
            }
        }
    }
}

/// An environment's pixel value as a byte.
fn pixel(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_travel_as_one_byte_per_pixel_and_round_trip() {
        let pixels = [0.0, 255.0, 17.0, 3.0];
        let obs = Observations::from_f32(ObsFormat::U8, &pixels);
        assert_eq!(obs.encode().len(), 4);
        assert_eq!(
            Observations::decode(ObsFormat::U8, &obs.encode(), 4).unwrap(),
            obs
        );
        assert_eq!(obs.to_f32(), pixels);
        let vec = Observations::from_f32(ObsFormat::F32, &[0.5, -1.0]);
        assert_eq!(vec.encode().len(), 8);
        assert_eq!(
            Observations::decode(ObsFormat::F32, &vec.encode(), 2).unwrap(),
            vec
        );
    }

    #[test]
    fn bad_lengths_and_values_are_refused() {
        assert_eq!(
            Observations::decode(ObsFormat::U8, &[1, 2, 3], 4),
            Err(ObsError::Length { got: 3, want: 4 })
        );
        assert_eq!(
            Observations::decode(ObsFormat::F32, &[0; 12], 4),
            Err(ObsError::Length { got: 12, want: 16 })
        );
        let nan = encode_f32(&[0.0, f32::NAN]);
        assert_eq!(
            Observations::decode(ObsFormat::F32, &nan, 2),
            Err(ObsError::NotFinite { index: 1 })
        );
    }

    #[test]
    fn byte_images_become_float_tensors_with_their_values() {
        let obs = Observations::U8(vec![0, 1, 254, 255, 7, 9]);
        let t = obs.into_tensor(2, &Device::flex());
        assert_eq!(t.dims(), [2, 3]);
        let data = t.into_data().convert::<f32>();
        assert_eq!(
            data.as_slice::<f32>().unwrap(),
            &[0.0, 1.0, 254.0, 255.0, 7.0, 9.0]
        );
    }

    #[test]
    fn rows_copy_and_extend_within_a_format() {
        let src = Observations::U8(vec![1, 2, 3, 4]);
        let mut dst = Observations::zeros(ObsFormat::U8, 4);
        dst.copy_from(2, &src, 0..2);
        assert_eq!(dst, Observations::U8(vec![0, 0, 1, 2]));
        let mut out = Observations::with_capacity(ObsFormat::U8, 2);
        out.extend_from(&src, 2..4);
        assert_eq!(out, Observations::U8(vec![3, 4]));
        let mut buf = Vec::new();
        src.write_to(&mut buf).unwrap();
        let mut back = Observations::zeros(ObsFormat::U8, 4);
        back.read_from(&mut buf.as_slice()).unwrap();
        assert_eq!(back, src);
    }
}
