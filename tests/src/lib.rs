//! Helpers for shoal's integration tests and benchmarks: locate the built `shoal` binary,
//! start real learners on `127.0.0.1:0`, spawn real actor processes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use shoal_actor::policy::Policy;
use shoal_actor::worker::Worker;
use shoal_common::config::RunConfig;
use shoal_common::model::ModelSpec;
use shoal_common::normalize::Normalizer;
use shoal_common::settings::ActorSettings;
use shoal_learner::trainer::Batch;
use shoal_learner::{LearnerError, RunSummary};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

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
    /// Starts a learner for `config` on `127.0.0.1:0`, writing into `run_dir`.
    pub async fn start(config: RunConfig, run_dir: PathBuf) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(shoal_learner::run(
            config,
            run_dir,
            listener,
            shutdown.clone(),
        ));
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

/// Spawns `shoal actor --learner URL` as a separate process (killed when dropped). With
/// `capture`, its stderr (the logs, JSON lines at debug level) is piped for the test to read.
pub fn spawn_actor(url: &str, name: &str, capture: bool) -> Child {
    let mut cmd = Command::new(shoal_exe());
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

/// A fresh directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("shoal-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
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
        })
        .await
        .expect("registration")
        .into_inner();
    ActorSettings::from_proto(&resp).expect("usable settings")
}

/// A worker for `config`'s environment, seeded with `seed`.
pub fn worker_for(config: &RunConfig, spec: &ModelSpec, seed: u64) -> Worker {
    let settings = ActorSettings {
        actor_id: 1,
        env_id: config.env_id.clone(),
        num_envs: config.num_envs,
        n_steps: config.n_steps,
        seed,
        algorithm: config.algorithm,
        a3c: Some(shoal_common::settings::A3cLoss::from_config(&config.a3c)),
        dqn: None,
        param_wait_ms: 0,
        normalize: config.normalize_settings(),
        model_fingerprint: spec.layout().fingerprint(),
        model: spec.clone(),
    };
    Worker::new(&settings).expect("registered environment")
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
    let collected: Vec<_> = (0..rollouts).map(|_| worker.collect(&policy)).collect();
    Batch::from_rollouts(&collected, config.ppo.gamma, config.ppo.gae_lambda)
}

/// Runs `shoal train CONFIG --actors ACTORS --device flex --seed SEED --json` (config relative to the
/// repository root) in a fresh run directory, as a user would; returns the JSON summary it prints
/// and the wall-clock seconds from launch to exit.
///
/// # Panics
/// When the run fails (its stderr is in the message).
pub fn shoal_train(config: &str, seed: u64, actors: u32) -> (serde_json::Value, f64) {
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
