//! Issue 7: the compose deployment on the Docker engine of this machine. Builds the images
//! (no pulls), starts a learner and 3 actors, and checks through the learner's JSON logs that
//! training progresses; scales to 5 actors; kills one actor container; cuts another off the
//! network for 30 s and sees it rejoin; then `compose down` stops the learner gracefully with
//! a final checkpoint on the named volume.
//!
//! Skips, saying so, when no Docker engine is reachable.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use shoal_common::config::{DeviceChoice, RunConfig};
use shoal_tests::{
    TEST_TOKEN, cartpole_config, free_port, json_lines, repo_root, shoal_exe, temp_dir,
};
use tokio::sync::mpsc::Receiver;

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run a docker command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker compose` (v2) when the engine has it, else `docker-compose` (v1).
fn compose_program() -> Vec<String> {
    let v2 = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if v2 {
        vec!["docker".into(), "compose".into()]
    } else {
        vec!["docker-compose".into()]
    }
}

/// One compose project; `down -v` when dropped, whatever happened.
struct Project {
    name: String,
    program: Vec<String>,
    files: Vec<PathBuf>,
    port: u16,
}

impl Project {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.program[0]);
        c.args(&self.program[1..]).args(["-p", &self.name]);
        for f in &self.files {
            c.arg("-f").arg(f);
        }
        c.env("SHOAL_TOKEN", TEST_TOKEN)
            .env("SHOAL_PORT", self.port.to_string())
            .env("SHOAL_IMAGE", "shoal:latest")
            .env("SHOAL_CONFIG", "/etc/shoal/test/run.toml")
            .stdin(Stdio::null());
        c
    }

    fn compose(&self, args: &[&str]) -> Output {
        run(self.cmd().args(args))
    }

    /// The name of the project's one `kind` (network, volume), found by compose's label.
    fn resource(&self, kind: &str) -> String {
        let label = format!("label=com.docker.compose.project={}", self.name);
        let names = stdout(&run(Command::new("docker").args([
            kind,
            "ls",
            "--filter",
            &label,
            "--format",
            "{{.Name}}",
        ])));
        let mut names = names.lines();
        let name = names
            .next()
            .unwrap_or_else(|| panic!("no {kind} for {}", self.name));
        assert!(names.next().is_none(), "more than one {kind}");
        name.to_string()
    }

    /// Container ids of `service`.
    fn containers(&self, service: &str) -> Vec<String> {
        stdout(&self.compose(&["ps", "-q", service]))
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = self.cmd().args(["down", "-v", "--timeout", "5"]).output();
    }
}

/// The next learner status line for which `want` holds; panics after `within`.
async fn status_where(
    lines: &mut Receiver<serde_json::Value>,
    within: Duration,
    what: &str,
    mut want: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let find = async {
        while let Some(line) = lines.recv().await {
            if line["message"] == "status" && want(&line) {
                return line;
            }
        }
        panic!("the learner's log ended while waiting for: {what}");
    };
    tokio::time::timeout(within, find)
        .await
        .unwrap_or_else(|_| panic!("no status line within {within:?} with {what}"))
}

/// The next learner log line with `message` for which `want` holds.
async fn log_where(
    lines: &mut Receiver<serde_json::Value>,
    within: Duration,
    message: &str,
    mut want: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let find = async {
        while let Some(line) = lines.recv().await {
            if line["message"] == message && want(&line) {
                return line;
            }
        }
        panic!("the learner's log ended while waiting for `{message}`");
    };
    tokio::time::timeout(within, find)
        .await
        .unwrap_or_else(|_| panic!("no `{message}` within {within:?}"))
}

fn u(line: &serde_json::Value, key: &str) -> u64 {
    line[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {line}"))
}

fn write_test_config(dir: &Path) {
    let mut config: RunConfig = cartpole_config();
    config.learner.device = DeviceChoice::Flex;
    config.total_steps = 1_000_000_000;
    config.target_return = None;
    config.learner.status_interval_secs = 1.0;
    config.learner.actor_timeout_secs = 5.0;
    config.learner.checkpoint_interval_secs = 10.0;
    std::fs::write(dir.join("run.toml"), config.to_toml()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_learner_and_scalable_actors_survive_kills_and_network_cuts() {
    let engine = Command::new("docker").args(["info"]).output();
    if !engine.is_ok_and(|o| o.status.success()) {
        println!("SKIPPED: no Docker engine reachable (`docker info` failed)");
        return;
    }
    let started = Instant::now();
    // The images: the base (built locally when missing) and shoal:latest from this build.
    run(Command::new(repo_root().join("deploy/build-images"))
        .env("SHOAL_BIN", shoal_exe())
        .current_dir(repo_root()));
    let built = started.elapsed();

    let dir = temp_dir("compose");
    let config_dir = dir.join("config");
    std::fs::create_dir_all(&config_dir).unwrap();
    write_test_config(&config_dir);
    let override_file = dir.join("test.override.yml");
    std::fs::write(
        &override_file,
        format!(
            "version: \"3.8\"\nservices:\n  learner:\n    volumes:\n      - {}:/etc/shoal/test:ro\n",
            config_dir.display()
        ),
    )
    .unwrap();
    let project = Project {
        name: format!("shoal-e2e-{}", std::process::id()),
        program: compose_program(),
        files: vec![repo_root().join("deploy/docker-compose.yml"), override_file],
        port: free_port(),
    };
    project.compose(&["up", "-d", "--scale", "actor=3"]);
    let learner = project
        .containers("learner")
        .pop()
        .expect("a learner container");
    let mut follow = tokio::process::Command::new("docker")
        .args(["logs", "-f", &learner])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = json_lines(follow.stderr.take().unwrap());

    // Training progresses with 3 actors connected.
    let first = status_where(
        &mut lines,
        Duration::from_secs(60),
        "3 actors training",
        |l| u(l, "actors") == 3 && u(l, "env_steps") > 0,
    )
    .await;
    let next = status_where(&mut lines, Duration::from_secs(30), "progress", |l| {
        u(l, "env_steps") > u(&first, "env_steps") && u(l, "episodes") > u(&first, "episodes")
    })
    .await;
    println!(
        "3 actors: env_steps {} -> {}, episodes {} -> {}",
        first["env_steps"], next["env_steps"], first["episodes"], next["episodes"]
    );

    // Scale to 5.
    project.compose(&["up", "-d", "--scale", "actor=5", "--no-recreate"]);
    let five = status_where(&mut lines, Duration::from_secs(60), "5 actors", |l| {
        u(l, "actors") == 5
    })
    .await;

    // Kill one actor container: training goes on without it.
    let actors = project.containers("actor");
    assert_eq!(actors.len(), 5);
    run(Command::new("docker").args(["kill", &actors[0]]));
    log_where(
        &mut lines,
        Duration::from_secs(30),
        "actor disconnected",
        |_| true,
    )
    .await;
    let after_kill = status_where(
        &mut lines,
        Duration::from_secs(30),
        "progress after the kill",
        |l| u(l, "env_steps") > u(&five, "env_steps") + 10_000,
    )
    .await;
    println!(
        "killed an actor: {} actors connected, env_steps {}",
        after_kill["actors"], after_kill["env_steps"]
    );

    // Cut another off the network for 30 s: the learner notices, goes on, and sees it rejoin.
    let cut = &actors[1];
    let network = project.resource("network");
    let connected_before = u(&after_kill, "actors");
    run(Command::new("docker").args(["network", "disconnect", &network, cut]));
    let cut_at = Instant::now();
    let during = status_where(
        &mut lines,
        Duration::from_secs(30),
        "the cut actor gone",
        |l| u(l, "actors") < connected_before,
    )
    .await;
    let noticed = cut_at.elapsed();
    let env_during = u(&during, "env_steps");
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(cut_at.elapsed())).await;
    run(Command::new("docker").args(["network", "connect", &network, cut]));
    let rejoin_start = Instant::now();
    let host = &cut[..12];
    let rejoined = log_where(
        &mut lines,
        Duration::from_secs(60),
        "actor registered",
        |l| l["name"].as_str().is_some_and(|n| n.starts_with(host)),
    )
    .await;
    let rejoin = rejoin_start.elapsed();
    let back = status_where(
        &mut lines,
        Duration::from_secs(30),
        "the cut actor back",
        |l| u(l, "actors") >= connected_before && u(l, "env_steps") > env_during,
    )
    .await;
    println!(
        "network cut: noticed after {:.1} s ({} actors), rejoined {:.1} s after the reconnect as {} \
         ({} actors, env_steps {})",
        noticed.as_secs_f64(),
        during["actors"],
        rejoin.as_secs_f64(),
        rejoined["name"],
        back["actors"],
        back["env_steps"]
    );

    // Down: SIGTERM, final checkpoint on the volume, clean exit.
    let down_at = Instant::now();
    project.compose(&["down", "--timeout", "20"]);
    let down = down_at.elapsed();
    let finished = log_where(&mut lines, Duration::from_secs(5), "run finished", |_| true).await;
    assert_eq!(finished["reason"], "shutdown requested", "{finished}");
    let volume = project.resource("volume");
    let meta = run(Command::new("docker").args([
        "run",
        "--rm",
        "-v",
        &format!("{volume}:/data:ro"),
        "--entrypoint",
        "cat",
        "shoal:latest",
        "/data/run/checkpoints/final/checkpoint.json",
    ]));
    let meta: serde_json::Value = serde_json::from_slice(&meta.stdout).unwrap();
    assert!(u(&meta, "env_steps") >= u(&back, "env_steps"), "{meta}");
    println!(
        "compose down in {:.1} s; final checkpoint on volume {volume} at {} env steps, {} updates; \
         images built in {:.1} s; whole test {:.0} s",
        down.as_secs_f64(),
        meta["env_steps"],
        meta["updates"],
        built.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    let _ = follow.kill().await;
}

/// The Kubernetes manifests are valid against the Kubernetes API schemas (kubernetes-validate,
/// strict: unknown fields are errors). scripts/install-deps installs the validator.
#[test]
fn kubernetes_manifests_pass_schema_validation() {
    let venv = std::env::var_os("SHOAL_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/shoal-py")
        });
    let validator = venv.join("bin/kubernetes-validate");
    assert!(
        validator.exists(),
        "{} is missing: run scripts/install-deps",
        validator.display()
    );
    let dir = repo_root().join("deploy/k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let out = run(Command::new(&validator).arg("--strict").args(&files));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for kind in [
        "deployment/shoal-learner",
        "service/shoal-learner",
        "deployment/shoal-actor",
        "secret/shoal-token",
        "persistentvolumeclaim/shoal-runs",
    ] {
        assert!(
            report.contains(&format!("passed for resource {kind}")),
            "{report}"
        );
    }
}
