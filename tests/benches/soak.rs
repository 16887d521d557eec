//! Soak benchmark: does the learner's resident memory stay flat over a long run with actors
//! joining and leaving?
//!
//! A `shoal learner` process trains CartPole (PPO by default; `SHOAL_SOAK_CONFIG` names another
//! config) with no target, for `SHOAL_SOAK_SECS` (default 1200 s = 20 min). Actor processes come
//! and go: every 5 s one is SIGKILLed or a new one starts, keeping 1 to 4. Meanwhile a client
//! sends requests the learner must refuse (a wrong token, an unknown actor id), 20 a second. The
//! learner's VmRSS is sampled every 10 s; the report compares the end with the end of the
//! warm-up (the first fifth of the run, at least 60 s).
//!
//! `cargo bench -p shoal-tests --bench soak` (after `cargo build --release --bins`).

use std::time::{Duration, Instant};

use shoal_common::config::{DeviceChoice, RunConfig};
use shoal_common::proto;
use shoal_common::rng::Rng;
use shoal_common::security::{BearerAuth, Token};
use shoal_tests::{
    LearnerProcess, free_port, repo_root, spawn_actor, temp_dir, test_client, wait_until_serving,
    write_config,
};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("learner alive");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Refused requests at `per_second` until `until`.
async fn bad_traffic(url: String, until: Instant, per_second: u64) -> u64 {
    let endpoint = shoal_actor::endpoint(&url).unwrap();
    let wrong = Token::new("a-wrong-token-for-the-soak-0000").unwrap();
    let mut sent = 0;
    let mut good = test_client(&url).await;
    while Instant::now() < until {
        let channel = match endpoint.connect().await {
            Ok(c) => c,
            Err(_) => continue,
        };
        let mut bad = proto::parameter_server_client::ParameterServerClient::with_interceptor(
            channel,
            BearerAuth::new(Some(wrong.clone())),
        );
        let _ = bad.register(proto::RegisterRequest::default()).await;
        let _ = good
            .get_parameters(proto::GetParametersRequest {
                actor_id: 999_999,
                ..Default::default()
            })
            .await;
        sent += 2;
        tokio::time::sleep(Duration::from_millis(2000 / per_second)).await;
    }
    sent
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let secs: u64 = std::env::var("SHOAL_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1200);
    let config_file =
        std::env::var("SHOAL_SOAK_CONFIG").unwrap_or_else(|_| "configs/cartpole-ppo.toml".into());
    let mut config = RunConfig::load(&repo_root().join(&config_file)).unwrap();
    config.learner.device = DeviceChoice::Flex;
    config.total_steps = u64::MAX / 4;
    config.target_return = None;
    config.learner.checkpoint_interval_secs = 30.0;
    let dir = temp_dir("soak");
    let config_path = write_config(&dir, &config);
    let port = free_port();
    let learner = LearnerProcess::spawn(
        port,
        &[
            "--config",
            config_path.to_str().unwrap(),
            "--run-dir",
            dir.join("run").to_str().unwrap(),
        ],
    );
    let pid = learner.child.id().unwrap();
    wait_until_serving(&learner.url, Duration::from_secs(30)).await;
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let warmup = Duration::from_secs((secs / 5).max(60).min(secs));
    println!(
        "soak: {config_file}, {secs} s, actors joining and leaving every 5 s, refused requests \
         alongside; learner pid {pid}"
    );
    let traffic = tokio::spawn(bad_traffic(learner.url.clone(), until, 20));
    let mut rng = Rng::new(7);
    let mut actors = vec![spawn_actor(&learner.url, "soak-0", false)];
    let (mut started, mut killed) = (1u64, 0u64);
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let mut next_sample = start;
    let mut next_churn = start + Duration::from_secs(5);
    while Instant::now() < until {
        let now = Instant::now();
        if now >= next_sample {
            let t = start.elapsed().as_secs_f64();
            let rss = rss_kib(pid);
            println!("t={t:>6.0}s rss={rss} KiB actors={}", actors.len());
            samples.push((t, rss));
            next_sample += Duration::from_secs(10);
        }
        if now >= next_churn {
            let leave = actors.len() == 4 || (actors.len() > 1 && rng.below(2) == 0);
            if leave {
                let mut a = actors.swap_remove(rng.below(actors.len()));
                a.start_kill().unwrap();
                a.wait().await.unwrap();
                killed += 1;
            } else {
                actors.push(spawn_actor(&learner.url, &format!("soak-{started}"), false));
                started += 1;
            }
            next_churn += Duration::from_secs(5);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = traffic.await.unwrap();
    let at = |t: f64| {
        samples
            .iter()
            .rev()
            .find(|(ts, _)| *ts <= t)
            .map(|s| s.1)
            .unwrap()
    };
    let after_warmup = at(warmup.as_secs_f64());
    let end = samples.last().unwrap().1;
    let peak = samples.iter().map(|s| s.1).max().unwrap();
    learner.terminate();
    let (status, log) = learner.finish().await;
    let last_status = log
        .iter()
        .rev()
        .find(|l| l["message"] == "status")
        .cloned()
        .unwrap_or_default();
    println!(
        "actors started {started}, killed {killed}; {refused} refused requests sent; learner exit \
         {status}; last status: env_steps {} updates {} refused {}",
        last_status["env_steps"], last_status["updates"], last_status["refused"]
    );
    println!(
        "RSS: start {} KiB, after warm-up ({} s) {after_warmup} KiB, end {end} KiB, peak {peak} \
         KiB; growth after warm-up {:+.2}%",
        samples[0].1,
        warmup.as_secs(),
        100.0 * (end as f64 - after_warmup as f64) / after_warmup as f64
    );
}
