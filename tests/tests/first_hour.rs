//! A user's first hour (issue 20), through the `shoal` binary as a user runs it: a run directory
//! that holds a run is not overwritten, `--actors 0` and URLs without a scheme fail at once, a
//! learner without actors says it waits, arguments and messages say what they mean.

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use shoal_tests::{TEST_TOKEN, repo_root, shoal_exe, temp_dir};
use tokio::io::{AsyncBufReadExt, BufReader};

fn shoal(args: &[&str]) -> Output {
    std::process::Command::new(shoal_exe())
        .args(args)
        .current_dir(repo_root())
        .env("SHOAL_TOKEN", TEST_TOKEN)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .expect("run shoal")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A short training run (one actor, 1,000 steps); `args` name the config or run directory.
fn short_train(args: &[&str]) -> Output {
    let mut all = vec![
        "train",
        "--actors",
        "1",
        "--device",
        "flex",
        "--total-steps",
        "1000",
        "--no-progress",
    ];
    all.extend_from_slice(args);
    shoal(&all)
}

/// A short CartPole run in `dir` with extra arguments.
fn short_run(dir: &str, extra: &[&str]) -> Output {
    let mut args = vec!["configs/cartpole-ppo.toml", "--run-dir", dir];
    args.extend_from_slice(extra);
    short_train(&args)
}

#[test]
fn a_run_directory_that_holds_a_run_is_refused_unless_told() {
    let dir = temp_dir("reuse");
    let run = dir.join("run");
    let run_s = run.to_str().unwrap();
    let first = short_run(run_s, &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        stdout.contains(&format!("shoal eval {run_s}")),
        "the summary points to the next step: {stdout}"
    );
    let final_params = run.join("checkpoints/final/params.bin");
    let before = std::fs::read(&final_params).unwrap();
    let metrics_before = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();

    let second = short_run(run_s, &[]);
    assert!(!second.status.success());
    let err = stderr(&second);
    assert!(err.contains("already holds a run"), "{err}");
    assert!(
        err.contains("--resume") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(std::fs::read(&final_params).unwrap(), before);
    assert_eq!(
        std::fs::read_to_string(run.join("metrics.jsonl")).unwrap(),
        metrics_before
    );

    let third = short_run(run_s, &["--overwrite", "--seed", "7"]);
    assert!(third.status.success(), "{}", stderr(&third));
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("seed = 7"), "{config}");
    // One run's rows only: env steps never go back.
    let steps: Vec<u64> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["env_steps"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
    let events = std::fs::read_dir(&run)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        })
        .count();
    assert_eq!(events, 1);
    // Resuming a run that has no checkpoint starts it again, without its old rows.
    std::fs::remove_dir_all(run.join("checkpoints")).unwrap();
    let stale_row = "{\"env_steps\":987654321}";
    std::fs::write(run.join("metrics.jsonl"), format!("{stale_row}\n")).unwrap();
    let resumed = short_train(&["--resume", run_s]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains("starting it afresh"),
        "{}",
        stderr(&resumed)
    );
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert!(!metrics.contains(stale_row), "{metrics}");
    // One row per finished episode.
    let episodes = std::fs::read_to_string(run.join("episodes.csv")).unwrap();
    assert!(
        episodes.starts_with("env_steps,return,length\n"),
        "{episodes}"
    );
    assert!(episodes.lines().count() > 10, "{episodes}");
}

