//! `shoal plot`: learning curves of one or more runs as a PNG, from their `metrics.jsonl` (and
//! `episodes.csv`, where the learner wrote one).
//!
//! Six panels: the training return (mean of the last 100 episodes; DQN runs add their greedy
//! evaluation return, dashed; the config's `target_return` is a dashed line) against env steps
//! and against wall-clock, then the losses, the entropy, the approximate KL and the throughput
//! against env steps. The training return comes from `episodes.csv` when the run has one (one
//! point per episode), else from the status rows (one point per status interval). Runs whose
//! configs differ only in their seed form one group: each seed's own curve, faint, under the
//! mean with a band of ± one standard deviation over the range every seed covers (on a common
//! grid), as rl-zoo and CleanRL draw seeds. Every line's legend names its run or group.
//!
//! # Layout
//! - this module: reading run directories, and [`plot`].
//! - `series`: what each panel draws, as data (pure and tested).
//! - `curve`: interpolation, the seeds' mean ± std on a common grid, rolling means.
//! - `draw`: rendering that with plotters.

mod curve;
mod draw;
mod series;

use std::path::{Path, PathBuf};

use plotters::prelude::FontStyle;
use shoal_common::config::RunConfig;
use shoal_learner::telemetry::StatusRow;
use thiserror::Error;
use tracing::warn;

pub use curve::{Band, Curve, mean_band};
pub use draw::draw;
pub use series::group;

/// Why a plot could not be made.
#[derive(Debug, Error)]
pub enum PlotError {
    /// A run directory could not be read.
    #[error("{path}: {message}")]
    Run {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// No run has a return curve.
    #[error(
        "{} {} no finished episodes to plot (no return in metrics.jsonl or episodes.csv: \
         let the run train until episodes finish)",
        list(.runs),
        if .runs.len() == 1 { "has" } else { "have" }
    )]
    NoEpisodes {
        /// The run directories.
        runs: Vec<PathBuf>,
    },
    /// No font to write labels with.
    #[error(
        "no TrueType font found (looked for DejaVu Sans and Liberation Sans); install \
         fonts-dejavu-core or pass --font FILE.ttf"
    )]
    NoFont,
    /// Drawing failed.
    #[error("drawing {path}: {message}")]
    Draw {
        /// The PNG.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// The paths, comma-separated.
fn list(paths: &[PathBuf]) -> String {
    let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    paths.join(", ")
}

/// One run's curves.
#[derive(Debug, Clone)]
pub struct Run {
    /// The directory.
    pub dir: PathBuf,
    /// Its config without the seed (runs with equal keys are seeds of one experiment).
    pub key: String,
    /// The environment.
    pub env_id: String,
    /// The algorithm's name.
    pub algorithm: &'static str,
    /// The seed.
    pub seed: u64,
    /// The config's `target_return`.
    pub target_return: Option<f64>,
    /// Metrics rows.
    pub rows: Vec<StatusRow>,
    /// `(env steps, return)` of every finished episode, in order, from `episodes.csv` (empty
    /// when the run has none).
    pub episodes: Vec<(f64, f64)>,
}

impl Run {
    /// Reads `dir/config.toml`, `dir/metrics.jsonl` and, where there is one, `dir/episodes.csv`.
    pub fn load(dir: &Path) -> Result<Self, PlotError> {
        let err = |path: PathBuf, message: String| PlotError::Run { path, message };
        let config_path = dir.join("config.toml");
        let config = RunConfig::load(&config_path).map_err(|e| err(config_path, e.to_string()))?;
        let key = RunConfig {
            seed: 0,
            ..config.clone()
        }
        .to_toml();
        let metrics_path = dir.join("metrics.jsonl");
        let text = std::fs::read_to_string(&metrics_path)
            .map_err(|e| err(metrics_path.clone(), e.to_string()))?;
        let rows = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<Vec<StatusRow>, _>>()
            .map_err(|e| err(metrics_path, e.to_string()))?;
        let episodes_path = dir.join("episodes.csv");
        let episodes = match std::fs::read_to_string(&episodes_path) {
            Ok(text) => parse_episodes(&text).map_err(|m| err(episodes_path, m))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(err(episodes_path, e.to_string())),
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            key,
            env_id: config.env_id,
            algorithm: config.algorithm.name(),
            seed: config.seed,
            target_return: config.target_return,
            rows,
            episodes,
        })
    }
}

