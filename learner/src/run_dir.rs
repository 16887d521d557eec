//! The run directory: the config used, the metrics files, TensorBoard events, and where the
//! checkpoints go ([`crate::checkpoint`]).
//!
//! ```text
//! RUN_DIR/
//!   config.toml              the run config as used (defaults filled in); `--resume` reads it
//!   metrics.jsonl            one JSON object per status interval (appended to on resume)
//!   metrics.csv              the same rows as CSV (columns: `telemetry::COLUMNS`)
//!   episodes.csv             one row per finished episode: env_steps,return,length
//!   events.out.tfevents.*    the same quantities for TensorBoard (one file per learner start)
//!   summary.json             how the run ended (written at its end; `shoal runs` reads it)
//!   checkpoints/
//!     update-000000001234/   periodic checkpoints (the newest `learner.keep_checkpoints`)
//!     final/                 written when the run ends (target, budget, SIGTERM, ctrl-c)
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use shoal_common::config::RunConfig;

use crate::error::LearnerError;
use crate::summary::RunSummary;
use crate::telemetry::StatusRow;
use crate::telemetry::metrics;
use crate::telemetry::progress::Episode;
use crate::telemetry::tensorboard::EventWriter;

/// An open run directory.
pub struct RunDir {
    path: PathBuf,
    metrics: BufWriter<File>,
    episodes: BufWriter<File>,
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
        let mut dir = Self::open(path)?;
        // The config beside the curves, in TensorBoard's text tab (a code block in Markdown).
        let text = format!("```toml\n{}```", config.to_toml());
        dir.events
            .text(CONFIG_TAG, &text)
            .map_err(io_err(dir.events.path()))?;
        Ok(dir)
    }

    /// Opens an existing run directory (to resume it): the metrics files are appended to, and
    /// a new TensorBoard event file is started.
    pub fn open(path: &Path) -> Result<Self, LearnerError> {
        // The run is going again: how it ended before is no longer its status.
        let summary = path.join("summary.json");
        match fs::remove_file(&summary) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&summary)(e)),
            _ => {}
        }
        let append = |name: &str| {
            let p = path.join(name);
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .map_err(io_err(&p))
        };
        let metrics = append("metrics.jsonl")?;
        let episodes_path = path.join("episodes.csv");
        let mut episodes = BufWriter::new(append("episodes.csv")?);
        if episodes
            .get_ref()
            .metadata()
            .map_err(io_err(&episodes_path))?
            .len()
            == 0
        {
            writeln!(episodes, "env_steps,return,length").map_err(io_err(&episodes_path))?;
            episodes.flush().map_err(io_err(&episodes_path))?;
        }
        let csv_path = path.join("metrics.csv");
        let mut csv = BufWriter::new(append("metrics.csv")?);
        if csv.get_ref().metadata().map_err(io_err(&csv_path))?.len() == 0 {
            writeln!(csv, "{}", metrics::csv_header()).map_err(io_err(&csv_path))?;
            csv.flush().map_err(io_err(&csv_path))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            metrics: BufWriter::new(metrics),
            episodes,
            csv,
            events: EventWriter::create(path).map_err(io_err(path))?,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `summary.json`: how the run ended (`shoal runs` reads it).
    pub fn write_summary(&self, summary: &RunSummary) -> Result<(), LearnerError> {
        let path = self.path.join("summary.json");
        let text = serde_json::to_string_pretty(summary)
            .map_err(|e| io_err(&path)(std::io::Error::other(e)))?;
        fs::write(&path, text + "\n").map_err(io_err(&path))
    }

    /// Appends finished episodes to `episodes.csv` and to the TensorBoard events (one point
    /// each, at the env steps counted when it arrived).
    pub fn write_episodes(&mut self, episodes: &[Episode]) -> Result<(), LearnerError> {
        if episodes.is_empty() {
            return Ok(());
        }
        let path = self.path.join("episodes.csv");
        for e in episodes {
            writeln!(
                self.episodes,
                "{},{},{}",
                e.env_steps, e.episode_return, e.length
            )
            .map_err(io_err(&path))?;
        }
        self.episodes.flush().map_err(io_err(&path))?;
        let points: Vec<_> = episodes
            .iter()
            .map(|e| {
                let scalars = vec![
                    (metrics::EPISODE_RETURN_TAG.to_string(), e.episode_return),
                    (metrics::EPISODE_LENGTH_TAG.to_string(), e.length as f32),
                ];
                (e.env_steps, scalars)
            })
            .collect();
        self.events
            .scalar_events(&points)
            .map_err(io_err(self.events.path()))
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

/// TensorBoard tag of the run's config (text).
pub const CONFIG_TAG: &str = "config";

/// Where runs go by default (relative to the working directory).
pub const RUNS_ROOT: &str = "runs";

/// The files and directories a run writes; a directory holding any of them holds a run.
/// (`reference.bin`: the KL leash's reference policy; `pretrain.json`: `shoal pretrain`'s
/// report.)
const RUN_FILES: [&str; 8] = [
    "config.toml",
    "summary.json",
    "metrics.jsonl",
    "metrics.csv",
    "episodes.csv",
    "checkpoints",
    "reference.bin",
    "pretrain.json",
];

/// Whether `path` holds (part of) a run: another run must not write there unless told to.
pub fn holds_run(path: &Path) -> bool {
    RUN_FILES.iter().any(|f| path.join(f).exists()) || !event_files(path).is_empty()
}

/// Deletes the run in `path` (its config, metrics, TensorBoard events, plot and checkpoints),
/// leaving anything else the user put there.
pub fn clear_run(path: &Path) -> Result<(), LearnerError> {
    for name in RUN_FILES.iter().chain(&["plot.png"]) {
        let p = path.join(name);
        let removed = if p.is_dir() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        match removed {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(&p)(e)),
            _ => {}
        }
    }
    for p in event_files(path) {
        fs::remove_file(&p).map_err(io_err(&p))?;
    }
    Ok(())
}

/// The TensorBoard event files in `path`.
fn event_files(path: &Path) -> Vec<PathBuf> {
    fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("events.out.tfevents."))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The default run directory under `root`, named after the run:
/// `<env>-<algorithm>-s<seed>-<YYYYmmdd-HHMMSS UTC>` ([`claim_new`] makes it unique).
pub fn default_run_dir(root: &Path, config: &RunConfig) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    // Ids with settings or a URL (`Text-Copy-v0?length=3`, `dm_env_rpc://host:port?env=…`)
    // make one plain directory name.
    let env: String = config
        .env_id
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
            _ => '_',
        })
        .take(80)
        .collect();
    root.join(format!(
        "{}-{}-s{}-{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        env,
        config.algorithm.name(),
        config.seed,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    ))
}

