//! Helpers for shoal's integration tests and benchmarks: locate the built `shoal` binary,
//! start real learners on `127.0.0.1:0`, spawn real actor processes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use shoal_actor::algo::dqn::DqnWorker;
use shoal_actor::policy::Policy;
use shoal_actor::worker::Worker;
use shoal_common::config::RunConfig;
use shoal_common::model::ModelSpec;
use shoal_common::normalize::Normalizer;
use shoal_common::security::Token;
use shoal_common::settings::{ActorSettings, AlgorithmSettings, DqnActor};
use shoal_learner::algo::ppo::Batch;
use shoal_learner::{LearnerError, LearnerOptions, RunSummary};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod env_server;
pub use env_server::EnvServer;

/// The `shoal` binary next to this test executable (`target/<profile>/shoal`).
///
/// # Panics
/// When it has not been built; the README's test command builds it first.
pub fn shoal_exe() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> or target/<profile>/<bench>
    let mut dir = exe.parent().expect("parent").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let shoal = dir.join(format!("shoal{}", std::env::consts::EXE_SUFFIX));
    assert!(
        shoal.exists(),
        "{} is missing: build it first with `cargo build --release --workspace --bins` (scripts/test does)",
        shoal.display()
    );
    shoal
}

/// The repository root (for configs and fixtures).
///
/// Read at run time (cargo sets `CARGO_MANIFEST_DIR` for test and bench processes): CI shares one
/// target directory between clones at different paths, and a path compiled in could name
/// another clone.
pub fn repo_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .expect("repository root")
}

/// The token test learners require and test actors send.
pub const TEST_TOKEN: &str = "shoal-test-token-0123456789";

/// [`TEST_TOKEN`] as a [`Token`].
pub fn test_token() -> Token {
    Token::new(TEST_TOKEN).expect("a valid token")
}

/// A client of a test learner: the actor's transport settings and the test token.
pub async fn test_client(url: &str) -> shoal_actor::Client {
    let endpoint = shoal_actor::endpoint(url).expect("learner URL");
    shoal_actor::connect(&endpoint, Some(test_token()))
        .await
        .expect("connect to the test learner")
}

/// A learner running in this process.
pub struct TestLearner {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Cancels it.
    pub shutdown: CancellationToken,
    /// Its result.
    pub handle: JoinHandle<Result<RunSummary, LearnerError>>,
}

impl TestLearner {
    /// Starts a learner for `config` on `127.0.0.1:0`, writing into `run_dir`, requiring
    /// [`TEST_TOKEN`].
    pub async fn start(config: RunConfig, run_dir: PathBuf) -> Self {
        Self::start_with(LearnerOptions {
            token: Some(test_token()),
            ..LearnerOptions::new(config, run_dir)
        })
        .await
    }