/// `(env_steps, return)` of each row of an `episodes.csv`: a header naming the columns
/// (`env_steps,return,length`; their order is free and other columns are ignored), then one row
/// per finished episode. A last line without its newline (still being written) is left out.
fn parse_episodes(text: &str) -> Result<Vec<(f64, f64)>, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next().filter(|_| text.contains('\n')) else {
        return Ok(Vec::new());
    };
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    let column = |name: &str| {
        columns.iter().position(|c| *c == name).ok_or_else(|| {
            format!(
                "the header `{header}` has no `{name}` column (expected env_steps,return,length)"
            )
        })
    };
    let (steps, ret) = (column("env_steps")?, column("return")?);
    // Every row ends with a newline: a last line without one is still being written.
    let whole = text.lines().count() - usize::from(!text.ends_with('\n'));
    let mut episodes = Vec::new();
    for (i, line) in lines.take_while(|(i, _)| *i < whole) {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let cell = |k: usize| cells.get(k).and_then(|c| c.parse::<f64>().ok());
        match (cell(steps), cell(ret)) {
            (Some(s), Some(r)) if s.is_finite() && r.is_finite() => episodes.push((s, r)),
            _ => {
                return Err(format!(
                    "line {}: `{line}` is not env_steps,return,length",
                    i + 1
                ));
            }
        }
    }
    Ok(episodes)
}

/// Registers a TrueType font for the labels: `font`, else the first of the usual system fonts.
pub fn register_font(font: Option<&Path>) -> Result<(), PlotError> {
    let candidates: Vec<PathBuf> = match font {
        Some(f) => vec![f.to_path_buf()],
        None => [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        ]
        .iter()
        .map(PathBuf::from)
        .collect(),
    };
    for path in candidates {
        if let Ok(bytes) = std::fs::read(&path) {
            // The font must outlive every chart: it is loaded once per process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return Ok(());
            }
        }
    }
    Err(PlotError::NoFont)
}

/// The runs that have a finished episode; an error naming every run when none has, a warning
/// for each run left out otherwise.
fn with_episodes(runs: Vec<Run>) -> Result<Vec<Run>, PlotError> {
    let (runs, empty): (Vec<Run>, Vec<Run>) = runs.into_iter().partition(Run::has_episodes);
    if runs.is_empty() {
        return Err(PlotError::NoEpisodes {
            runs: empty.into_iter().map(|r| r.dir).collect(),
        });
    }
    for run in &empty {
        warn!(run = %run.dir.display(), "no finished episodes to plot: run left out");
    }
    Ok(runs)
}

