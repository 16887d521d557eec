//! The run directory: the config used, `metrics.jsonl`, and checkpoints.
//!
//! ```text
//! RUN_DIR/
//!   config.toml              the run config as used (defaults filled in); `--resume` reads it
//!   metrics.jsonl            one JSON object per status interval (appended to on resume)
//!   metrics.csv              the same rows as CSV (columns: `metrics::COLUMNS`)
//!   events.out.tfevents.*    the same quantities for TensorBoard (one file per learner start)
//!   checkpoints/
//!     update-000000001234/   periodic checkpoints (the newest `learner.keep_checkpoints`)
//!     final/                 written when the run ends (target, budget, SIGTERM, ctrl-c)
//! ```
//!
//! A checkpoint holds `params.bin` (LE f32, layout order), `checkpoint.json` (counters, layout,
//! fingerprint, the observation/return normalisation statistics, the algorithm's own state) and
//! what the algorithm saves beside it (`optimizer.bpk`; DQN: `target.bin`, optionally
//! `replay.bin`). Each is written into a temporary directory and renamed into place, so a
//! checkpoint directory is either complete or absent.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shoal_common::codec::{ParamLayout, encode_f32};
use shoal_common::config::RunConfig;
use shoal_common::normalize::NormStats;

use crate::LearnerError;
use crate::metrics;
use crate::tensorboard::EventWriter;

/// An open run directory.
pub struct RunDir {
    path: PathBuf,
    metrics: BufWriter<File>,
    csv: BufWriter<File>,
    events: EventWriter,
}

/// The run's counters, saved with every checkpoint and restored on resume.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunCounters {
    /// Parameter version.
    pub version: u64,
    /// Environment steps.
    pub env_steps: u64,
    /// Updates.
    pub updates: u64,
    /// Finished episodes.
    pub episodes: u64,
    /// Returns of the last (up to 100) finished episodes, oldest first.
    pub recent_returns: Vec<f32>,
    /// Their lengths.
    pub recent_lengths: Vec<u32>,
    /// Rollouts trained on (PPO).
    pub rollouts_used: u64,
    /// Rollouts dropped as stale (PPO).
    pub rollouts_stale: u64,
    /// Gradients applied (A3C).
    pub gradients_applied: u64,
    /// Gradients dropped as stale by the trainer (A3C).
    pub gradients_stale: u64,
    /// The last greedy evaluation's mean return.
    pub eval_return_mean: Option<f64>,
    /// Seconds of training before this checkpoint (summed over resumes).
    pub elapsed_secs: f64,
    /// The next actor id the learner hands out (ids are not reused after a resume).
    pub next_actor_id: u32,
}

/// What every checkpoint holds besides the algorithm's own files.
#[derive(Clone, Copy)]
pub struct CheckpointContent<'a> {
    /// The algorithm's name (`ppo`, `a3c`, `dqn`).
    pub algorithm: &'a str,
    /// The parameters' layout (its fingerprint is checked on resume).
    pub layout: &'a ParamLayout,
    /// The parameters, in layout order.
    pub params: &'a [f32],
    /// Normalisation statistics.
    pub normalization: &'a NormStats,
    /// The run's counters.
    pub counters: &'a RunCounters,
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
    /// The algorithm's own state (`checkpoint.json` → `state`).
    pub state: Value,
}

/// Why a checkpoint could not be read.
fn bad_checkpoint(path: &Path, message: impl std::fmt::Display) -> LearnerError {
    LearnerError::RunDir {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_string()),
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LearnerError + '_ {
    move |source| LearnerError::RunDir {
        path: path.to_path_buf(),
        source,
    }
}

impl RunDir {
    /// Creates `path` (and parents), writes `config.toml`, opens `metrics.jsonl`.
    pub fn create(path: &Path, config: &RunConfig) -> Result<Self, LearnerError> {
        fs::create_dir_all(path).map_err(io_err(path))?;
        let config_path = path.join("config.toml");
        fs::write(&config_path, config.to_toml()).map_err(io_err(&config_path))?;
        Self::open(path)
    }