    /// Starts a learner with `options` on `127.0.0.1:0`.
    pub async fn start_with(options: LearnerOptions) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(shoal_learner::run(options, listener, shutdown.clone()));
        Self {
            addr,
            shutdown,
            handle,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Spawns `shoal actor --learner URL` as a separate process (killed when dropped) with
/// [`TEST_TOKEN`]. With `capture`, its stderr (the logs, JSON lines at debug level) is piped
/// for the test to read.
pub fn spawn_actor(url: &str, name: &str, capture: bool) -> Child {
    spawn_actor_with(url, name, capture, &[])
}

/// [`spawn_actor`] with more arguments for `shoal actor` (e.g. `--tls-ca FILE`).
pub fn spawn_actor_with(url: &str, name: &str, capture: bool, extra: &[&str]) -> Child {
    let mut cmd = Command::new(shoal_exe());
    cmd.env(shoal_common::security::TOKEN_ENV, TEST_TOKEN)
        .env_remove(shoal_common::security::TOKEN_FILE_ENV);
    if capture {
        cmd.env("RUST_LOG", "shoal_actor=debug")
            .args(["--log-format", "json"]);
    }
    cmd.args([
        "actor",
        "--learner",
        url,
        "--name",
        name,
        "--max-backoff-secs",
        "0.5",
    ])
    .args(extra)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(if capture {
        Stdio::piped()
    } else {
        Stdio::inherit()
    })
    .kill_on_drop(true)
    .spawn()
    .expect("spawn actor process")
}

/// A port on 127.0.0.1 that was free a moment ago (for learners started as processes, which
/// must come back on the same address after a restart).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A `shoal learner` process (killed when dropped) whose JSON log lines the test reads.
pub struct LearnerProcess {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    lines: tokio::sync::mpsc::Receiver<serde_json::Value>,
    /// Every log line read so far.
    pub seen: Vec<serde_json::Value>,
}

impl LearnerProcess {
    /// Starts `shoal learner --listen 127.0.0.1:PORT ARGS...` with [`TEST_TOKEN`] and JSON logs.
    pub fn spawn(port: u16, args: &[&str]) -> Self {
        Self::spawn_with_open_files(port, None, args)
    }

    /// As [`LearnerProcess::spawn`], with the process's open-file limit (soft and hard) set to
    /// `open_files` when given.
    pub fn spawn_with_open_files(port: u16, open_files: Option<u64>, args: &[&str]) -> Self {
        let mut command = match open_files {
            Some(n) => {
                let mut c = Command::new("bash");
                c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\"")])
                    .arg(shoal_exe());
                c
            }
            None => Command::new(shoal_exe()),
        };
        let mut child = command
            .current_dir(repo_root())
            .env(shoal_common::security::TOKEN_ENV, TEST_TOKEN)
            .env_remove(shoal_common::security::TOKEN_FILE_ENV)
            .env("RUST_LOG", "info")
            .args(["--log-format", "json", "learner", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn learner process");
        let lines = json_lines(child.stderr.take().expect("piped stderr"));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            lines,
            seen: Vec::new(),
        }
    }

    /// The next log line whose `message` is `message` and for which `also` holds; panics after
    /// `within`.
    pub async fn wait_for(
        &mut self,
        message: &str,
        within: std::time::Duration,
        mut also: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let find = async {
            while let Some(line) = self.lines.recv().await {
                self.seen.push(line.clone());
                if line["message"] == message && also(&line) {
                    return Some(line);
                }
            }
            None
        };
        match tokio::time::timeout(within, find).await {
            Ok(Some(line)) => line,
            Ok(None) => panic!("the learner exited before logging `{message}`"),
            Err(_) => panic!("no `{message}` in the learner's log within {within:?}"),
        }
    }

    /// Waits for the process to exit; returns its status and every log line it wrote.
    pub async fn finish(mut self) -> (std::process::ExitStatus, Vec<serde_json::Value>) {
        let status = self.child.wait().await.expect("wait for the learner");
        while let Some(line) = self.lines.recv().await {
            self.seen.push(line);
        }
        (status, self.seen)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("running").to_string();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -TERM {pid}");
    }
}

/// Reads JSON log lines from `stderr` into a channel (non-JSON lines are skipped).
pub fn json_lines(
    stderr: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> tokio::sync::mpsc::Receiver<serde_json::Value> {
    use tokio::io::AsyncBufReadExt;
    let (tx, rx) = tokio::sync::mpsc::channel(100_000);
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
                && tx.send(value).await.is_err()
            {
                break;
            }
        }
    });
    rx
}

/// Waits until the learner at `url` says it is serving; panics after `within`.
pub async fn wait_until_serving(url: &str, within: std::time::Duration) {
    let endpoint = shoal_actor::endpoint(url).expect("learner URL");
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let health = shoal_actor::health::check(
            &endpoint,
            Some(test_token()),
            shoal_actor::health::PARAMETER_SERVER,
            std::time::Duration::from_secs(1),
        )
        .await;
        if health == shoal_actor::health::Health::Serving {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "learner at {url} not serving within {within:?}: {health:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The Python of the tests' venv (`$SHOAL_PY_VENV`, default `~/.cache/shoal-py`, made by
/// `scripts/install-deps`), when it exists.
pub fn venv_python() -> Option<PathBuf> {
    let venv = std::env::var_os("SHOAL_PY_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/shoal-py")))?;
    let py = venv.join("bin/python");
    py.exists().then_some(py)
}

