//! The run directory: the config used, the metrics files, TensorBoard events, and where the
//! checkpoints go ([`crate::checkpoint`]).
//!
//! ```text
//! RUN_DIR/
//!   config.toml              the run config as used (defaults filled in); `--resume` reads it
//!   metrics.jsonl            one JSON object per status interval (appended to on resume)
//!   metrics.csv              the same rows as CSV (columns: `telemetry::COLUMNS`)
//!   events.out.tfevents.*    the same quantities for TensorBoard (one file per learner start)
//!   checkpoints/
//!     update-000000001234/   periodic checkpoints (the newest `learner.keep_checkpoints`)
//!     final/                 written when the run ends (target, budget, SIGTERM, ctrl-c)
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use shoal_common::config::RunConfig;

use crate::error::LearnerError;
use crate::telemetry::StatusRow;
use crate::telemetry::metrics;
use crate::telemetry::tensorboard::EventWriter;

/// An open run directory.
pub struct RunDir {
    path: PathBuf,
    metrics: BufWriter<File>,
    csv: BufWriter<File>,
    events: EventWriter,
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
    pub fn write_metrics(&mut self, row: &StatusRow) -> Result<(), LearnerError> {
        let path = self.path.join("metrics.jsonl");
        serde_json::to_writer(&mut self.metrics, row)
            .map_err(|e| io_err(&path)(std::io::Error::other(e)))?;
        self.metrics.write_all(b"\n").map_err(io_err(&path))?;
        self.metrics.flush().map_err(io_err(&path))?;
        let path = self.path.join("metrics.csv");
        writeln!(self.csv, "{}", metrics::csv_line(row)).map_err(io_err(&path))?;
        self.csv.flush().map_err(io_err(&path))?;
        let step = row.env_steps.unwrap_or(0);
        self.events
            .scalars(step, &metrics::tensorboard_scalars(row))
            .map_err(io_err(self.events.path()))
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