/// Creates `path`, or `path-2`, `path-3`, … when it exists, and returns the one created: two
/// runs started in the same second never share a directory.
pub fn claim_new(path: &Path) -> Result<PathBuf, LearnerError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    for k in 1u32.. {
        let candidate = match k {
            1 => path.to_path_buf(),
            k => PathBuf::from(format!("{}-{k}", path.display())),
        };
        match fs::create_dir(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(&candidate)(e)),
        }
    }
    unreachable!("some suffix is free")
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
    fn default_names_say_what_ran_and_never_collide() {
        let root = tempfile::tempdir().unwrap();
        let config = RunConfig::default();
        let name = default_run_dir(root.path(), &config);
        let a = claim_new(&name).unwrap();
        let b = claim_new(&name).unwrap();
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("CartPole-v1-ppo-s1-20"), "{name}");
        assert!(a.is_dir() && b.is_dir() && !holds_run(&a));
    }

    #[test]
    fn a_run_is_recognised_and_cleared_without_touching_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path();
        fs::write(path.join("notes.txt"), "mine").unwrap();
        assert!(!holds_run(path));
        RunDir::create(path, &RunConfig::default()).unwrap();
        fs::create_dir_all(path.join("checkpoints/final")).unwrap();
        assert!(holds_run(path));
        clear_run(path).unwrap();
        assert!(
            !holds_run(path),
            "{:?}",
            fs::read_dir(path).unwrap().collect::<Vec<_>>()
        );
        assert!(path.join("notes.txt").exists());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_414), (2025, 11, 22));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
