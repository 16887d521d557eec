//! Optimizer state on the flat parameter vector, written and read in burn's optimizer file
//! format (burnpack; per parameter id `k + 1` for the `k`th parameter of the layout, as
//! `ModelSpec::build` numbers them: tensors `{id}.{leaf}`, scalars `{id}.{name}` and the rank
//! `{id}.__rank`), so that checkpoints written by burn's optimizers and by the host ones resume
//! in either; and the [`FlatOptimizer`] trait the host optimizers share.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::TensorData;
use burn_pack::{DType, Reader, Scalar, Writer};
use shoal_common::codec::ParamLayout;
use thiserror::Error;

/// burn's key for a parameter's rank in an optimizer record.
const RANK_KEY: &str = "__rank";

/// An optimizer stepping the flat parameter vector, its state in burn's file format.
pub trait FlatOptimizer: Send {
    /// One step at learning rate `lr` on `grad`.
    fn step(&mut self, lr: f64, params: &mut [f32], grad: &[f32]);

    /// Writes the state for the parameters of `layout` to `path`.
    fn save(&self, layout: &ParamLayout, path: &Path) -> Result<(), StateFileError>;

    /// Reads the state [`FlatOptimizer::save`] (or burn's optimizer of the same kind) wrote.
    /// Nothing changes on an error.
    fn load(&mut self, layout: &ParamLayout, path: &Path) -> Result<(), StateFileError>;
}

/// Why an optimizer state file could not be written or read.
#[derive(Debug, Error)]
pub enum StateFileError {
    /// burnpack could not write or read the file.
    #[error("{path}: {message}")]
    Pack {
        /// The file.
        path: PathBuf,
        /// burnpack's error.
        message: String,
    },
    /// A tensor does not have one `f32` per value of its parameter.
    #[error("{name} is {dtype:?} of {bytes} bytes; its parameter has {values} f32 values")]
    Shape {
        /// The tensor.
        name: String,
        /// Its data type.
        dtype: DType,
        /// Its size.
        bytes: usize,
        /// The parameter's values.
        values: usize,
    },
    /// The file holds optimizer state, but for none of the layout's parameters.
    #[error("{path} holds no state for this model's parameters (another model's file?)")]
    Foreign {
        /// The file.
        path: PathBuf,
    },
    /// A scalar is not a count.
    #[error("{name} is not a count")]
    Scalar {
        /// The scalar.
        name: String,
    },
}

fn pack_error(path: &Path) -> impl FnOnce(burn_pack::Error) -> StateFileError + '_ {
    move |e| StateFileError::Pack {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes, for every parameter of `layout`, its slice of each `(leaf, values)` vector and each
/// `(name, value)` scalar.
pub fn save(
    path: &Path,
    layout: &ParamLayout,
    vectors: &[(&str, &[f32])],
    scalars: &[(&str, Scalar)],
) -> Result<(), StateFileError> {
    let mut tensors = Vec::new();
    let mut all_scalars = Vec::new();
    for (k, (entry, range)) in layout.entries().iter().zip(layout.ranges()).enumerate() {
        let id = k as u64 + 1;
        for (leaf, values) in vectors {
            let data = TensorData::new(values[range.clone()].to_vec(), entry.shape.clone());
            let (bytes, shape, dtype) = data.into_parts();
            tensors.push(burn_pack::Tensor::new(
                format!("{id}.{leaf}"),
                dtype,
                shape,
                Some(id),
                bytes,
            ));
        }
        for (name, value) in scalars {
            all_scalars.push((format!("{id}.{name}"), *value));
        }
        all_scalars.push((format!("{id}.{RANK_KEY}"), Scalar::from(entry.shape.len())));
    }
    let mut writer = Writer::new(tensors).overwrite(true).auto_extension(false);
    for (key, value) in all_scalars {
        writer = writer.with_scalar(&key, value);
    }
    writer.write_to_file(path).map_err(pack_error(path))
}

/// A state file opened for reading per parameter.
pub struct Saved {
    tensors: BTreeMap<String, burn_pack::Tensor>,
    scalars: BTreeMap<String, Scalar>,
}

impl Saved {
    /// Opens `path`, which must hold state for at least one parameter of `layout` when it
    /// holds any.
    pub fn open(path: &Path, layout: &ParamLayout) -> Result<Self, StateFileError> {
        let reader = Reader::from_file(path).map_err(pack_error(path))?;
        let scalars = reader.scalars().clone();
        let tensors: BTreeMap<String, burn_pack::Tensor> = reader
            .into_tensors()
            .map_err(pack_error(path))?
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        let ours = (1..=layout.entries().len()).any(|id| {
            let prefix = format!("{id}.");
            tensors.keys().any(|n| n.starts_with(&prefix))
        });
        if !tensors.is_empty() && !ours {
            return Err(StateFileError::Foreign {
                path: path.to_path_buf(),
            });
        }
        Ok(Self { tensors, scalars })
    }

    /// The vector `leaf` over all parameters of `layout`; a parameter without it reads as
    /// zeros (burn re-initialises state it cannot find). `None` when no parameter has it.
    pub fn vector(
        &self,
        layout: &ParamLayout,
        leaf: &str,
    ) -> Result<Option<Vec<f32>>, StateFileError> {
        let mut out = vec![0.0f32; layout.num_floats()];
        let mut found = false;
        for (k, range) in layout.ranges().enumerate() {
            let name = format!("{}.{leaf}", k + 1);
            let Some(tensor) = self.tensors.get(&name) else {
                continue;
            };
            let bytes = tensor.to_bytes().map_err(|e| StateFileError::Pack {
                path: PathBuf::from(&name),
                message: e.to_string(),
            })?;
            if tensor.dtype != DType::F32 || bytes.len() != range.len() * 4 {
                return Err(StateFileError::Shape {
                    name,
                    dtype: tensor.dtype,
                    bytes: bytes.len(),
                    values: range.len(),
                });
            }
            for (v, b) in out[range].iter_mut().zip(bytes.chunks_exact(4)) {
                *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            found = true;
        }
        Ok(found.then_some(out))
    }

    /// The largest value of the scalar `name` over the parameters (0 when none has it).
    pub fn max_count(&self, layout: &ParamLayout, name: &str) -> Result<usize, StateFileError> {
        let mut max = 0;
        for k in 0..layout.entries().len() {
            let key = format!("{}.{name}", k + 1);
            if let Some(&v) = self.scalars.get(&key) {
                let v = usize::try_from(v).map_err(|_| StateFileError::Scalar { name: key })?;
                max = max.max(v);
            }
        }
        Ok(max)
    }
}