#[test]
fn zero_actors_and_conflicting_config_arguments_are_refused() {
    let out = shoal(&["train", "--actors", "0", "--target-return", "-80"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("at least one actor"), "{err}");
    assert!(err.contains("shoal learner"), "{err}");

    let out = shoal(&["train", "--name", "../elsewhere"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("a run name is one directory name"),
        "{}",
        stderr(&out)
    );

    let out = shoal(&[
        "train",
        "configs/cartpole-ppo.toml",
        "--config",
        "configs/cartpole-a3c.toml",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );

    // `shoal learner CONFIG` reads CONFIG (here one naming no real environment).
    let dir = temp_dir("learner-positional");
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        "env_id = \"Nope-v0\"\nalgorithm = \"dqn\"\n[ppo]\nclip_coef = 0.3\n",
    )
    .unwrap();
    let out = shoal(&[
        "learner",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--run-dir",
        dir.join("run").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("unknown environment id `Nope-v0`"), "{err}");
    assert!(
        err.contains("not read by this run") && err.contains("ppo.clip_coef"),
        "{err}"
    );
}

#[test]
fn a_url_without_scheme_fails_at_once_and_give_up_time_is_kept() {
    let start = Instant::now();
    let out = shoal(&["actor", "--learner", "127.0.0.1:59999"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("scheme is missing") && err.contains("http://127.0.0.1:59999"),
        "{err}"
    );
    assert!(!err.contains("retrying"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10));

    // Port 1: nothing listens there (a free port of the moment could become another test's
    // learner).
    let start = Instant::now();
    let out = shoal(&[
        "actor",
        "--learner",
        "http://127.0.0.1:1",
        "--give-up-after-secs",
        "1",
        "--max-backoff-secs",
        "0.2",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("giving up"), "{}", stderr(&out));
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn messages_name_the_address_and_print_numbers_as_people_write_them() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = temp_dir("address-in-use");
    let out = shoal(&[
        "learner",
        "--listen",
        &addr,
        "--run-dir",
        dir.join("run").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    // The cause is printed once.
    assert_eq!(err.matches("in use").count(), 1, "{err}");

    let out = shoal(&["envs"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("3.4028e38"), "{text}");
    assert!(
        !text
            .split(|c: char| !c.is_ascii_digit())
            .any(|digits| digits.len() > 12),
        "{text}"
    );
}

/// Starts `shoal learner` on a port of its choosing with text logs; returns the child and its
/// stderr lines.
fn text_learner(
    run_dir: &str,
    extra: &[&str],
) -> (
    tokio::process::Child,
    tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
) {
    let mut child = tokio::process::Command::new(shoal_exe())
        .current_dir(repo_root())
        .env("SHOAL_TOKEN", TEST_TOKEN)
        .env("RUST_LOG", "info")
        .args(["learner", "--listen", "127.0.0.1:0"])
        .args([
            "--run-dir",
            run_dir,
            "--set",
            "learner.status_interval_secs=0.2",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    (child, lines)
}

#[tokio::test]
async fn a_learner_without_actors_says_it_waits_and_ctrl_c_exits_130() {
    let dir = temp_dir("waiting");
    let run = dir.join("run");
    let (mut child, mut lines) =
        text_learner(run.to_str().unwrap(), &["--set", "ppo.learning_rate=0.001"]);
    let mut seen = Vec::new();
    let mut port = None;
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        let mut waiting = 0;
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.push(line.clone());
            if let Some(rest) = line.split("listen=\"127.0.0.1:").nth(1) {
                port = rest.split('"').next().and_then(|p| p.parse::<u16>().ok());
            }
            if line.contains("waiting for actors") {
                waiting += 1;
                if waiting == 3 {
                    return;
                }
            }
        }
        panic!("the learner exited: {seen:#?}");
    })
    .await;
    assert!(
        waited.is_ok(),
        "no `waiting for actors` within 30 s: {seen:#?}"
    );
    assert!(!seen.iter().any(|l| l.contains("NaN")), "{seen:#?}");
    let port = port.unwrap_or_else(|| panic!("no `learner ready listen=...` line: {seen:#?}"));
    // The reachable learner refuses a health check without the token, and says so.
    let out = tokio::process::Command::new(shoal_exe())
        .args(["health", "--learner", &format!("http://127.0.0.1:{port}")])
        .env_remove("SHOAL_TOKEN")
        .env_remove("SHOAL_TOKEN_FILE")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("reachable, but refused the credentials"),
        "{err}"
    );

    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the learner stops on ctrl-c")
        .unwrap();
    assert_eq!(status.code(), Some(130));
    // --set is recorded in the run's config.
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("learning_rate = 0.001"), "{config}");
    assert!(run.join("checkpoints/final").exists());
}

#[test]
fn several_seeds_in_one_command_and_runs_lists_them() {
    let dir = temp_dir("seeds");
    let parent = dir.join("sweep");
    let out = short_run(parent.to_str().unwrap(), &["--seeds", "1,2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("shoal plot"), "{stdout}");
    for seed in [1, 2] {
        let config = std::fs::read_to_string(parent.join(format!("s{seed}/config.toml"))).unwrap();
        assert!(config.contains(&format!("seed = {seed}")), "{config}");
    }
    let out = shoal(&["runs", parent.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[1].starts_with("s1") && lines[1].contains("stopped"),
        "{table}"
    );
    assert!(
        lines[2].starts_with("s2") && lines[2].contains("CartPole-v1"),
        "{table}"
    );
}

/// The terminal display at 80 columns, as a person sees it: `scripts/terminal_check.py` runs
/// `shoal train` in a pseudo-terminal, renders it with a terminal emulator and checks every
/// screen for one progress line, no wrapped remnants of it and no log line glued onto it.
#[test]
fn the_progress_display_holds_at_80_columns() {
    let python = shoal_tests::venv_python()
        .expect("the tests' Python venv is missing: run scripts/install-deps (the README's test command does)");
    let run = temp_dir("terminal").join("run");
    let out = std::process::Command::new(python)
        .current_dir(repo_root())
        .arg("scripts/terminal_check.py")
        .args(["80", "24", "--"])
        .arg(shoal_exe())
        .args([
            "train",
            "configs/cartpole-ppo.toml",
            "--actors",
            "2",
            "--device",
            "flex",
        ])
        .args(["--total-steps", "60000", "--run-dir", run.to_str().unwrap()])
        .env("SHOAL_TOKEN", TEST_TOKEN)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}\n{}", stderr(&out));
    assert!(report.contains("--- exit status 0"), "{report}");
    // The README's config is learner-bound by design on a small machine: said, not warned.
    assert!(
        !report
            .lines()
            .any(|l| l.contains("WARN") && l.contains("learner-bound")),
        "{report}"
    );
}