/// What `scripts/policy_from_safetensors.py` (numpy alone) computes from the exported policy
/// file for the observations `rows`: action probabilities or means; `None` without the
/// tests' venv.
///
/// # Panics
/// When the script fails.
pub fn numpy_policy(exported: &Path, rows: &[&[f32]]) -> Option<Vec<Vec<f64>>> {
    let python = venv_python()?;
    let mut child = std::process::Command::new(python)
        .arg(repo_root().join("scripts/policy_from_safetensors.py"))
        .arg(exported)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::to_string(rows).expect("json").as_bytes())
        .expect("write observations");
    let out = child.wait_with_output().expect("python output");
    assert!(out.status.success(), "policy_from_safetensors.py failed");
    Some(serde_json::from_slice(&out.stdout).expect("JSON rows"))
}

/// Writes `config` as TOML into `dir` and returns the file's path.
pub fn write_config(dir: &Path, config: &RunConfig) -> PathBuf {
    let path = dir.join("run.toml");
    std::fs::write(&path, config.to_toml()).expect("write config");
    path
}

/// `checkpoint.json` of the newest checkpoint under `run_dir` (most updates), if any.
pub fn newest_checkpoint(run_dir: &Path) -> Option<serde_json::Value> {
    std::fs::read_dir(run_dir.join("checkpoints"))
        .ok()?
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| std::fs::read_to_string(e.path().join("checkpoint.json")).ok())
        .filter_map(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .max_by_key(|meta| meta["updates"].as_u64().unwrap_or(0))
}

/// A fresh directory under the system temp dir, named after `name` (kept after the test, for
/// a look at what a failed run wrote).
pub fn temp_dir(name: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(&format!("shoal-test-{name}-"))
        .tempdir()
        .expect("temp dir")
        .keep()
}

/// The CartPole PPO config the README runs.
pub fn cartpole_config() -> RunConfig {
    RunConfig::load(&repo_root().join("configs/cartpole-ppo.toml"))
        .expect("configs/cartpole-ppo.toml")
}

/// Registers a probe client (protocol tests and benchmarks) and reads its settings.
pub async fn register_probe(client: &mut shoal_actor::Client) -> ActorSettings {
    let resp = client
        .register(shoal_common::proto::RegisterRequest {
            protocol_version: shoal_common::settings::PROTOCOL_VERSION as i32,
            name: "probe".into(),
            previous_actor_id: None,
            ..Default::default()
        })
        .await
        .expect("registration")
        .into_inner();
    ActorSettings::from_proto(&resp).expect("usable settings")
}

/// The settings actor 1 of a run of `config` running `algorithm` would receive, with its seed
/// set to `seed`.
pub fn settings_for(
    config: &RunConfig,
    spec: &ModelSpec,
    seed: u64,
    algorithm: AlgorithmSettings,
) -> ActorSettings {
    ActorSettings {
        actor_id: 1,
        env: config.env(),
        num_envs: config.num_envs,
        n_steps: config.n_steps,
        seed,
        algorithm,
        param_wait_ms: 0,
        deterministic: false,
        normalize: config.normalize_settings(),
        model_fingerprint: spec.layout().fingerprint(),
        engine: shoal_common::config::EngineChoice::Auto,
        model: spec.clone(),
    }
}

/// A rollout worker (PPO's and A3C's) for `config`'s environment, seeded with `seed`.
pub fn worker_for(config: &RunConfig, spec: &ModelSpec, seed: u64) -> Worker {
    let settings = settings_for(config, spec, seed, AlgorithmSettings::Ppo);
    Worker::new(&settings).expect("registered environment")
}

/// A DQN worker (ε-greedy, n-step transitions) for `config`'s environment, seeded with `seed`.
pub fn dqn_worker_for(config: &RunConfig, spec: &ModelSpec, seed: u64) -> DqnWorker {
    let dqn = DqnActor {
        epsilon: config.dqn.epsilon,
        n_step: config.dqn.n_step,
        gamma: config.dqn.gamma,
    };
    let settings = settings_for(config, spec, seed, AlgorithmSettings::Dqn(dqn));
    DqnWorker::new(&settings, dqn).expect("registered environment")
}

