//! Training survives what real clusters do: actors killed and replaced, the learner killed and
//! restarted with `--resume`, SIGTERM, and resuming every algorithm from its checkpoint. Real
//! learner and actor processes throughout.

use std::time::{Duration, Instant};

use shoal_common::config::{DeviceChoice, RunConfig};
use shoal_learner::LearnerOptions;
use shoal_tests::{
    LearnerProcess, TestLearner, cartpole_config, free_port, newest_checkpoint, repo_root,
    spawn_actor, temp_dir, test_token, wait_until_serving, write_config,
};

fn flex(mut config: RunConfig) -> RunConfig {
    config.learner.device = DeviceChoice::Flex;
    config
}

/// Issue 6, acceptance 1: with 3 actors, one is SIGKILLed every second (the first half a second
/// in) and a replacement starts; the run still reaches 475 and the trainer never waits longer
/// than the actor timeout for a batch. (Issue 6 killed one every 10 s, the first 3 s in; since
/// issue 19's learner a run solves in about 2–3 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ppo_solves_while_an_actor_is_killed_every_second() {
    let mut config = flex(cartpole_config());
    config.total_steps = 400_000;
    config.learner.actor_timeout_secs = 5.0;
    let timeout = config.learner.actor_timeout_secs;
    let learner = TestLearner::start(config, temp_dir("churn")).await;
    let url = learner.url();
    let mut actors: Vec<_> = (0..3)
        .map(|i| spawn_actor(&url, &format!("churn-{i}"), false))
        .collect();
    let mut handle = learner.handle;
    let mut next_kill = Instant::now() + Duration::from_millis(500);
    let (mut kills, mut spawned) = (0usize, 3usize);
    let summary = loop {
        let until_kill = next_kill.saturating_duration_since(Instant::now());
        tokio::select! {
            result = &mut handle => break result.unwrap().unwrap(),
            _ = tokio::time::sleep(until_kill) => {
                let victim = kills % actors.len();
                actors[victim].start_kill().unwrap();
                actors[victim].wait().await.unwrap();
                actors[victim] = spawn_actor(&url, &format!("churn-{spawned}"), false);
                kills += 1;
                spawned += 1;
                next_kill += Duration::from_secs(1);
            }
        }
    };
    assert!(
        kills >= 1,
        "the run ended before the first kill: {summary:?}"
    );
    assert!(summary.solved, "{summary:?}");
    assert!(
        summary.longest_stall_secs < timeout,
        "longest stall {} s with an actor timeout of {timeout} s",
        summary.longest_stall_secs
    );
    println!(
        "killed {kills} actors; solved at {} env steps; longest stall {:.3} s; {} partial updates",
        summary.env_steps, summary.longest_stall_secs, summary.partial_updates
    );
}

/// Issue 6, acceptance 2: the learner is SIGKILLed mid-run and restarted with `--resume`; the
/// same actor processes reconnect within 5 s, training continues from the checkpoint's
/// counters and the run still solves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_learner_resumes_and_its_actors_come_back_by_themselves() {
    let dir = temp_dir("resume-kill");
    let mut config = flex(cartpole_config());
    config.total_steps = 400_000;
    config.learner.checkpoint_interval_updates = 5;
    config.learner.checkpoint_interval_secs = 0.0;
    let config_path = write_config(&dir, &config);
    let run_dir = dir.join("run");
    let port = free_port();
    let run_dir_arg = run_dir.to_str().unwrap();
    let first = LearnerProcess::spawn(
        port,
        &[
            "--config",
            config_path.to_str().unwrap(),
            "--run-dir",
            run_dir_arg,
        ],
    );
    wait_until_serving(&first.url, Duration::from_secs(30)).await;
    let mut actors: Vec<_> = (0..3)
        .map(|i| spawn_actor(&first.url, &format!("survivor-{i}"), false))
        .collect();
    // Mid-run: a few periodic checkpoints are on disk.
    let deadline = Instant::now() + Duration::from_secs(60);
    while newest_checkpoint(&run_dir).is_none_or(|c| c["updates"].as_u64().unwrap() < 15) {
        assert!(Instant::now() < deadline, "no checkpoint after 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut first = first;
    first.child.start_kill().unwrap();
    first.child.wait().await.unwrap();
    let saved = newest_checkpoint(&run_dir).unwrap();

    let mut second = LearnerProcess::spawn(port, &["--resume", run_dir_arg]);
    let resumed = second
        .wait_for("resuming from checkpoint", Duration::from_secs(30), |_| {
            true
        })
        .await;
    assert_eq!(resumed["env_steps"], saved["env_steps"], "{resumed}");
    assert_eq!(resumed["updates"], saved["updates"]);
    assert_eq!(resumed["version"], saved["version"]);
    second
        .wait_for("learner ready", Duration::from_secs(30), |_| true)
        .await;
    let ready = Instant::now();
    let mut back = std::collections::HashSet::new();
    while back.len() < 3 {
        let line = second
            .wait_for("actor registered", Duration::from_secs(5), |_| true)
            .await;
        back.insert(line["name"].as_str().unwrap().to_string());
    }
    let reconnect = ready.elapsed();
    assert!(reconnect < Duration::from_secs(5), "{reconnect:?}");
    // The same processes: none of them exited.
    for a in &mut actors {
        assert!(a.try_wait().unwrap().is_none(), "an actor exited");
    }
    let status = second.child.wait().await.unwrap();
    assert!(status.success(), "resumed learner failed: {status}");
    for a in &mut actors {
        assert!(a.wait().await.unwrap().success());
    }
    let fin: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("checkpoints/final/checkpoint.json")).unwrap(),
    )
    .unwrap();
    assert!(fin["updates"].as_u64() > saved["updates"].as_u64());
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    assert!(
        last["return_mean_100"].as_f64().unwrap() >= 475.0,
        "not solved after the restart: {last}"
    );
    println!(
        "killed at {} env steps (checkpoint at update {}); actors back {:.2} s after the restart; \
         solved at {} env steps",
        saved["env_steps"],
        saved["updates"],
        reconnect.as_secs_f64(),
        fin["env_steps"]
    );
}

