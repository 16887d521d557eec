//! Environments over dm_env_rpc v1 (issue 17), against code we did not write: `shoal
//! env-server` and the Gymnasium bridge pass the compliance suite shipped with DeepMind's
//! `dm-env-rpc` package, the package's own client (`dm_env_adaptor`) sees exactly what shoal's
//! native API sees, shoal's protocol definition matches the package's field by field, and a run
//! with a learner and two actor processes trains on Catch served by `shoal env-server` to the
//! same parameters, bit for bit, as on the built-in Catch; Gymnasium's CartPole and Atari
//! Breakout train through the bridge.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use shoal_common::config::RunConfig;
use shoal_common::env::{Action, EnvSpec};
use shoal_common::evaluate::{evaluate_deterministic, mean_std};
use shoal_common::normalize::Normalizer;
use shoal_common::rng::Rng;
use shoal_tests::{
    EnvServer, TestLearner, repo_root, shoal_ok, spawn_actor, temp_dir, venv_python, write_config,
};

/// The tests' Python, which `scripts/install-deps` gives the `dm-env-rpc` package.
fn python() -> PathBuf {
    let python = venv_python().expect("the tests' venv: run scripts/install-deps");
    let ok = Command::new(&python)
        .args(["-c", "import dm_env_rpc.v1.compliance"])
        .status()
        .expect("run python");
    assert!(
        ok.success(),
        "dm-env-rpc missing from the venv: run scripts/install-deps"
    );
    python
}

fn script(name: &str) -> PathBuf {
    repo_root().join("tests/python").join(name)
}

/// Runs the package's compliance classes against the server at `address` for worlds of `envs`;
/// returns how many tests ran (all passed).
fn compliance(address: &str, envs: &str) -> usize {
    let out = Command::new(python())
        .arg(script("dm_env_rpc_compliance.py"))
        .env("SHOAL_ENV_SERVER", address)
        .env("SHOAL_COMPLIANCE_ENVS", envs)
        .output()
        .expect("run the compliance suite");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "compliance suite failed:\n{report}");
    let ran: usize = report
        .lines()
        .find_map(|l| l.strip_prefix("Ran ")?.split(' ').next()?.parse().ok())
        .expect("a `Ran N tests` line");
    // 5 classes × 3 environments (120 tests with dm-env-rpc 1.1.7).
    assert!(ran >= 100, "only {ran} compliance tests ran:\n{report}");
    ran
}

/// The package's compliance classes (CreateDestroyWorld, JoinLeaveWorld, Step, Reset,
/// ResetWorld), unchanged, for CartPole-v1, Pendulum-v1 and Catch-v0 worlds.
#[test]
fn shoal_env_server_passes_the_dm_env_rpc_compliance_suite() {
    let server = EnvServer::start();
    let ran = compliance(&server.address, "CartPole-v1,Pendulum-v1,Catch-v0");
    eprintln!("dm_env_rpc compliance of shoal env-server: {ran} tests passed");
}

/// The same suite against the Gymnasium bridge, for Gymnasium's CartPole-v1, Pendulum-v1 and
/// MountainCarContinuous-v0.
#[test]
fn the_gymnasium_bridge_passes_the_dm_env_rpc_compliance_suite() {
    python();
    let bridge = EnvServer::gymnasium_bridge().expect("the tests' venv");
    let ran = compliance(
        &bridge.address,
        "CartPole-v1,Pendulum-v1,MountainCarContinuous-v0",
    );
    eprintln!("dm_env_rpc compliance of the Gymnasium bridge: {ran} tests passed");
}