    /// Opens an existing run directory (to resume it): the metrics files are appended to, and
    /// a new TensorBoard event file is started.
    pub fn open(path: &Path) -> Result<Self, LearnerError> {
        let append = |name: &str| {
            let p = path.join(name);
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .map_err(io_err(&p))
        };
        let metrics = append("metrics.jsonl")?;
        let csv_path = path.join("metrics.csv");
        let mut csv = BufWriter::new(append("metrics.csv")?);
        if csv.get_ref().metadata().map_err(io_err(&csv_path))?.len() == 0 {
            writeln!(csv, "{}", metrics::csv_header()).map_err(io_err(&csv_path))?;
            csv.flush().map_err(io_err(&csv_path))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            metrics: BufWriter::new(metrics),
            csv,
            events: EventWriter::create(path).map_err(io_err(path))?,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one metrics row to `metrics.jsonl`, `metrics.csv` and the TensorBoard events
    /// (step: env steps), each flushed, so a crash loses at most the row being written.
    pub fn write_metrics(&mut self, row: &Value) -> Result<(), LearnerError> {
        let path = self.path.join("metrics.jsonl");
        serde_json::to_writer(&mut self.metrics, row)
            .map_err(|e| io_err(&path)(std::io::Error::other(e)))?;
        self.metrics.write_all(b"\n").map_err(io_err(&path))?;
        self.metrics.flush().map_err(io_err(&path))?;
        let path = self.path.join("metrics.csv");
        writeln!(self.csv, "{}", metrics::csv_line(row)).map_err(io_err(&path))?;
        self.csv.flush().map_err(io_err(&path))?;
        let step = row["env_steps"].as_u64().unwrap_or(0);
        self.events
            .scalars(step, &metrics::tensorboard_scalars(row))
            .map_err(io_err(self.events.path()))
    }

    /// Writes `checkpoints/NAME/` atomically: into a temporary directory, then renamed.
    /// `save_state` writes the algorithm's own files into the directory it is given and returns
    /// the algorithm's state for `checkpoint.json`.
    pub fn write_checkpoint(
        &self,
        name: &str,
        content: &CheckpointContent,
        save_state: impl FnOnce(&Path) -> Result<Value, String>,
    ) -> Result<PathBuf, LearnerError> {
        let CheckpointContent {
            algorithm,
            layout,
            params,
            normalization,
            counters,
        } = *content;
        let dir = self.path.join("checkpoints");
        let tmp = dir.join(format!(".{name}.tmp"));
        let done = dir.join(name);
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let params_path = tmp.join("params.bin");
        fs::write(&params_path, encode_f32(params)).map_err(io_err(&params_path))?;
        let state = save_state(&tmp).map_err(|e| io_err(&tmp)(std::io::Error::other(e)))?;
        let meta = json!({
            "format": "shoal-checkpoint-v2",
            "algorithm": algorithm,
            "version": counters.version,
            "env_steps": counters.env_steps,
            "updates": counters.updates,
            "episodes": counters.episodes,
            "counters": counters,
            "model_fingerprint": layout.fingerprint(),
            "normalization": normalization,
            "params": layout.entries().iter().map(|e| json!({"path": e.path, "shape": e.shape})).collect::<Vec<_>>(),
            "state": state,
        });
        let meta_path = tmp.join("checkpoint.json");
        fs::write(
            &meta_path,
            serde_json::to_string_pretty(&meta).expect("json"),
        )
        .map_err(io_err(&meta_path))?;
        // Everything on disk before the rename makes it visible.
        sync_dir(&tmp);
        let _ = fs::remove_dir_all(&done);
        fs::rename(&tmp, &done).map_err(io_err(&done))?;
        sync_dir(&dir);
        Ok(done)
    }

    /// Writes a periodic checkpoint named after the update count and deletes all but the
    /// newest `keep` periodic ones.
    pub fn write_periodic_checkpoint(
        &self,
        keep: usize,
        content: &CheckpointContent,
        save_state: impl FnOnce(&Path) -> Result<Value, String>,
    ) -> Result<PathBuf, LearnerError> {
        let name = format!("update-{:012}", content.counters.updates);
        let done = self.write_checkpoint(&name, content, save_state)?;
        let mut periodic: Vec<PathBuf> = fs::read_dir(self.path.join("checkpoints"))
            .map_err(io_err(&self.path))?
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

    /// The newest complete checkpoint of this run ([`newest_checkpoint_dir`]), checked against
    /// the run's `algorithm` and `layout`. `None` when the run has none.
    pub fn latest_checkpoint(
        &self,
        algorithm: &str,
        layout: &ParamLayout,
    ) -> Result<Option<Checkpoint>, LearnerError> {
        newest_checkpoint_dir(&self.path)?
            .map(|dir| load_checkpoint(&dir, algorithm, layout))
            .transpose()
    }
}

/// The newest complete checkpoint directory under `run_dir/checkpoints/` (most updates, then
/// most env steps; `final` wins a tie). `None` when there is none.
pub fn newest_checkpoint_dir(run_dir: &Path) -> Result<Option<PathBuf>, LearnerError> {
    let dir = run_dir.join("checkpoints");
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(None);
    };
    let mut best: Option<((u64, u64, bool), PathBuf)> = None;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // an interrupted write
        }
        let Ok(text) = fs::read_to_string(path.join("checkpoint.json")) else {
            continue;
        };
        let meta: Value = serde_json::from_str(&text).map_err(|e| bad_checkpoint(&path, e))?;
        let key = (
            meta["updates"].as_u64().unwrap_or(0),
            meta["env_steps"].as_u64().unwrap_or(0),
            name == "final",
        );
        if best.as_ref().is_none_or(|(k, _)| key > *k) {
            best = Some((key, path));
        }
    }
    Ok(best.map(|(_, path)| path))
}

