//! Checkpoints: what one holds, written atomically, read back with typed metadata, found by
//! recency.
//!
//! ```text
//! RUN_DIR/checkpoints/NAME/
//!   params.bin         the parameters, LE f32 in layout order
//!   checkpoint.json    CheckpointMeta: format, algorithm, counters, layout and fingerprint,
//!                      normalisation statistics, the algorithm's own typed state
//!   ...                the algorithm's own files (optimizer.bpk; DQN: target.bin, replay.bin)
//! ```
//!
//! Each is written into a temporary directory and renamed into place, so a checkpoint directory
//! is either complete or absent. Format 3 is written; format 2 (shoal before the typed
//! redesign: the same fields, fewer counters) is read as well.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shoal_common::codec::{CodecError, ParamLayout, encode_f32};
use shoal_common::config::AlgorithmKind;
use shoal_common::normalize::NormStats;
use shoal_compute::optim::{FlatOptimizer, OPTIMIZER_FILE, StateFileError};
use thiserror::Error;

use crate::edge::actor_ids::IdKey;
use crate::telemetry::RunCounters;

/// The format this build writes.
pub const FORMAT: u32 = 3;
/// The formats this build reads.
pub const READABLE_FORMATS: [u32; 2] = [2, 3];
/// `checkpoint.json`'s `format` value for format `n`.
fn format_name(n: u32) -> String {
    format!("shoal-checkpoint-v{n}")
}

/// Why a checkpoint could not be written or read.
#[derive(Debug, Error)]
pub enum CheckpointError {
    /// A file could not be written or read.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `checkpoint.json` is not what this build reads.
    #[error("checkpoint {path}: checkpoint.json is unreadable: {message}")]
    Meta {
        /// The checkpoint.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// Written in a format this build does not read.
    #[error(
        "checkpoint {path} has format `{found}`; this shoal reads formats {}: resume it with the \
         shoal that wrote it",
        READABLE_FORMATS.map(|n| n.to_string()).join(" and ")
    )]
    Format {
        /// The checkpoint.
        path: PathBuf,
        /// Its `format`.
        found: String,
    },
    /// Written by a run of another algorithm.
    #[error("checkpoint {path} was written by a {found} run; this run trains with {want}")]
    Algorithm {
        /// The checkpoint.
        path: PathBuf,
        /// Its algorithm.
        found: &'static str,
        /// The run's.
        want: &'static str,
    },
    /// Its model layout differs from the run's.
    #[error("checkpoint {path}: its model layout differs from the run config's")]
    Layout {
        /// The checkpoint.
        path: PathBuf,
    },
    /// The parameters do not decode, or are not finite.
    #[error("checkpoint {path}: params.bin: {source}")]
    Params {
        /// The checkpoint.
        path: PathBuf,
        /// Why.
        source: CodecError,
    },
    /// The algorithm's own state could not be saved or restored.
    #[error("checkpoint {path}: {message}")]
    State {
        /// The checkpoint.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The optimizer's state could not be saved or restored.
    #[error("checkpoint optimizer state: {0}")]
    Optimizer(#[from] StateFileError),
    /// Neither a checkpoint nor a run directory with one.
    #[error("{path}: neither a checkpoint directory nor a run directory with checkpoints")]
    NotFound {
        /// As given.
        path: PathBuf,
    },
}

impl CheckpointError {
    /// An I/O error on `path`.
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The algorithm's state in `path` is unusable.
    pub fn state(path: &Path, message: impl std::fmt::Display) -> Self {
        CheckpointError::State {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }
}

/// One parameter tensor as `checkpoint.json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamInfo {
    /// Module path.
    pub path: String,
    /// Shape.
    pub shape: Vec<usize>,
}

/// `checkpoint.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// `shoal-checkpoint-v<N>`.
    pub format: String,
    /// The run's algorithm.
    pub algorithm: AlgorithmKind,
    /// Parameter version (also in `counters`; here for readers of the file).
    pub version: u64,
    /// Environment steps (also in `counters`).
    pub env_steps: u64,
    /// Updates (also in `counters`).
    pub updates: u64,
    /// Finished episodes (also in `counters`).
    pub episodes: u64,
    /// The run's counters.
    pub counters: RunCounters,
    /// The layout fingerprint of the parameters.
    pub model_fingerprint: String,
    /// Observation and return normalisation statistics.
    pub normalization: NormStats,
    /// The parameters' layout, in `params.bin` order.
    pub params: Vec<ParamInfo>,
    /// The algorithm's own typed state (see each algorithm's `State`); `null` when it has none.
    #[serde(default)]
    pub state: serde_json::Value,
    /// The key of the actors' id secrets (hex; absent in checkpoints written before actors
    /// proved their ids: a resumed run then draws a new one and its actors get new ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor_id_key: Option<String>,
}