/// Every message, field (name, number, type, label, oneof), enum value and the service of
/// `proto/dm_env_rpc/v1/dm_env_rpc.proto` as compiled equal the package's generated code.
#[test]
fn shoals_protocol_definition_matches_the_dm_env_rpc_package() {
    let dir = temp_dir("env-rpc-descriptors");
    let file = dir.join("descriptors.bin");
    std::fs::write(&file, shoal_common::env_rpc_proto::DESCRIPTORS).unwrap();
    let out = Command::new(python())
        .arg(script("dm_env_rpc_interop.py"))
        .arg("descriptors")
        .arg(&file)
        .output()
        .expect("compare descriptors");
    assert!(
        out.status.success(),
        "definitions differ:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        summary["fields_and_methods"].as_u64().unwrap() > 50,
        "{summary}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// One time step as `dm_env` reports it.
#[derive(Debug, PartialEq)]
struct TimeStep {
    step_type: u64,
    reward: Option<f64>,
    discount: Option<f64>,
    observation: Vec<f32>,
}

/// What shoal's own API gives for the same seed and actions, in `dm_env`'s terms: `reset()`
/// is the first episode's start (copy seeded with `seed`), and the step after an episode's
/// last starts the next one (its action unused).
fn native(id: &str, seed: u64, actions: &[Vec<f32>]) -> Vec<TimeStep> {
    let mut env = EnvSpec::new(id).make().unwrap();
    let mut rng = Rng::new(seed);
    let mut obs = vec![0.0f32; env.observation_space().flat_dim()];
    env.reset(&mut rng, &mut obs);
    let first = |obs: &[f32]| TimeStep {
        step_type: 0,
        reward: None,
        discount: None,
        observation: obs.to_vec(),
    };
    let mut steps = vec![first(&obs)];
    let mut ended = false;
    for a in actions {
        if ended {
            env.reset(&mut rng, &mut obs);
            steps.push(first(&obs));
            ended = false;
            continue;
        }
        let step = if a.len() == 1 && env.action_space().flat_dim() == 1 && id != "Pendulum-v1" {
            env.step(Action::Discrete(a[0] as usize), &mut obs)
        } else {
            env.step(Action::Continuous(a), &mut obs)
        };
        ended = step.terminated || step.truncated;
        steps.push(TimeStep {
            step_type: if ended { 2 } else { 1 },
            reward: Some(step.reward),
            discount: Some(if step.terminated { 0.0 } else { 1.0 }),
            observation: obs.clone(),
        });
    }
    steps
}

/// The same through `dm_env_adaptor` and `shoal env-server`.
fn through_adaptor(
    server: &EnvServer,
    id: &str,
    seed: u64,
    actions: &[serde_json::Value],
) -> Vec<TimeStep> {
    let mut child = Command::new(python())
        .arg(script("dm_env_rpc_interop.py"))
        .args(["adaptor", &server.address, id, &seed.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the adaptor");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(actions).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "adaptor failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let number = |x: &serde_json::Value| -> Option<f64> { x.as_str()?.parse().ok() };
            TimeStep {
                step_type: v["step_type"].as_u64().unwrap(),
                reward: number(&v["reward"]),
                discount: number(&v["discount"]),
                observation: v["observation"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| number(x).unwrap() as f32)
                    .collect(),
            }
        })
        .collect()
}

/// CartPole (float vector, discrete action), Catch (u8 image) and Pendulum (continuous action)
/// played with seeded random actions through episode ends: every time step's type, reward,
/// discount and observation agree exactly.
#[test]
fn dm_env_adaptor_sees_what_shoals_own_api_sees() {
    let server = EnvServer::start();
    let mut rng = Rng::new(17);
    for (id, steps, seed) in [
        ("CartPole-v1", 80, 3u64),
        ("Catch-v0", 40, 5),
        ("Pendulum-v1", 30, 8),
    ] {
        let actions: Vec<Vec<f32>> = (0..steps)
            .map(|_| match id {
                "Pendulum-v1" => vec![(rng.next_f64() * 4.0 - 2.0) as f32],
                "Catch-v0" => vec![rng.below(3) as f32],
                _ => vec![rng.below(2) as f32],
            })
            .collect();
        let json: Vec<serde_json::Value> = actions
            .iter()
            .map(|a| match id {
                "Pendulum-v1" => serde_json::json!(a),
                _ => serde_json::json!(a[0] as u64),
            })
            .collect();
        let want = native(id, seed, &actions);
        let got = through_adaptor(&server, id, seed, &json);
        assert_eq!(got.len(), want.len(), "{id}");
        let episodes = want.iter().filter(|t| t.step_type == 2).count();
        assert!(
            episodes >= 2 || id == "Pendulum-v1",
            "{id}: {episodes} episodes"
        );
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{id}, time step {k}");
        }
    }
}

fn load(file: &str) -> RunConfig {
    RunConfig::load(&repo_root().join("configs").join(file)).unwrap()
}

/// What a run left: its JSON summary, final parameters and episodes record.
struct Trained {
    summary: serde_json::Value,
    params: Vec<u8>,
    episodes: String,
}

/// `shoal train CONFIG --actors 2` as a user runs it, in `dir`.
fn train(config: &RunConfig, dir: &Path) -> Trained {
    std::fs::create_dir_all(dir).unwrap();
    let file = write_config(dir, config);
    let run_dir = dir.join("run");
    let out = shoal_ok(&[
        "train",
        file.to_str().unwrap(),
        "--actors",
        "2",
        "--device",
        "flex",
        "--json",
        "--no-progress",
        "--run-dir",
        run_dir.to_str().unwrap(),
    ]);
    Trained {
        summary: serde_json::from_str(&out).expect("a JSON summary"),
        params: std::fs::read(run_dir.join("checkpoints/final/params.bin")).unwrap(),
        episodes: std::fs::read_to_string(run_dir.join("episodes.csv")).unwrap(),
    }
}

/// PPO on Catch with the small CNN, deterministic, learner + 2 actor processes: once on the
/// built-in Catch and once on Catch served by `shoal env-server` (each copy a world on its own
/// stream, seeded as the built-in copy would be). The runs end with byte-identical parameters
/// and the same episodes; the served run's greedy policy, evaluated through the server, catches
/// the ball (≥ 0.9 over 100 episodes, as the native test asks).
#[test]
fn a_run_on_catch_served_by_shoal_env_server_matches_the_native_run() {
    let server = EnvServer::start();
    let mut native = load("catch-ppo.toml");
    native.deterministic = true;
    native.learner.actor_timeout_secs = 60.0;
    let mut served = native.clone();
    served.env_id = server.url("Catch-v0");
    let dir = temp_dir("env-rpc-catch");
    let started = std::time::Instant::now();
    let Trained {
        params: native_params,
        episodes: native_episodes,
        ..
    } = train(&native, &dir.join("native"));
    let native_secs = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let Trained {
        params: served_params,
        episodes: served_episodes,
        ..
    } = train(&served, &dir.join("served"));
    let served_secs = started.elapsed().as_secs_f64();
    eprintln!(
        "Catch PPO, {} steps: native {native_secs:.1} s, served {served_secs:.1} s",
        native.total_steps
    );
    assert!(native_episodes.lines().count() > 1000);
    assert!(served_episodes == native_episodes, "the episodes differ");
    assert!(served_params == native_params, "the parameters differ");
    // Greedy evaluation through the server: 100 worlds at once.
    let spec = shoal_learner::model_spec(&served).unwrap();
    let params = spec.layout().decode(&served_params).unwrap();
    let policy = shoal_actor::policy::Policy::new(&spec, &params, 0, Normalizer::off(0));
    let eps = evaluate_deterministic(
        &spec,
        &mut |obs| policy.outputs(obs),
        &Normalizer::off(spec.moments_dim()),
        &served.env(),
        100,
        12_345,
    )
    .unwrap();
    let greedy = mean_std(&eps.iter().map(|e| e.episode_return).collect::<Vec<_>>()).0;
    assert!(
        greedy >= 0.9,
        "greedy mean return {greedy} over 100 served episodes"
    );
    eprintln!("served Catch, greedy over 100 episodes: {greedy}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An actor whose environment server goes away mid-run stops with an error naming the server
/// (it does not push what it could not check), and the learner keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_whose_server_dies_stops_with_the_reason() {
    use tokio::io::AsyncBufReadExt;
    let server = EnvServer::start();
    let address = server.address.clone();
    let mut config = load("catch-ppo.toml");
    config.env_id = server.url("Catch-v0");
    config.total_steps = 100_000_000;
    let dir = temp_dir("env-rpc-dies");
    let learner = TestLearner::start(config, dir.clone()).await;
    let mut actor = spawn_actor(&learner.url(), "doomed", true);
    let mut lines = tokio::io::BufReader::new(actor.stderr.take().unwrap()).lines();
    let pushed = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("rollout pushed") {
                return true;
            }
        }
        false
    };
    let pushed = tokio::time::timeout(std::time::Duration::from_secs(60), pushed).await;
    assert!(matches!(pushed, Ok(true)), "the actor never pushed");
    drop(server);
    let status = tokio::time::timeout(std::time::Duration::from_secs(60), actor.wait())
        .await
        .expect("the actor stops")
        .unwrap();
    assert!(!status.success(), "the actor must fail, not finish");
    let mut rest = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push_str(&line);
        rest.push('\n');
    }
    let error = rest
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line in:\n{rest}"));
    assert!(error.contains("served environment"), "{error}");
    assert!(error.contains(&address), "{error}");
    eprintln!("{error}");
    assert!(!learner.handle.is_finished(), "the learner keeps serving");
    learner.shutdown.cancel();
    let _ = learner.handle.await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// PPO (`configs/cartpole-ppo.toml`, learner + 2 actor processes) solves Gymnasium's own
