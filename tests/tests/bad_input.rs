//! The user-facing failure modes: clear errors, no panics.

use std::time::Duration;

use shoal_tests::{repo_root, shoal_exe, spawn_actor, temp_dir};
use tokio::io::{AsyncBufReadExt, BufReader};

fn shoal(args: &[&str]) -> std::process::Output {
    std::process::Command::new(shoal_exe())
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run shoal")
}

#[test]
fn unknown_env_id_and_malformed_config_are_clear_errors() {
    let dir = temp_dir("bad-config");
    let unknown = dir.join("unknown.toml");
    std::fs::write(&unknown, "env_id = \"CartPole-v9\"\n").unwrap();
    let out = shoal(&["train", unknown.to_str().unwrap(), "--actors", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("unknown environment id `CartPole-v9`"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let malformed = dir.join("malformed.toml");
    std::fs::write(&malformed, "[ppo\nlearning_rate = 1\n").unwrap();
    let out = shoal(&[
        "learner",
        "--config",
        malformed.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("malformed config"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = shoal(&["train", dir.join("missing.toml").to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("cannot read config"), "{stderr}");
}

#[test]
fn envs_lists_cartpole() {
    let out = shoal(&["envs"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("CartPole-v1") && stdout.contains("Discrete(2)"),
        "{stdout}"
    );
}

#[tokio::test]
async fn actor_keeps_retrying_an_unreachable_learner_and_says_so() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut actor = spawn_actor(&format!("http://127.0.0.1:{port}"), "lonely", true);
    let mut lines = BufReader::new(actor.stderr.take().unwrap()).lines();
    let mut retries = 0;
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("learner unreachable; retrying") && line.contains("\"attempt\"") {
                retries += 1;
                if retries == 3 {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .expect("three retry messages");
    assert_eq!(retries, 3);
    // Still running: it does not give up.
    assert!(actor.try_wait().unwrap().is_none());
    actor.kill().await.unwrap();
}
