//! The run directory: the config used, `metrics.jsonl`, and checkpoints.
//!
//! ```text
//! RUN_DIR/
//!   config.toml          the run config as used (defaults filled in)
//!   metrics.jsonl        one JSON object per status interval
//!   checkpoints/final/   params.bin (LE f32, layout order), optimizer.bpk, checkpoint.json
//!                        (counters, layout, and the observation/return normalisation
//!                        statistics)
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use shoal_common::codec::{ParamLayout, encode_f32};
use shoal_common::config::RunConfig;
use shoal_common::normalize::NormStats;

use crate::LearnerError;

/// An open run directory.
pub struct RunDir {
    path: PathBuf,
    metrics: BufWriter<File>,
}

/// Counters saved with a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckpointCounters {
    /// Parameter version.
    pub version: u64,
    /// Environment steps.
    pub env_steps: u64,
    /// Updates.
    pub updates: u64,
    /// Finished episodes.
    pub episodes: u64,
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
        let metrics_path = path.join("metrics.jsonl");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .map_err(io_err(&metrics_path))?;
        Ok(Self {
            path: path.to_path_buf(),
            metrics: BufWriter::new(file),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one metrics row (flushed, so a crash loses at most the row being written).
    pub fn write_metrics(&mut self, row: &Value) -> Result<(), LearnerError> {
        let path = self.path.join("metrics.jsonl");
        serde_json::to_writer(&mut self.metrics, row)
            .map_err(|e| io_err(&path)(std::io::Error::other(e)))?;
        self.metrics.write_all(b"\n").map_err(io_err(&path))?;
        self.metrics.flush().map_err(io_err(&path))
    }

    /// Writes `checkpoints/NAME/` atomically: into a temporary directory, then renamed.
    pub fn write_checkpoint(
        &self,
        name: &str,
        layout: &ParamLayout,
        params: &[f32],
        normalization: &NormStats,
        counters: CheckpointCounters,
        save_optimizer: impl FnOnce(&Path) -> Result<(), String>,
    ) -> Result<PathBuf, LearnerError> {
        let dir = self.path.join("checkpoints");
        let tmp = dir.join(format!(".{name}.tmp"));
        let done = dir.join(name);
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let params_path = tmp.join("params.bin");
        fs::write(&params_path, encode_f32(params)).map_err(io_err(&params_path))?;
        let opt_path = tmp.join("optimizer.bpk");
        save_optimizer(&opt_path).map_err(|e| io_err(&opt_path)(std::io::Error::other(e)))?;
        let meta = json!({
            "format": "shoal-checkpoint-v1",
            "version": counters.version,
            "env_steps": counters.env_steps,
            "updates": counters.updates,
            "episodes": counters.episodes,
            "model_fingerprint": layout.fingerprint(),
            "normalization": normalization,
            "params": layout.entries().iter().map(|e| json!({"path": e.path, "shape": e.shape})).collect::<Vec<_>>(),
        });
        let meta_path = tmp.join("checkpoint.json");
        fs::write(
            &meta_path,
            serde_json::to_string_pretty(&meta).expect("json"),
        )
        .map_err(io_err(&meta_path))?;
        let _ = fs::remove_dir_all(&done);
        fs::rename(&tmp, &done).map_err(io_err(&done))?;
        Ok(done)
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

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_414), (2025, 11, 22));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