/// What every checkpoint holds besides the algorithm's own files and state.
#[derive(Clone, Copy)]
pub struct CheckpointContent<'a> {
    /// The run's algorithm.
    pub algorithm: AlgorithmKind,
    /// The parameters' layout (its fingerprint is checked on resume).
    pub layout: &'a ParamLayout,
    /// The parameters, in layout order.
    pub params: &'a [f32],
    /// Normalisation statistics.
    pub normalization: &'a NormStats,
    /// The run's counters.
    pub counters: &'a RunCounters,
    /// The key of the actors' id secrets.
    pub actor_id_key: &'a IdKey,
}

/// A checkpoint read back from disk.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Its directory (the algorithm's own files are there).
    pub dir: PathBuf,
    /// Parameters in layout order.
    pub params: Vec<f32>,
    /// Normalisation statistics.
    pub normalization: NormStats,
    /// Counters.
    pub counters: RunCounters,
    /// The algorithm's own state, for it to read as its typed state.
    pub state: serde_json::Value,
    /// The key of the actors' id secrets, when the checkpoint has one.
    pub actor_id_key: Option<IdKey>,
}

/// Writes `checkpoints/NAME/` under `run_dir` atomically: into a temporary directory, then
/// renamed. `save_state` writes the algorithm's own files into the directory it is given and
/// returns the algorithm's state for `checkpoint.json`.
pub fn write(
    run_dir: &Path,
    name: &str,
    content: &CheckpointContent,
    save_state: impl FnOnce(&Path) -> Result<serde_json::Value, CheckpointError>,
) -> Result<PathBuf, CheckpointError> {
    let c = content;
    let dir = run_dir.join("checkpoints");
    let tmp = dir.join(format!(".{name}.tmp"));
    let done = dir.join(name);
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(CheckpointError::io(&tmp))?;
    let params_path = tmp.join("params.bin");
    fs::write(&params_path, encode_f32(c.params)).map_err(CheckpointError::io(&params_path))?;
    let state = save_state(&tmp)?;
    let meta = CheckpointMeta {
        format: format_name(FORMAT),
        algorithm: c.algorithm,
        version: c.counters.version,
        env_steps: c.counters.env_steps,
        updates: c.counters.updates,
        episodes: c.counters.episodes,
        counters: c.counters.clone(),
        model_fingerprint: c.layout.fingerprint(),
        normalization: c.normalization.clone(),
        params: c
            .layout
            .entries()
            .iter()
            .map(|e| ParamInfo {
                path: e.path.clone(),
                shape: e.shape.clone(),
            })
            .collect(),
        state,
        actor_id_key: Some(c.actor_id_key.to_hex()),
    };
    let meta_path = tmp.join("checkpoint.json");
    let json = serde_json::to_string_pretty(&meta).expect("checkpoint metadata serialises");
    fs::write(&meta_path, json).map_err(CheckpointError::io(&meta_path))?;
    // Everything on disk before the rename makes it visible.
    sync_dir(&tmp);
    let _ = fs::remove_dir_all(&done);
    fs::rename(&tmp, &done).map_err(CheckpointError::io(&done))?;
    sync_dir(&dir);
    Ok(done)
}