/// A PPO batch of real experience: `rollouts` rollouts that a worker seeded with `seed` collects
/// with `params`, flattened with the config's γ and λ.
pub fn collect_batch(
    config: &RunConfig,
    spec: &ModelSpec,
    params: &[f32],
    seed: u64,
    rollouts: usize,
) -> Batch {
    let policy = Policy::new(spec, params, 1, Normalizer::off(spec.obs_dim));
    let mut worker = worker_for(config, spec, seed);
    let collected: Vec<_> = (0..rollouts)
        .map(|_| {
            worker
                .collect(&policy)
                .expect("built-in environments do not fail")
        })
        .collect();
    Batch::from_rollouts(&collected, config.ppo.gamma, config.ppo.gae_lambda)
}

/// Runs `shoal ARGS` in the repository root (warnings and errors logged only); its standard
/// output.
///
/// # Panics
/// When it fails (its stderr is in the message).
pub fn shoal_ok(args: &[&str]) -> String {
    let out = std::process::Command::new(shoal_exe())
        .args(args)
        .current_dir(repo_root())
        .env("RUST_LOG", "warn")
        .output()
        .expect("shoal runs");
    assert!(
        out.status.success(),
        "shoal {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `episodes` deterministic (greedy) episodes of `env` with the final checkpoint of the run in
/// `run_dir`, seeded with 12,345 (a seed no training actor uses).
///
/// # Panics
/// When the checkpoint cannot be read or the environment built.
pub fn final_policy_episodes(
    config: &RunConfig,
    run_dir: &std::path::Path,
    env: &shoal_common::env::EnvSpec,
    episodes: usize,
) -> Vec<shoal_common::evaluate::Episode> {
    let spec = shoal_learner::model_spec(config).expect("model spec");
    let bytes = std::fs::read(run_dir.join("checkpoints/final/params.bin")).expect("params");
    let params = spec.layout().decode(&bytes).expect("params of the model");
    let policy = Policy::new(&spec, &params, 0, Normalizer::off(0));
    shoal_common::evaluate::evaluate_deterministic(
        &spec,
        &mut |obs| policy.outputs(obs),
        &Normalizer::off(spec.moments_dim()),
        env,
        episodes,
        12_345,
    )
    .expect("evaluation")
}

/// Runs `shoal train CONFIG --actors ACTORS --device flex --seed SEED --json` (config relative to the
/// repository root) in a fresh run directory, as a user would; returns the JSON summary it prints
/// and the wall-clock seconds from launch to exit.
///
/// # Panics
/// When the run fails (its stderr is in the message).
pub fn shoal_train(config: &str, seed: u64, actors: u32) -> (serde_json::Value, f64) {
    shoal_train_with(config, seed, actors, &[])
}

/// [`shoal_train`] with more arguments after the others (`--set KEY=VALUE` overrides, say).
pub fn shoal_train_with(
    config: &str,
    seed: u64,
    actors: u32,
    extra: &[&str],
) -> (serde_json::Value, f64) {
    let run_dir = temp_dir(&format!("train-{}-{seed}", config.replace('/', "_")));
    let start = std::time::Instant::now();
    let out = std::process::Command::new(shoal_exe())
        .current_dir(repo_root())
        .args([
            "train",
            config,
            "--actors",
            &actors.to_string(),
            "--json",
            "--device",
            "flex",
        ])
        .args([
            "--seed",
            &seed.to_string(),
            "--run-dir",
            run_dir.to_str().expect("utf-8 path"),
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run shoal train");
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&run_dir);
    assert!(
        out.status.success(),
        "shoal train {config} --seed {seed} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = serde_json::from_slice(&out.stdout).expect("JSON summary on stdout");
    (summary, secs)
}

/// Trains `config` in a fresh run directory with a real learner and `actors` actor processes,
/// which must exit cleanly once the run is over; returns the summary and the run directory.
pub async fn train_with_actors(
    config: RunConfig,
    name: &str,
    actors: usize,
) -> (RunSummary, PathBuf) {
    let run_dir = temp_dir(name);
    let learner = TestLearner::start(config, run_dir.clone()).await;
    let mut procs: Vec<_> = (0..actors)
        .map(|i| spawn_actor(&learner.url(), &format!("{name}-{i}"), false))
        .collect();
    let summary = learner.handle.await.unwrap().unwrap();
    // The actors are told the run is over and exit cleanly by themselves.
    for p in &mut procs {
        let status = p.wait().await.unwrap();
        assert!(status.success(), "actor exited with {status}");
    }
    (summary, run_dir)
}