/// SIGTERM ends the learner within 5 s, after a final checkpoint, even with a parameter stream
/// open that its client never reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_learner_within_5_s_with_a_final_checkpoint() {
    let dir = temp_dir("sigterm");
    let mut config = flex(cartpole_config());
    config.total_steps = 10_000_000;
    config.target_return = None;
    config.learner.status_interval_secs = 0.5;
    let config_path = write_config(&dir, &config);
    let run_dir = dir.join("run");
    let port = free_port();
    let mut learner = LearnerProcess::spawn(
        port,
        &[
            "--config",
            config_path.to_str().unwrap(),
            "--run-dir",
            run_dir.to_str().unwrap(),
        ],
    );
    wait_until_serving(&learner.url, Duration::from_secs(30)).await;
    let _actors: Vec<_> = (0..2)
        .map(|i| spawn_actor(&learner.url, &format!("term-{i}"), false))
        .collect();
    // A subscriber that never reads.
    let mut probe = shoal_tests::test_client(&learner.url).await;
    let s = shoal_tests::register_probe(&mut probe).await;
    let _stream = probe
        .subscribe_parameters(shoal_common::proto::SubscribeRequest {
            actor_id: s.actor_id,
            model_fingerprint: s.model_fingerprint,
        })
        .await
        .unwrap();
    learner
        .wait_for("status", Duration::from_secs(30), |l| {
            l["updates"].as_u64() > Some(3)
        })
        .await;
    let start = Instant::now();
    learner.terminate();
    let status = tokio::time::timeout(Duration::from_secs(10), learner.child.wait())
        .await
        .expect("the learner exits")
        .unwrap();
    let took = start.elapsed();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(5), "SIGTERM to exit: {took:?}");
    let fin: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("checkpoints/final/checkpoint.json")).unwrap(),
    )
    .unwrap();
    assert!(fin["updates"].as_u64().unwrap() > 3, "{fin}");
    assert!(run_dir.join("checkpoints/final/optimizer.bpk").exists());
    println!("SIGTERM to exit: {:.2} s", took.as_secs_f64());
}

/// Every algorithm resumes from its final checkpoint: counters, version and (DQN) the replay
/// buffer carry on; the optimizer state loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_algorithm_resumes_where_it_stopped() {
    for (file, first_steps, more) in [
        ("configs/cartpole-ppo.toml", 4_000u64, 4_000u64),
        ("configs/cartpole-a3c.toml", 4_000, 4_000),
        ("configs/cartpole-dqn.toml", 3_000, 3_000),
        ("configs/cartpole-impala.toml", 4_000, 4_000),
    ] {
        let mut config = flex(RunConfig::load(&repo_root().join(file)).unwrap());
        config.total_steps = first_steps;
        config.target_return = None;
        config.dqn.checkpoint_replay = true;
        config.learner.status_interval_secs = 0.2;
        let run_dir = temp_dir(&format!("resume-{}", config.algorithm.name()));
        let train = |options: LearnerOptions| async move {
            let learner = TestLearner::start_with(options).await;
            let mut actors: Vec<_> = (0..2)
                .map(|i| spawn_actor(&learner.url(), &format!("r-{i}"), false))
                .collect();
            let summary = learner.handle.await.unwrap().unwrap();
            for a in &mut actors {
                assert!(a.wait().await.unwrap().success());
            }
            summary
        };
        let options = LearnerOptions {
            token: Some(test_token()),
            ..LearnerOptions::new(config.clone(), run_dir.clone())
        };
        let before = train(options.clone()).await;
        let rows_before = std::fs::read_to_string(run_dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count();
        config.total_steps = before.env_steps + more;
        let after = train(LearnerOptions {
            config,
            resume: true,
            ..options
        })
        .await;
        assert!(
            after.env_steps >= before.env_steps + more,
            "{file}: {after:?}"
        );
        assert!(
            after.updates > before.updates,
            "{file}: {before:?} {after:?}"
        );
        assert!(after.version > before.version, "{file}");
        assert!(after.episodes > before.episodes, "{file}");
        let rows: Vec<serde_json::Value> = std::fs::read_to_string(run_dir.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .skip(rows_before)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let first = &rows[0];
        assert!(
            first["env_steps"].as_u64().unwrap() >= before.env_steps,
            "{file}: {first}"
        );
        if file.contains("dqn") {
            // The buffer came back: it holds more than was pushed since the restart.
            let pushed = first["env_steps"].as_u64().unwrap() - before.env_steps;
            assert!(
                first["replay_size"].as_u64().unwrap() > pushed,
                "replay buffer not restored: {first}"
            );
        }
    }
}