/// Writes a periodic checkpoint named after the update count and deletes all but the newest
/// `keep` periodic ones.
pub fn write_periodic(
    run_dir: &Path,
    keep: usize,
    content: &CheckpointContent,
    save_state: impl FnOnce(&Path) -> Result<serde_json::Value, CheckpointError>,
) -> Result<PathBuf, CheckpointError> {
    let name = format!("update-{:012}", content.counters.updates);
    let done = write(run_dir, &name, content, save_state)?;
    let dir = run_dir.join("checkpoints");
    let mut periodic: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(CheckpointError::io(&dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("update-"))
        })
        .collect();
    periodic.sort();
    let excess = periodic.len().saturating_sub(keep);
    for old in &periodic[..excess] {
        let _ = fs::remove_dir_all(old);
    }
    Ok(done)
}

/// Reads `checkpoint.json` in `dir`, in any readable format.
pub fn read_meta(dir: &Path) -> Result<CheckpointMeta, CheckpointError> {
    let meta_path = dir.join("checkpoint.json");
    let text = fs::read_to_string(&meta_path).map_err(CheckpointError::io(&meta_path))?;
    let meta_err = |e: serde_json::Error| CheckpointError::Meta {
        path: dir.to_path_buf(),
        message: e.to_string(),
    };
    // The format first, so that a newer file is refused as such rather than as malformed.
    #[derive(Deserialize)]
    struct Format {
        format: String,
    }
    let Format { format } = serde_json::from_str(&text).map_err(meta_err)?;
    if !READABLE_FORMATS.iter().any(|&n| format == format_name(n)) {
        return Err(CheckpointError::Format {
            path: dir.to_path_buf(),
            found: format,
        });
    }
    serde_json::from_str(&text).map_err(meta_err)
}

/// Reads the checkpoint in `dir`, checked against the run's `algorithm` and `layout`.
pub fn load(
    dir: &Path,
    algorithm: AlgorithmKind,
    layout: &ParamLayout,
) -> Result<Checkpoint, CheckpointError> {
    let meta = read_meta(dir)?;
    if meta.algorithm != algorithm {
        return Err(CheckpointError::Algorithm {
            path: dir.to_path_buf(),
            found: meta.algorithm.name(),
            want: algorithm.name(),
        });
    }
    let params = read_params(dir, &meta, layout)?;
    let actor_id_key = match &meta.actor_id_key {
        Some(hex) => Some(IdKey::from_hex(hex).ok_or_else(|| CheckpointError::Meta {
            path: dir.to_path_buf(),
            message: "actor_id_key is not 64 hex digits".into(),
        })?),
        None => None,
    };
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        params,
        normalization: meta.normalization,
        counters: meta.counters,
        state: meta.state,
        actor_id_key,
    })
}

/// The parameters of the checkpoint in `dir`, checked against `layout`, whatever algorithm
/// wrote it: what `shoal train --init` starts from.
pub fn load_params(dir: &Path, layout: &ParamLayout) -> Result<Vec<f32>, CheckpointError> {
    read_params(dir, &read_meta(dir)?, layout)
}

fn read_params(
    dir: &Path,
    meta: &CheckpointMeta,
    layout: &ParamLayout,
) -> Result<Vec<f32>, CheckpointError> {
    if meta.model_fingerprint != layout.fingerprint() {
        return Err(CheckpointError::Layout {
            path: dir.to_path_buf(),
        });
    }
    let params_path = dir.join("params.bin");
    let bytes = fs::read(&params_path).map_err(CheckpointError::io(&params_path))?;
    layout
        .decode(&bytes)
        .map_err(|source| CheckpointError::Params {
            path: dir.to_path_buf(),
            source,
        })
}

/// The newest complete checkpoint directory under `run_dir/checkpoints/` (most updates, then
/// most env steps; `final` wins a tie). `None` when there is none.
pub fn newest_dir(run_dir: &Path) -> Result<Option<PathBuf>, CheckpointError> {
    let dir = run_dir.join("checkpoints");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(None);
    };
    let mut best: Option<((u64, u64, bool), PathBuf)> = None;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !path.join("checkpoint.json").exists() {
            continue; // an interrupted write, or not a checkpoint
        }
        let meta = read_meta(&path)?;
        let key = (meta.updates, meta.env_steps, name == "final");
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, path));
        }
    }
    Ok(best.map(|(_, path)| path))
}

