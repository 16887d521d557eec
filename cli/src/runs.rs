//! `shoal runs`: one line per run under a directory (status, steps, best return, wall time),
//! read from each run directory's `config.toml`, `summary.json` and `metrics.jsonl` as the
//! typed config, summary and status rows. A row that does not parse (a running run's line still
//! being written) is left out rather than failing the listing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use shoal_common::config::RunConfig;
use shoal_learner::RunSummary;
use shoal_learner::telemetry::StatusRow;

/// What `shoal runs` shows of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// The run directory.
    pub dir: PathBuf,
    /// Environment id.
    pub env_id: String,
    /// Algorithm name.
    pub algorithm: String,
    /// Seed.
    pub seed: u64,
    /// `solved`, `stopped` (ended before its target or without one) or `incomplete` (running,
    /// or killed before it could end).
    pub status: &'static str,
    /// Environment steps.
    pub env_steps: u64,
    /// Best mean return over the run's status rows (greedy evaluation where the run has one).
    pub best_return: Option<f64>,
    /// Seconds of training.
    pub wall_secs: Option<f64>,
}

/// The runs in `root` (or `root` itself when it is a run directory), and one level further
/// down (the runs of a `--seeds` sweep under `--run-dir`), sorted by path.
pub fn list(root: &Path) -> std::io::Result<Vec<RunRow>> {
    let mut dirs = Vec::new();
    find_runs(root, 2, &mut dirs)?;
    dirs.sort();
    Ok(dirs.iter().filter_map(|d| read_run(d)).collect())
}

/// Run directories at `dir` or below it, at most `depth` levels down.
fn find_runs(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if dir.join("config.toml").exists() {
        out.push(dir.to_path_buf());
        return Ok(());
    }
    if depth == 0 {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            find_runs(&path, depth - 1, out)?;
        }
    }
    Ok(())
}

/// One run's row; `None` when its config cannot be read.
fn read_run(dir: &Path) -> Option<RunRow> {
    let config = RunConfig::load(&dir.join("config.toml")).ok()?;
    let summary: Option<RunSummary> = std::fs::read_to_string(dir.join("summary.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let rows: Vec<StatusRow> = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let last = rows.last();
    let best_return = rows
        .iter()
        .filter_map(|r| r.eval_return_mean.or(r.return_mean_100))
        .reduce(f64::max);
    let status = match &summary {
        Some(s) if s.solved => "solved",
        Some(_) => "stopped",
        None => "incomplete",
    };
    Some(RunRow {
        dir: dir.to_path_buf(),
        env_id: config.env_id,
        algorithm: config.algorithm.name().to_string(),
        seed: config.seed,
        status,
        env_steps: summary
            .as_ref()
            .map(|s| s.env_steps)
            .or(last.and_then(|r| r.env_steps))
            .unwrap_or(0),
        best_return,
        wall_secs: summary
            .as_ref()
            .map(|s| s.wall_secs)
            .or(last.and_then(|r| r.time_s)),
    })
}

/// The table `shoal runs ROOT` prints.
pub fn table(root: &Path, rows: &[RunRow]) -> String {
    let mut out = format!(
        "{:<44} {:<12} {:<5} {:>5} {:<10} {:>9} {:>8} {:>8}\n",
        "RUN", "ENV", "ALGO", "SEED", "STATUS", "STEPS", "BEST", "WALL"
    );
    for r in rows {
        // Named as found under ROOT (a sweep's runs as `sweep/s1`); ROOT itself by its name.
        let name = match r.dir.strip_prefix(root) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.display().to_string(),
            _ => r.dir.file_name().map_or_else(
                || r.dir.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
        };
        let _ = writeln!(
            out,
            "{name:<44} {:<12} {:<5} {:>5} {:<10} {:>9} {:>8} {:>8}",
            r.env_id,
            r.algorithm,
            r.seed,
            r.status,
            r.env_steps,
            r.best_return.map_or("-".into(), |b| format!("{b:.1}")),
            r.wall_secs.map_or("-".into(), |w| format!("{w:.1}s")),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_listed_with_status_steps_best_return_and_time() {
        let root = tempfile::tempdir().unwrap();
        let solved = root.path().join("a-solved");
        let running = root.path().join("b-running");
        for (dir, seed) in [(&solved, 1), (&running, 2)] {
            std::fs::create_dir_all(dir).unwrap();
            let config = RunConfig {
                seed,
                ..RunConfig::default()
            };
            std::fs::write(dir.join("config.toml"), config.to_toml()).unwrap();
            std::fs::write(
                dir.join("metrics.jsonl"),
                "{\"env_steps\":100,\"time_s\":1.0,\"return_mean_100\":20.0}\n\
                 {\"env_steps\":200,\"time_s\":2.5,\"return_mean_100\":480.5}\n",
            )
            .unwrap();
        }
        let summary = RunSummary {
            reason: "target_return 475 reached".into(),
            solved: true,
            counters: shoal_learner::telemetry::RunCounters {
                env_steps: 250,
                ..Default::default()
            },
            return_mean_100: Some(480.5),
            wall_secs: 3.0,
            update_secs: 2.0,
            actor_idle_fraction: None,
            run_dir: solved.clone(),
        };
        std::fs::write(
            solved.join("summary.json"),
            serde_json::to_string(&summary).unwrap(),
        )
        .unwrap();
        std::fs::create_dir_all(root.path().join("not-a-run")).unwrap();
        let rows = list(root.path()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].status, rows[0].env_steps, rows[0].wall_secs),
            ("solved", 250, Some(3.0))
        );
        assert_eq!(
            (rows[1].status, rows[1].env_steps, rows[1].wall_secs),
            ("incomplete", 200, Some(2.5))
        );
        assert_eq!(rows[1].best_return, Some(480.5));
        let text = table(root.path(), &rows);
        assert!(
            text.lines().nth(1).unwrap().starts_with("a-solved"),
            "{text}"
        );
        assert!(
            text.contains("480.5") && text.contains("CartPole-v1"),
            "{text}"
        );
        // A run directory itself lists just that run; a sweep's runs one level down are found.
        assert_eq!(list(&solved).unwrap().len(), 1);
        let sweep = root.path().join("sweep/s1");
        std::fs::create_dir_all(&sweep).unwrap();
        std::fs::write(sweep.join("config.toml"), RunConfig::default().to_toml()).unwrap();
        assert_eq!(list(root.path()).unwrap().len(), 3);
    }
}
