//! Checkpoints written before the typed checkpoint format still resume: a learner started with
//! `--resume` on a copy of a committed run directory (checkpoint format 2, written by shoal at
//! b2b8952, the last commit before the redesign) continues its counters, restores the
//! algorithm's own state, trains on and writes its next checkpoint in the current format.

use std::path::Path;

use shoal_common::config::RunConfig;
use shoal_learner::LearnerOptions;
use shoal_tests::{TestLearner, repo_root, spawn_actor, temp_dir, test_token};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn checkpoint_json(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("checkpoint.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Resumes the fixture run `name` for `more_steps` environment steps with one actor; returns
/// the fixture's checkpoint and the final one.
async fn resume_fixture(name: &str, more_steps: u64) -> (serde_json::Value, serde_json::Value) {
    let run_dir = temp_dir(&format!("compat-{name}"));
    copy_dir(
        &repo_root().join("tests/fixtures/checkpoints").join(name),
        &run_dir,
    );
    let before = checkpoint_json(&run_dir.join("checkpoints/final"));
    assert_eq!(before["format"], "shoal-checkpoint-v2", "{before}");
    let mut config = RunConfig::load(&run_dir.join("config.toml")).unwrap();
    config.total_steps = before["env_steps"].as_u64().unwrap() + more_steps;
    config.target_return = None;
    let learner = TestLearner::start_with(LearnerOptions {
        resume: true,
        token: Some(test_token()),
        ..LearnerOptions::new(config, run_dir.clone())
    })
    .await;
    let mut actor = spawn_actor(&learner.url(), name, false);
    let summary = learner.handle.await.unwrap().unwrap();
    let _ = actor.start_kill();
    let after = checkpoint_json(&run_dir.join("checkpoints/final"));
    assert_eq!(after["format"], "shoal-checkpoint-v3", "{after}");
    // The counters went on from the old checkpoint's.
    let n = |v: &serde_json::Value, k: &str| v[k].as_u64().unwrap();
    assert!(
        summary.env_steps >= n(&before, "env_steps") + more_steps,
        "{summary:?}"
    );
    assert!(summary.updates > n(&before, "updates"), "{summary:?}");
    assert!(summary.version > n(&before, "version"), "{summary:?}");
    assert!(summary.episodes > n(&before, "episodes"), "{summary:?}");
    assert_eq!(n(&after, "env_steps"), summary.env_steps);
    (before, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ppo_checkpoint_of_format_2_resumes() {
    let (before, after) = resume_fixture("v2-ppo", 4096).await;
    // The optimizer state and the next actor id came back with it.
    assert!(
        after["counters"]["next_actor_id"].as_u64() > before["counters"]["next_actor_id"].as_u64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dqn_checkpoint_of_format_2_resumes_with_its_typed_state() {
    let (before, after) = resume_fixture("v2-dqn", 2000).await;
    // DQN's own state (replay-ratio control, evaluation count) was read, not started afresh.
    let state = |v: &serde_json::Value, k: &str| v["state"][k].as_u64().unwrap();
    assert!(
        state(&after, "learning_inserted") > state(&before, "learning_inserted"),
        "{before} -> {after}"
    );
    assert!(state(&after, "evaluations") >= state(&before, "evaluations"));
}