/// CartPole-v1, served by the Gymnasium bridge: mean return ≥ 475 over the last 100 episodes.
#[test]
fn ppo_solves_gymnasiums_cartpole_served_by_the_bridge() {
    python();
    let bridge = EnvServer::gymnasium_bridge().expect("the tests' venv");
    let mut config = load("cartpole-ppo.toml");
    config.env_id = bridge.url("CartPole-v1");
    let dir = temp_dir("env-rpc-bridge-cartpole");
    let started = std::time::Instant::now();
    let run = train(&config, &dir);
    let secs = started.elapsed().as_secs_f64();
    let summary = &run.summary;
    assert_eq!(summary["solved"], true, "{summary}");
    assert!(
        summary["return_mean_100"].as_f64().unwrap() >= 475.0,
        "{summary}"
    );
    eprintln!(
        "Gymnasium CartPole through the bridge: solved in {} steps, {secs:.1} s",
        summary["env_steps"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Atari Breakout through the bridge, with Gymnasium's standard preprocessing and 4 stacked
/// frames, under DQN with the Nature CNN (`configs/breakout-dqn.toml`, learner + 2 actor
/// processes): a few thousand steps end to end. Skipped, saying why, when the ALE (`ale-py`)
/// or OpenCV could not be installed.
#[test]
fn dqn_plays_atari_breakout_through_the_bridge() {
    let python = python();
    let atari = Command::new(&python)
        .args(["-c", "import ale_py, cv2"])
        .output()
        .expect("run python");
    if !atari.status.success() {
        eprintln!(
            "SKIPPED: Atari needs ale-py and OpenCV in the tests' venv, which scripts/install-deps \
             could not install: {}",
            String::from_utf8_lossy(&atari.stderr).trim()
        );
        return;
    }
    let bridge = EnvServer::gymnasium_bridge().expect("the tests' venv");
    let mut config = load("breakout-dqn.toml");
    config.env_id = format!(
        "dm_env_rpc://{}?env=ALE/Breakout-v5&atari=true",
        bridge.address
    );
    let spec = shoal_learner::model_spec(&config).unwrap();
    assert_eq!(spec.image(), Some([4, 84, 84]));
    assert_eq!(spec.encoder.name(), "nature_cnn");
    let dir = temp_dir("env-rpc-breakout");
    let run = train(&config, &dir);
    let summary = &run.summary;
    let steps = summary["env_steps"].as_u64().unwrap();
    let secs = summary["wall_secs"].as_f64().unwrap();
    assert!(steps >= config.total_steps, "{summary}");
    assert!(summary["updates"].as_u64().unwrap() > 0, "{summary}");
    assert!(summary["episodes"].as_u64().unwrap() > 0, "{summary}");
    eprintln!(
        "Breakout through the bridge: {steps} agent steps ({} frames) in {secs:.1} s = {:.0} \
         frames/s, {} updates",
        4 * steps,
        4.0 * steps as f64 / secs,
        summary["updates"]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