/// A checkpoint named on the command line: a checkpoint directory (`RUN_DIR/checkpoints/NAME`)
/// or a run directory (its newest checkpoint). Returns the run directory and the checkpoint's.
pub fn locate(path: &Path) -> Result<(PathBuf, PathBuf), CheckpointError> {
    let not_found = || CheckpointError::NotFound {
        path: path.to_path_buf(),
    };
    if path.join("checkpoint.json").exists() {
        let run_dir = path.parent().and_then(Path::parent).ok_or_else(not_found)?;
        return Ok((run_dir.to_path_buf(), path.to_path_buf()));
    }
    match newest_dir(path)? {
        Some(dir) => Ok((path.to_path_buf(), dir)),
        None => Err(not_found()),
    }
}

/// Writes a host optimizer's state into the checkpoint directory `dir`, in the file and format
/// every engine's optimizer writes (burn's), so either resumes the other's.
pub fn save_flat_optimizer(
    optimizer: &dyn FlatOptimizer,
    layout: &ParamLayout,
    dir: &Path,
) -> Result<(), CheckpointError> {
    Ok(optimizer.save(layout, &dir.join(OPTIMIZER_FILE))?)
}

/// Reads the optimizer state [`save_flat_optimizer`] (or burn's optimizer) wrote.
pub fn load_flat_optimizer(
    optimizer: &mut dyn FlatOptimizer,
    layout: &ParamLayout,
    dir: &Path,
) -> Result<(), CheckpointError> {
    Ok(optimizer.load(layout, &dir.join(OPTIMIZER_FILE))?)
}

/// Flushes a directory's entries to disk (best effort: not every file system allows it).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use shoal_common::codec::ParamEntry;

    #[test]
    fn checkpoints_are_kept_pruned_and_the_newest_is_found() {
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let layout = ParamLayout::new(vec![ParamEntry {
            path: "w".into(),
            shape: vec![2],
        }]);
        let stats = NormStats::new(1);
        assert!(newest_dir(root).unwrap().is_none());
        for updates in 1..=5u64 {
            let mut counters = RunCounters {
                updates,
                env_steps: 10 * updates,
                ..RunCounters::default()
            };
            counters.add_episodes(&[updates as f32], &[1]);
            let params = [updates as f32, -1.0];
            let key = IdKey::generate().unwrap();
            let content = CheckpointContent {
                algorithm: AlgorithmKind::Ppo,
                layout: &layout,
                params: &params,
                normalization: &stats,
                counters: &counters,
                actor_id_key: &key,
            };
            write_periodic(root, 2, &content, |p| {
                fs::write(p.join("optimizer.bpk"), b"x").unwrap();
                Ok(json!({"n": updates}))
            })
            .unwrap();
        }
        let mut names: Vec<String> = fs::read_dir(root.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["update-000000000004", "update-000000000005"]);
        // A half-written checkpoint is ignored.
        fs::create_dir_all(root.join("checkpoints/.final.tmp")).unwrap();
        let newest = newest_dir(root).unwrap().unwrap();
        let c = load(&newest, AlgorithmKind::Ppo, &layout).unwrap();
        assert_eq!(c.params, vec![5.0, -1.0]);
        assert_eq!(c.counters.env_steps, 50);
        assert_eq!(c.counters.recent.mean(), Some(5.0));
        assert_eq!(c.state, json!({"n": 5}));
        assert!(c.dir.join("optimizer.bpk").exists());
        // The wrong algorithm or another layout is refused.
        assert!(matches!(
            load(&newest, AlgorithmKind::Dqn, &layout),
            Err(CheckpointError::Algorithm { .. })
        ));
        let other = ParamLayout::new(vec![ParamEntry {
            path: "w".into(),
            shape: vec![3],
        }]);
        assert!(matches!(
            load(&newest, AlgorithmKind::Ppo, &other),
            Err(CheckpointError::Layout { .. })
        ));
    }

    #[test]
    fn unknown_formats_are_refused_with_the_formats_this_build_reads() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("checkpoint.json"),
            r#"{"format": "shoal-checkpoint-v9", "algorithm": "ppo"}"#,
        )
        .unwrap();
        let err = read_meta(dir.path()).unwrap_err();
        assert!(matches!(err, CheckpointError::Format { .. }), "{err}");
        assert!(err.to_string().contains("reads formats 2 and 3"), "{err}");
    }
}
