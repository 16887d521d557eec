//! Issue 8: a real `shoal train` CartPole run with the Prometheus endpoint on; then the run
//! directory's metrics files, TensorBoard events (read back by TensorBoard's own loader), the
//! plot, `shoal eval` on the final checkpoint and `shoal export` to safetensors (reloaded in
//! Rust, and by numpy where Python has it).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burn::tensor::{Device, Tensor, TensorData};
use shoal_tests::{
    TEST_TOKEN, cartpole_config, free_port, repo_root, shoal_exe, shoal_ok, temp_dir,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` over HTTP/1.1; the status code and the body.
async fn http_get(addr: &str, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// A metric's value in an exposition (the first line with exactly this name and labels).
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The PNG's width and height (from its IHDR chunk).
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cartpole_run_exports_metrics_plots_evaluates_and_exports_its_policy() {
    let dir = temp_dir("observability");
    let run_dir = dir.join("run");
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let train = tokio::process::Command::new(shoal_exe())
        .current_dir(repo_root())
        .env("SHOAL_TOKEN", TEST_TOKEN)
        .env("RUST_LOG", "warn")
        .args(["train", "configs/cartpole-ppo.toml", "--actors", "2"])
        .args(["--device", "flex", "--seed", "1", "--json"])
        // The run solves in about 2 s: status rows (and what the endpoint serves) every 0.25 s.
        .args(["--set", "learner.status_interval_secs=0.25"])
        .args(["--run-dir", run_dir.to_str().unwrap()])
        .args(["--metrics-listen", &metrics_addr])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    // Acceptance 2: during the run, the endpoint answers with the documented names.
    let deadline = Instant::now() + Duration::from_secs(60);
    let scrape = loop {
        assert!(Instant::now() < deadline, "no complete scrape within 60 s");
        if let Some((200, body)) = http_get(&metrics_addr, "/metrics", Some(TEST_TOKEN)).await
            && metric(&body, "shoal_env_steps_total").is_some_and(|v| v > 0.0)
            && body.matches("shoal_actor_sps{").count() == 2
        {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for name in [
        "shoal_env_steps_total",
        "shoal_sps",
        "shoal_updates_total",
        "shoal_episodes_total",
        "shoal_return_mean_100",
        "shoal_policy_loss",
        "shoal_approx_kl",
        "shoal_connected_actors",
        "shoal_learner_busy",
        "shoal_refused_total",
    ] {
        assert!(
            metric(&scrape, name).is_some(),
            "{name} missing from:\n{scrape}"
        );
    }
    for name in [
        "shoal_actor_sps",
        "shoal_actor_env_steps_total",
        "shoal_actor_episodes_total",
        "shoal_actor_reconnects_total",
        "shoal_actor_inference_seconds",
    ] {
        assert!(
            scrape.contains(&format!("# TYPE {name} "))
                && scrape.contains(&format!("{name}{{actor=\"actor-")),
            "{name} missing from:\n{scrape}"
        );
    }
    let (status, _) = http_get(&metrics_addr, "/metrics", None).await.unwrap();
    assert_eq!(status, 401, "a scrape without the token is refused");

    let out = train.wait_with_output().await.unwrap();
    assert!(out.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["solved"], true, "{summary}");

    // Acceptance 1: metrics.jsonl, metrics.csv, TensorBoard events and a plot.
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(run_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = rows.last().unwrap();
    assert!(last["return_mean_100"].as_f64().unwrap() >= 475.0);
    assert_eq!(last["per_actor"].as_object().unwrap().len(), 2, "{last}");
    let csv = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header, shoal_learner::telemetry::COLUMNS);
    let csv_rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(csv_rows.len(), rows.len());
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let csv_last = csv_rows.last().unwrap();
    assert_eq!(
        csv_last[col("env_steps")].parse::<u64>().unwrap(),
        last["env_steps"].as_u64().unwrap()
    );
    let events: Vec<PathBuf> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("events.out.tfevents.")
        })
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    if let Some(py) = shoal_tests::venv_python() {
        // TensorBoard's own loader (what `tensorboard --logdir` uses) reads the file.
        let read = Command::new(&py)
            .arg("-c")
            .arg(
                "import json, sys\n\
                 from tensorboard.backend.event_processing.event_accumulator import EventAccumulator\n\
                 ea = EventAccumulator(sys.argv[1]); ea.Reload()\n\
                 r = ea.Scalars('shoal/return_mean_100')\n\
                 e = ea.Scalars('charts/episodic_return')\n\
                 config = ea.Tensors('config')[0].tensor_proto.string_val[0].decode()\n\
                 print(json.dumps({'tags': ea.Tags()['scalars'], 'steps': [e.step for e in r], 'values': [e.value for e in r], 'episodes': len(e), 'config': config}))",
            )
            .arg(&run_dir)
            .output()
            .unwrap();
        if read.status.success() {
            let tb: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
            let values = tb["values"].as_array().unwrap();
            assert_eq!(values.len(), rows.len());
            // The config is in the text tab; no other algorithm's tags are there.
            assert!(
                tb["config"]
                    .as_str()
                    .unwrap()
                    .contains("env_id = \"CartPole-v1\""),
                "{tb}"
            );
            for other in ["losses/td_loss", "losses/q_values", "shoal/replay_size"] {
                assert!(
                    !tb["tags"].as_array().unwrap().iter().any(|t| t == other),
                    "{other}: {tb}"
                );
            }
            // One point per finished episode, as CleanRL logs it, and one row in episodes.csv.
            let episodes = std::fs::read_to_string(run_dir.join("episodes.csv")).unwrap();
            assert_eq!(
                tb["episodes"].as_u64().unwrap() as usize,
                episodes.lines().count() - 1
            );
            assert!(values.last().unwrap().as_f64().unwrap() >= 475.0, "{tb}");
            assert_eq!(
                tb["steps"].as_array().unwrap().last().unwrap(),
                &last["env_steps"]
            );
            for tag in [
                "charts/SPS",
                "losses/policy_loss",
                "losses/approx_kl",
                "perf/version_diff_avg",
            ] {
                assert!(
                    tb["tags"].as_array().unwrap().iter().any(|t| t == tag),
                    "{tag}: {tb}"
                );
            }
        } else {
            println!(
                "SKIPPED the TensorBoard read-back: {}",
                String::from_utf8_lossy(&read.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
        }
    } else {
        println!("SKIPPED the TensorBoard read-back: no Python venv (scripts/install-deps)");
    }
    shoal_ok(&["plot", run_dir.to_str().unwrap()]);
    assert_eq!(png_size(&run_dir.join("plot.png")), (1800, 1000));

    // Acceptance 3: the greedy policy of the final checkpoint over 100 episodes.
    let checkpoint = run_dir.join("checkpoints/final");
    let record = dir.join("episodes.csv");
    let report: serde_json::Value = serde_json::from_str(&shoal_ok(&[
        "eval",
        checkpoint.to_str().unwrap(),
        "--episodes",
        "100",
        "--json",
        "--record",
        record.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(report["episodes"], 100);
    assert!(report["return_mean"].as_f64().unwrap() >= 475.0, "{report}");
    assert_eq!(
        std::fs::read_to_string(&record).unwrap().lines().count(),
        101
    );
    println!("shoal eval: {report}");

    // Export, reload, identical action probabilities.
    let exported = dir.join("policy.safetensors");
    shoal_ok(&[
        "export",
        checkpoint.to_str().unwrap(),
        "--out",
        exported.to_str().unwrap(),
    ]);
    let config = cartpole_config();
    let spec = shoal_learner::model_spec(&config).unwrap();
    let layout = spec.layout();
    let saved = layout
        .decode(&std::fs::read(checkpoint.join("params.bin")).unwrap())
        .unwrap();
    let bytes = std::fs::read(&exported).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut reloaded = Vec::new();
    for entry in layout.entries() {
        let t = st.tensor(&entry.path).unwrap();
        assert_eq!(t.dtype(), safetensors::Dtype::F32, "{}", entry.path);
        assert_eq!(t.shape(), entry.shape.as_slice(), "{}", entry.path);
        reloaded.extend(
            t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap())),
        );
    }
    assert_eq!(
        reloaded, saved,
        "the export holds the checkpoint's parameters"
    );
    let observations: Vec<[f32; 4]> = (0..16)
        .map(|i| {
            let x = i as f32 / 16.0 - 0.5;
            [x, -0.5 * x, 0.1 * x, x * x]
        })
        .collect();
    let probs = |params: &[f32]| -> Vec<f32> {
        let model = spec.build(params, &Device::flex());
        let flat: Vec<f32> = observations.iter().flatten().copied().collect();
        let logits = model
            .logits(Tensor::from_data(
                TensorData::new(flat, [16, 4]),
                &Device::flex(),
            ))
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        logits
            .chunks_exact(2)
            .flat_map(|l| {
                let m = l[0].max(l[1]);
                let (a, b) = ((l[0] - m).exp(), (l[1] - m).exp());
                [a / (a + b), b / (a + b)]
            })
            .collect()
    };
    let from_checkpoint = probs(&saved);
    assert_eq!(
        probs(&reloaded),
        from_checkpoint,
        "identical action probabilities"
    );
    let rows: Vec<&[f32]> = observations.iter().map(|o| &o[..]).collect();
    match shoal_tests::numpy_policy(&exported, &rows) {
        Some(numpy) => {
            let worst = numpy
                .iter()
                .flatten()
                .zip(&from_checkpoint)
                .map(|(a, &b)| (a - b as f64).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-5, "numpy differs by {worst}");
            println!("numpy reproduces the action probabilities to {worst:e}");
        }
        None => println!("SKIPPED the numpy check: no Python venv (scripts/install-deps)"),
    }
}