/// Reads the checkpoint in `dir`, checked against `algorithm` (when given) and `layout`.
pub fn load_checkpoint(
    dir: &Path,
    algorithm: &str,
    layout: &ParamLayout,
) -> Result<Checkpoint, LearnerError> {
    let meta_path = dir.join("checkpoint.json");
    let text = fs::read_to_string(&meta_path).map_err(io_err(&meta_path))?;
    let meta: Value = serde_json::from_str(&text).map_err(|e| bad_checkpoint(dir, e))?;
    if meta["algorithm"] != algorithm {
        return Err(bad_checkpoint(
            dir,
            format!(
                "written by a {} run; this run trains with {algorithm}",
                meta["algorithm"]
            ),
        ));
    }
    if meta["model_fingerprint"] != layout.fingerprint().as_str() {
        return Err(bad_checkpoint(
            dir,
            "its model layout differs from the run config's",
        ));
    }
    let bytes = fs::read(dir.join("params.bin")).map_err(io_err(dir))?;
    let params = layout.decode(&bytes).map_err(|e| bad_checkpoint(dir, e))?;
    if params.iter().any(|x| !x.is_finite()) {
        return Err(bad_checkpoint(dir, "parameters are not all finite"));
    }
    let normalization: NormStats = serde_json::from_value(meta["normalization"].clone())
        .map_err(|e| bad_checkpoint(dir, e))?;
    let counters: RunCounters =
        serde_json::from_value(meta["counters"].clone()).map_err(|e| bad_checkpoint(dir, e))?;
    Ok(Checkpoint {
        dir: dir.to_path_buf(),
        params,
        normalization,
        counters,
        state: meta["state"].clone(),
    })
}

/// A checkpoint named on the command line: a checkpoint directory (`RUN_DIR/checkpoints/NAME`)
/// or a run directory (its newest checkpoint). Returns the run directory and the checkpoint's.
pub fn locate_checkpoint(path: &Path) -> Result<(PathBuf, PathBuf), LearnerError> {
    if path.join("checkpoint.json").exists() {
        let run_dir = path
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| bad_checkpoint(path, "not inside a run directory"))?;
        return Ok((run_dir.to_path_buf(), path.to_path_buf()));
    }
    match newest_checkpoint_dir(path)? {
        Some(dir) => Ok((path.to_path_buf(), dir)),
        None => Err(bad_checkpoint(
            path,
            "neither a checkpoint directory nor a run directory with checkpoints",
        )),
    }
}

/// Flushes a directory's entries to disk (best effort: not every file system allows it).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// `runs/<UTC timestamp>-<env>`: the default run directory.
pub fn default_run_dir(env_id: &str) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    PathBuf::from("runs").join(format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{env_id}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_common::codec::ParamEntry;

    #[test]
    fn checkpoints_are_kept_pruned_and_the_newest_is_found() {
        let root = std::env::temp_dir().join(format!("shoal-rundir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let dir = RunDir::create(&root, &RunConfig::default()).unwrap();
        let layout = ParamLayout::new(vec![ParamEntry {
            path: "w".into(),
            shape: vec![2],
        }]);
        let stats = NormStats::new(1);
        assert!(dir.latest_checkpoint("ppo", &layout).unwrap().is_none());
        for updates in 1..=5u64 {
            let counters = RunCounters {
                updates,
                env_steps: 10 * updates,
                recent_returns: vec![updates as f32],
                ..RunCounters::default()
            };
            let params = [updates as f32, -1.0];
            let content = CheckpointContent {
                algorithm: "ppo",
                layout: &layout,
                params: &params,
                normalization: &stats,
                counters: &counters,
            };
            dir.write_periodic_checkpoint(2, &content, |p| {
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
        let c = dir.latest_checkpoint("ppo", &layout).unwrap().unwrap();
        assert_eq!(c.params, vec![5.0, -1.0]);
        assert_eq!(c.counters.env_steps, 50);
        assert_eq!(c.counters.recent_returns, vec![5.0]);
        assert_eq!(c.state, json!({"n": 5}));
        assert!(c.dir.join("optimizer.bpk").exists());
        // The wrong algorithm or another layout is refused.
        assert!(dir.latest_checkpoint("dqn", &layout).is_err());
        let other = ParamLayout::new(vec![ParamEntry {
            path: "w".into(),
            shape: vec![3],
        }]);
        assert!(dir.latest_checkpoint("ppo", &other).is_err());
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_414), (2025, 11, 22));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