/// `shoal plot`: loads `dirs`, groups them by config and draws `out`; the number of groups
/// drawn. Runs without a finished episode are left out (with a warning); an error when no run
/// has one.
pub fn plot(dirs: &[PathBuf], out: &Path, font: Option<&Path>) -> Result<usize, PlotError> {
    let runs = dirs
        .iter()
        .map(|d| Run::load(d))
        .collect::<Result<Vec<_>, _>>()?;
    let groups = group(with_episodes(runs)?);
    register_font(font)?;
    draw(&groups, out, (1800, 1000))?;
    Ok(groups.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run directory `name` under `root`: a config with `target`, `metrics.jsonl` holding
    /// `metrics`, and `episodes.csv` holding `episodes` when given.
    fn write_run(
        root: &Path,
        name: &str,
        target: Option<f64>,
        metrics: &str,
        episodes: Option<&str>,
    ) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let config = RunConfig {
            target_return: target,
            ..RunConfig::default()
        };
        std::fs::write(dir.join("config.toml"), config.to_toml()).unwrap();
        std::fs::write(dir.join("metrics.jsonl"), metrics).unwrap();
        if let Some(e) = episodes {
            std::fs::write(dir.join("episodes.csv"), e).unwrap();
        }
        dir
    }

    const METRICS: &str = "{\"time_s\":2.0,\"env_steps\":1000,\"return_mean_100\":21.5}\n";

    #[test]
    fn a_run_without_episodes_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let empty = write_run(tmp.path(), "empty", None, "", None);
        let idle = write_run(
            tmp.path(),
            "idle",
            None,
            "{\"time_s\":2.0,\"env_steps\":0}\n",
            Some("env_steps,return,length\n"),
        );
        let out = tmp.path().join("plot.png");
        let e = plot(std::slice::from_ref(&empty), &out, None).unwrap_err();
        assert!(matches!(e, PlotError::NoEpisodes { .. }), "{e:?}");
        let message = e.to_string();
        assert!(
            message.starts_with(&format!(
                "{} has no finished episodes to plot",
                empty.display()
            )),
            "{message}"
        );
        let e = plot(&[empty.clone(), idle.clone()], &out, None).unwrap_err();
        assert!(
            e.to_string().starts_with(&format!(
                "{}, {} have no finished episodes to plot",
                empty.display(),
                idle.display()
            )),
            "{e}"
        );
        assert!(!out.exists());
    }

    #[test]
    fn runs_without_episodes_are_left_out_of_the_others_plot() {
        let tmp = tempfile::tempdir().unwrap();
        let empty = write_run(tmp.path(), "empty", None, "", None);
        let full = write_run(tmp.path(), "full", None, METRICS, None);
        let runs = vec![Run::load(&empty).unwrap(), Run::load(&full).unwrap()];
        let kept = with_episodes(runs).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].dir, full);
    }

    #[test]
    fn the_target_and_the_episodes_are_read() {
        let tmp = tempfile::tempdir().unwrap();
        let csv = "env_steps,return,length\n10,9.0,9\n30,20.0,20\n55,25.0,25\n70,3";
        let dir = write_run(tmp.path(), "run", Some(475.0), METRICS, Some(csv));
        let run = Run::load(&dir).unwrap();
        assert_eq!(run.target_return, Some(475.0));
        assert_eq!((run.env_id.as_str(), run.algorithm), ("CartPole-v1", "ppo"));
        // The last line, cut short while the learner writes it, is left out.
        assert_eq!(run.episodes, vec![(10.0, 9.0), (30.0, 20.0), (55.0, 25.0)]);
        assert!(run.has_episodes());
        let untargeted = write_run(tmp.path(), "plain", None, METRICS, None);
        let run = Run::load(&untargeted).unwrap();
        assert_eq!((run.target_return, run.episodes.len()), (None, 0));
    }

    #[test]
    fn episodes_csv_columns_are_found_by_name_and_bad_rows_named() {
        assert_eq!(
            parse_episodes("length,return,env_steps\n9,9.5,10\n").unwrap(),
            vec![(10.0, 9.5)]
        );
        assert_eq!(parse_episodes("").unwrap(), vec![]);
        let e = parse_episodes("env_steps,return,length\nten,9,9\n20,1,1\n").unwrap_err();
        assert!(e.starts_with("line 2:"), "{e}");
        let e = parse_episodes("steps,reward\n1,2\n").unwrap_err();
        assert!(e.contains("no `env_steps` column"), "{e}");
    }

    #[test]
    fn a_plot_with_seeds_episodes_and_a_target_is_drawn() {
        if register_font(None).is_err() {
            return; // No system font: the drawing cannot be checked here.
        }
        let tmp = tempfile::tempdir().unwrap();
        let csv: String = (1..=300)
            .map(|i| format!("{},{},{}\n", 10 * i, i, i))
            .collect();
        let csv = format!("env_steps,return,length\n{csv}");
        let a = write_run(tmp.path(), "a", Some(475.0), METRICS, Some(&csv));
        let b = write_run(tmp.path(), "b", Some(475.0), METRICS, None);
        let out = tmp.path().join("plot.png");
        assert_eq!(plot(&[a, b], &out, None).unwrap(), 1);
        assert!(std::fs::metadata(&out).unwrap().len() > 0);
    }
}
