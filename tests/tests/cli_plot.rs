//! Issue 20: `shoal plot` on run directories made by hand — a run without a finished episode is
//! an error naming it, or left out with a warning beside runs that have some; seeds with
//! `episodes.csv` and a `target_return` are drawn.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use shoal_common::config::RunConfig;
use shoal_tests::shoal_exe;

fn shoal_plot(args: &[&OsStr]) -> Output {
    Command::new(shoal_exe())
        .arg("plot")
        .args(args)
        .output()
        .expect("run shoal")
}

/// A run directory: the default config with `seed` and a target of 475, `metrics`, and
/// `episodes.csv` when given.
fn write_run(root: &Path, name: &str, seed: u64, metrics: &str, episodes: Option<&str>) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let config = RunConfig {
        seed,
        target_return: Some(475.0),
        ..RunConfig::default()
    };
    std::fs::write(dir.join("config.toml"), config.to_toml()).unwrap();
    std::fs::write(dir.join("metrics.jsonl"), metrics).unwrap();
    if let Some(e) = episodes {
        std::fs::write(dir.join("episodes.csv"), e).unwrap();
    }
    dir
}

/// Status rows every 1000 steps up to `steps`, two seconds apart, the return rising.
fn metrics(steps: u64) -> String {
    (1..=steps / 1000)
        .map(|k| {
            format!(
                "{{\"time_s\":{},\"env_steps\":{},\"return_mean_100\":{}}}\n",
                2 * k,
                1000 * k,
                10 * k
            )
        })
        .collect()
}

/// `episodes.csv` with an episode every 50 steps up to `steps`.
fn episodes(steps: u64) -> String {
    let rows: String = (1..=steps / 50)
        .map(|k| format!("{},{},{}\n", 50 * k, k / 4, 50))
        .collect();
    format!("env_steps,return,length\n{rows}")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_run_without_episodes_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = write_run(tmp.path(), "empty", 1, "", None);
    let out = shoal_plot(&[empty.as_os_str()]);
    assert!(!out.status.success(), "plotted an empty run");
    let expected = format!("{} has no finished episodes to plot", empty.display());
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    assert!(!empty.join("plot.png").exists());
}

#[test]
fn runs_without_episodes_are_left_out_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = write_run(tmp.path(), "empty", 1, "", None);
    let full = write_run(tmp.path(), "full", 2, &metrics(9000), None);
    let png = tmp.path().join("both.png");
    let out = shoal_plot(&[
        empty.as_os_str(),
        full.as_os_str(),
        OsStr::new("--out"),
        png.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no finished episodes"),
        "{}",
        stderr(&out)
    );
    assert!(png.exists());
}

#[test]
fn seeds_with_episodes_and_a_target_are_drawn() {
    let tmp = tempfile::tempdir().unwrap();
    let short = write_run(
        tmp.path(),
        "s1",
        1,
        &metrics(45_000),
        Some(&episodes(45_000)),
    );
    let long = write_run(
        tmp.path(),
        "s2",
        2,
        &metrics(90_000),
        Some(&episodes(90_000)),
    );
    let png = tmp.path().join("seeds.png");
    let out = shoal_plot(&[
        short.as_os_str(),
        long.as_os_str(),
        OsStr::new("--out"),
        png.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
}
