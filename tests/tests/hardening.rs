//! What an outside client can do (issue 14), probed with a raw client written against the
//! proto alone (no shoal actor code) and a real learner.

use shoal_common::proto::{self, parameter_server_client::ParameterServerClient};
use shoal_common::security::BearerAuth;
use shoal_common::settings::PROTOCOL_VERSION;
use shoal_tests::{TestLearner, cartpole_config, temp_dir, test_token};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Raw = ParameterServerClient<InterceptedService<Channel, BearerAuth>>;

async fn raw_client(url: &str) -> Raw {
    let channel = Channel::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    ParameterServerClient::with_interceptor(channel, BearerAuth::new(Some(test_token())))
}

/// Registers as `name`, claiming `previous` (id, secret); returns the id and secret given.
async fn register(c: &mut Raw, name: &str, previous: Option<(u32, Vec<u8>)>) -> (u32, Vec<u8>) {
    let r = c
        .register(proto::RegisterRequest {
            protocol_version: PROTOCOL_VERSION as i32,
            name: name.into(),
            previous_actor_id: previous.as_ref().map(|p| p.0),
            previous_actor_secret: previous.map(|p| p.1.into()).unwrap_or_default(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    (r.actor_id, r.actor_secret.to_vec())
}

/// Finding 1: ids never wrap, a client cannot pick an id it was not given, nor take over a
/// live actor's id and name; the holder of an id's secret gets it back.
#[tokio::test]
async fn actor_ids_are_the_learners_to_hand_out() {
    let run_dir = temp_dir("ids").join("run");
    let learner = TestLearner::start(cartpole_config(), run_dir.clone()).await;
    shoal_tests::wait_until_serving(&learner.url(), std::time::Duration::from_secs(30)).await;
    let mut c = raw_client(&learner.url()).await;

    let (live, live_secret) = register(&mut c, "live", None).await;
    assert_eq!(live, 1);
    assert_eq!(live_secret.len(), 32);
    // The probe's claims: the largest id, an id never issued, the live actor's id without its
    // secret, with a wrong secret, with another id's secret.
    let (max_claim, _) = register(&mut c, "wrap", Some((u32::MAX, vec![]))).await;
    let (never_issued, _) = register(&mut c, "pick", Some((777_777, vec![0; 32]))).await;
    let (takeover, _) = register(&mut c, "thief", Some((live, vec![]))).await;
    let (wrong, wrong_secret) = register(&mut c, "thief2", Some((live, vec![7; 32]))).await;
    let (borrowed, _) = register(&mut c, "thief3", Some((live, wrong_secret.clone()))).await;
    let issued = [live, max_claim, never_issued, takeover, wrong, borrowed];
    assert_eq!(
        issued,
        [1, 2, 3, 4, 5, 6],
        "fresh ids, in order, none reused"
    );

    // A second wave after the wrap attempt: still increasing, nothing handed out twice.
    let mut more = Vec::new();
    for i in 0..20 {
        more.push(register(&mut c, &format!("a{i}"), None).await.0);
    }
    assert_eq!(more, (7..27).collect::<Vec<u32>>());

    // The live actor, reconnecting with its secret, keeps its id.
    let (again, again_secret) = register(&mut c, "live", Some((live, live_secret.clone()))).await;
    assert_eq!(again, live);
    assert_eq!(again_secret, live_secret);
    // The final checkpoint keeps the next id and the key, so a resumed learner neither reissues
    // ids nor forgets its actors.
    learner.shutdown.cancel();
    learner.handle.await.unwrap().unwrap();
    let meta = shoal_tests::newest_checkpoint(&run_dir).unwrap();
    assert_eq!(meta["counters"]["next_actor_id"], 27, "{meta}");
    assert_eq!(meta["actor_id_key"].as_str().unwrap().len(), 64);

    let resumed = TestLearner::start_with(shoal_learner::LearnerOptions {
        resume: true,
        token: Some(test_token()),
        ..shoal_learner::LearnerOptions::new(cartpole_config(), run_dir.clone())
    })
    .await;
    shoal_tests::wait_until_serving(&resumed.url(), std::time::Duration::from_secs(30)).await;
    let mut c = raw_client(&resumed.url()).await;
    assert_eq!(
        register(&mut c, "live", Some((live, live_secret))).await.0,
        live
    );
    assert_eq!(register(&mut c, "thief", Some((live, vec![]))).await.0, 27);
    resumed.shutdown.cancel();
    resumed.handle.await.unwrap().unwrap();
}

/// Finding 4: what a client sends is bounded wherever it is logged or echoed, and refusals
/// before authentication are rate-limited like every other.
#[tokio::test]
async fn clients_cannot_inflate_logs_or_errors() {
    let port = shoal_tests::free_port();
    let dir = temp_dir("inflate");
    let run = dir.join("run");
    let mut learner = shoal_tests::LearnerProcess::spawn(
        port,
        &[
            "--config",
            "configs/cartpole-ppo.toml",
            "--run-dir",
            run.to_str().unwrap(),
        ],
    );
    shoal_tests::wait_until_serving(&learner.url, std::time::Duration::from_secs(30)).await;

    // 2,000 requests without the token.
    let channel = Channel::from_shared(learner.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut anonymous = ParameterServerClient::with_interceptor(channel, BearerAuth::new(None));
    for _ in 0..2000 {
        let err = anonymous
            .get_parameters(proto::GetParametersRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }

    // A 100 KB name and a 50 KB fingerprint.
    let mut c = raw_client(&learner.url).await;
    let (id, _) = register(&mut c, &"n".repeat(100_000), None).await;
    let err = c
        .get_parameters(proto::GetParametersRequest {
            actor_id: id,
            model_fingerprint: "f".repeat(50_000),
            have_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert!(err.message().len() < 400, "{} bytes", err.message().len());
    assert!(err.message().contains("(50000 bytes)"), "{}", err.message());

    learner
        .wait_for(
            "actor registered",
            std::time::Duration::from_secs(10),
            |_| true,
        )
        .await;
    learner.terminate();
    let (_, lines) = learner.finish().await;
    let refusals: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "request refused: missing or wrong token")
        .collect();
    assert!(
        !refusals.is_empty() && refusals.len() <= 100,
        "{} refusal lines for 2000 requests",
        refusals.len()
    );
    let longest = lines.iter().map(|l| l.to_string().len()).max().unwrap();
    assert!(longest < 2000, "a log line of {longest} bytes");
    let registered = lines
        .iter()
        .find(|l| l["message"] == "actor registered")
        .unwrap();
    assert!(
        registered["name"]
            .as_str()
            .unwrap()
            .ends_with("…(100000 bytes)"),
        "{registered}"
    );
}

/// The run's parameter count, from the model spec a registration returns.
fn num_floats(model: &proto::ModelSpec) -> usize {
    model
        .params
        .iter()
        .map(|p| p.shape.iter().product::<u32>() as usize)
        .sum()
}

fn f32_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values.into_iter().flat_map(f32::to_le_bytes).collect()
}

/// A CartPole rollout (4 observations, 2 actions) written from the proto alone: `t` steps of
/// `n` environments, all zeros, whose episodes end at step `t - 1` of the first `ends.len()`
/// environments with the (return, length) claimed there.
fn raw_rollout(
    actor_id: u32,
    fingerprint: &str,
    version: u64,
    (t, n): (usize, usize),
    ends: &[(f32, u32)],
) -> proto::Rollout {
    let zeros = |k: usize| f32_bytes(std::iter::repeat_n(0.0, k));
    let mut terminated = vec![0u8; t * n];
    for i in 0..ends.len() {
        terminated[(t - 1) * n + i] = 1;
    }
    let empty = |dim: usize| proto::Moments {
        count: 0.0,
        mean: vec![0; dim * 8].into(),
        m2: vec![0; dim * 8].into(),
    };
    proto::Rollout {
        actor_id,
        model_fingerprint: fingerprint.into(),
        version,
        n_steps: t as u32,
        num_envs: n as u32,
        observations: zeros(t * n * 4).into(),
        actions: zeros(t * n).into(),
        rewards: f32_bytes(std::iter::repeat_n(1.0, t * n)).into(),
        terminated: terminated.into(),
        truncated: vec![0u8; t * n].into(),
        log_probs: f32_bytes(std::iter::repeat_n(-std::f32::consts::LN_2, t * n)).into(),
        values: zeros(t * n).into(),
        bootstrap_values: zeros(n).into(),
        truncation_values: zeros(t * n).into(),
        episode_returns: ends.iter().map(|e| e.0).collect(),
        episode_lengths: ends.iter().map(|e| e.1).collect(),
        moments: Some(proto::NormStats {
            observations: Some(empty(4)),
            returns: Some(empty(1)),
        }),
        actor_stats: None,
        ..Default::default()
    }
}

/// Pushes `rollout`; it must be accepted (fresh).
async fn push_accepted(c: &mut Raw, rollout: proto::Rollout) {
    let ack = c.push_rollout(rollout).await.unwrap().into_inner();
    assert!(ack.accepted, "{ack:?}");
}

/// The newest version the learner has published.
async fn latest_version(c: &Raw, actor_id: u32, fp: &str) -> u64 {
    c.clone()
        .get_parameters(proto::GetParametersRequest {
            actor_id,
            model_fingerprint: fp.into(),
            have_version: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .latest_version
}

/// Returns once the learner has published a version newer than `version`.
async fn wait_for_version(c: &Raw, actor_id: u32, fp: &str, version: u64) {
    let mut c = c.clone();
    loop {
        let latest = c
            .get_parameters(proto::GetParametersRequest {
                actor_id,
                model_fingerprint: fp.into(),
                have_version: version,
            })
            .await
            .unwrap()
            .into_inner()
            .latest_version;
        if latest > version {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// Registers and returns (id, fingerprint, settings, model).
async fn join(c: &mut Raw, name: &str) -> (u32, String, proto::RunSettings, proto::ModelSpec) {
    let r = c
        .register(proto::RegisterRequest {
            protocol_version: PROTOCOL_VERSION as i32,
            name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    (
        r.actor_id,
        r.model_fingerprint,
        r.settings.unwrap(),
        r.model.unwrap(),
    )
}

/// Finding 3 (PPO): episode claims must fit the environment and the steps pushed, and only
/// experience the learner trains on is counted: the probe's rollouts neither end the run as
/// solved nor use up its steps.
#[tokio::test]
async fn ppo_counts_only_accepted_experience() {
    let mut config = cartpole_config();
    config.target_return = Some(475.0);
    let learner = TestLearner::start(config.clone(), temp_dir("claims-ppo").join("run")).await;
    shoal_tests::wait_until_serving(&learner.url(), std::time::Duration::from_secs(30)).await;
    let mut c = raw_client(&learner.url()).await;
    let (id, fp, s, _) = join(&mut c, "probe").await;
    let shape = (s.n_steps as usize, s.num_envs as usize);
    let steps = (shape.0 * shape.1) as u64;
    let v = latest_version(&c, id, &fp).await;

    // The probe's claims: returns of 500 in one step, a length of u32::MAX, a length beyond
    // the time limit.
    let claims: [&[(f32, u32)]; 3] = [&[(500.0, 1); 4], &[(500.0, u32::MAX)], &[(501.0, 501)]];
    for (i, ends) in claims.into_iter().enumerate() {
        let mut ends = ends.to_vec();
        ends.truncate(shape.1);
        let err = c
            .push_rollout(raw_rollout(id, &fp, v, shape, &ends))
            .await
            .expect_err(&format!("claim {i} accepted"));
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "claim {i}: {err}");
        assert!(err.message().contains("episode"), "claim {i}: {err}");
    }
    // Full-length episodes in a rollout of 32 steps per environment: possible for episodes
    // begun before, but this actor has pushed nothing before. The rollout is taken, its
    // episodes are not counted.
    let full = vec![(500.0, 500); shape.1];
    push_accepted(&mut c, raw_rollout(id, &fp, v, shape, &full)).await;
    // Rollouts complete two updates (a second actor's share sent by the same client).
    let (id2, ..) = join(&mut c, "probe2").await;
    for (version, actors) in [(v, vec![id2]), (v + 1, vec![id, id2])] {
        for actor in actors {
            push_accepted(&mut c, raw_rollout(actor, &fp, version, shape, &[])).await;
        }
        wait_for_version(&c, id, &fp, version).await;
    }
    // 300 stale rollouts, each answered "stale" (or "queue full": they are sent faster than
    // the trainer discards them): they do not use up the run's steps.
    for _ in 0..300 {
        match c.push_rollout(raw_rollout(id, &fp, v, shape, &[])).await {
            Ok(ack) => assert!(!ack.into_inner().accepted),
            Err(e) => assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e}"),
        }
    }
    learner.shutdown.cancel();
    let summary = learner.handle.await.unwrap().unwrap();
    assert!(!summary.solved, "{summary:?}");
    assert_eq!(
        summary.env_steps,
        4 * steps,
        "only the trained-on rollouts count"
    );
    assert_eq!(summary.episodes, 0);
}

/// Finding 3 (A3C): all-zero gradients that each claim a full-length episode are applied, but
/// only the episodes the steps pushed can account for are counted: no "solved".
#[tokio::test]
async fn a3c_claims_cannot_exceed_the_steps_pushed() {
    let mut config = shoal_common::config::RunConfig::load(
        &shoal_tests::repo_root().join("configs/cartpole-a3c.toml"),
    )
    .unwrap();
    // The run ends by itself once the 200 pushes below are applied (none of them stale).
    config.total_steps = 2000;
    config.a3c.max_staleness = 1000;
    let learner = TestLearner::start(config, temp_dir("claims-a3c").join("run")).await;
    shoal_tests::wait_until_serving(&learner.url(), std::time::Duration::from_secs(30)).await;
    let mut c = raw_client(&learner.url()).await;
    let (id, fp, s, model) = join(&mut c, "probe").await;
    let steps = s.n_steps * s.num_envs;
    let mut version = 0;
    for _ in 0..200 {
        let gradient = proto::Gradient {
            actor_id: id,
            model_fingerprint: fp.clone(),
            version,
            data: vec![0; 4 * num_floats(&model)].into(),
            env_steps: steps,
            episode_returns: vec![500.0],
            episode_lengths: vec![500],
            ..Default::default()
        };
        let ack = c.push_gradient(gradient).await.unwrap().into_inner();
        assert!(ack.accepted, "{ack:?}");
        version = ack.current_version;
    }
    let summary = learner.handle.await.unwrap().unwrap();
    assert!(!summary.solved, "{summary:?}");
    assert_eq!(summary.gradients_applied, 200);
    // 200 pushes of 10 steps account for 2,000 episode steps: 4 episodes of 500, each
    // counted at the 50th push after the one before.
    assert_eq!(summary.episodes, 4, "{summary:?}");
}

/// Finding 6: an actor that states what it runs is refused at the door when that is not the
/// run's, before it gets an id.
#[tokio::test]
async fn registration_refuses_another_environment() {
    let learner = TestLearner::start(cartpole_config(), temp_dir("states").join("run")).await;
    shoal_tests::wait_until_serving(&learner.url(), std::time::Duration::from_secs(30)).await;
    let mut c = raw_client(&learner.url()).await;
    let states = |env_id: &str, num_envs: u32, fp: &str| proto::RegisterRequest {
        protocol_version: PROTOCOL_VERSION as i32,
        name: "stating".into(),
        env_id: env_id.into(),
        num_envs,
        model_fingerprint: fp.into(),
        ..Default::default()
    };
    let (_, fp, s, _) = join(&mut c, "plain").await;
    for (req, what) in [
        (states("Acrobot-v1", 0, ""), "environment"),
        (states("", 7, ""), "num_envs"),
        (states("", 0, &"f".repeat(10_000)), "model fingerprint"),
    ] {
        let err = c.register(req).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err}");
        assert!(err.message().contains(what), "{err}");
        assert!(err.message().len() < 400, "{} bytes", err.message().len());
    }
    let ok = c
        .register(states("CartPole-v1", s.num_envs, &fp))
        .await
        .unwrap()
        .into_inner();
    // The refused registrations got no id: this one is the second issued.
    assert_eq!(ok.actor_id, 2);
    learner.shutdown.cancel();
    learner.handle.await.unwrap().unwrap();
}

/// Finding 5: parameter subscriptions are capped per actor and in all, an unknown actor's
/// subscription is refused, and a subscriber that never reads does not hold the learner's
/// shutdown.
#[tokio::test]
async fn subscriptions_are_bounded_and_do_not_hold_shutdown() {
    let port = shoal_tests::free_port();
    let run = temp_dir("streams").join("run");
    let learner = shoal_tests::LearnerProcess::spawn(
        port,
        &[
            "configs/cartpole-ppo.toml",
            "--run-dir",
            run.to_str().unwrap(),
            "--set",
            "learner.limits.max_subscriptions_per_actor=2",
            "--set",
            "learner.limits.max_subscriptions=3",
        ],
    );
    shoal_tests::wait_until_serving(&learner.url, std::time::Duration::from_secs(30)).await;
    let mut c = raw_client(&learner.url).await;
    let (a, fp, s, _) = join(&mut c, "a").await;
    // Subscribers with HTTP/2's smallest windows on a connection of their own: what they do
    // not read fills it at 64 KiB.
    let channel = Channel::from_shared(learner.url.clone())
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let mut slow =
        ParameterServerClient::with_interceptor(channel, BearerAuth::new(Some(test_token())));
    let (b, ..) = join(&mut c, "b").await;
    let subscribe = |c: &mut Raw, actor_id: u32| {
        let mut c = c.clone();
        let fp = fp.clone();
        async move {
            c.subscribe_parameters(proto::SubscribeRequest {
                actor_id,
                model_fingerprint: fp,
            })
            .await
        }
    };
    let mut held = Vec::new();
    for actor in [a, a] {
        held.push(subscribe(&mut slow, actor).await.unwrap().into_inner());
    }
    let err = subscribe(&mut slow, a).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
    held.push(subscribe(&mut slow, b).await.unwrap().into_inner());
    let err = subscribe(&mut c, b).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
    let err = subscribe(&mut c, 999).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err}");

    // None of these streams is read. New versions fill their flow-control windows (each
    // version is ~37 KB; a client's window is 64 KiB).
    let shape = (s.n_steps as usize, s.num_envs as usize);
    let v = latest_version(&c, a, &fp).await;
    for version in v..v + 6 {
        for actor in [a, b] {
            c.push_rollout(raw_rollout(actor, &fp, version, shape, &[]))
                .await
                .unwrap();
        }
        wait_for_version(&c, a, &fp, version).await;
    }
    learner.terminate();
    let (status, lines) = learner.finish().await;
    assert!(status.success(), "{status:?}");
    drop(held);
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("connections still open"))),
        "the streams that were not read were not what held the shutdown"
    );
}

/// Finding 2: silent connections cannot take the learner's descriptors. With an open-file
/// limit of 128 (room for 64 connections), 300 connections that never send a byte are
/// displaced or closed, the accept loop does not spin, and an actor still registers and
/// pushes.
#[tokio::test]
async fn silent_connections_cannot_lock_actors_out() {
    let port = shoal_tests::free_port();
    let run = temp_dir("silent").join("run");
    let mut learner = shoal_tests::LearnerProcess::spawn_with_open_files(
        port,
        Some(128),
        &[
            "configs/cartpole-ppo.toml",
            "--run-dir",
            run.to_str().unwrap(),
            "--set",
            "learner.limits.auth_timeout_secs=1",
        ],
    );
    let limit = learner
        .wait_for(
            "open-file limit",
            std::time::Duration::from_secs(30),
            |_| true,
        )
        .await;
    assert_eq!(limit["open_files_soft_limit"], 128, "{limit}");
    assert_eq!(limit["max_connections"], 64, "{limit}");
    shoal_tests::wait_until_serving(&learner.url, std::time::Duration::from_secs(30)).await;

    let addr = format!("127.0.0.1:{port}");
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    // An actor arriving now still gets in, registers and pushes.
    let mut c = raw_client(&learner.url).await;
    let (id, fp, s, _) = join(&mut c, "late").await;
    let shape = (s.n_steps as usize, s.num_envs as usize);
    let v = latest_version(&c, id, &fp).await;
    push_accepted(&mut c, raw_rollout(id, &fp, v, shape, &[])).await;
    // Every silent connection is closed by the learner: displaced at the limit, or by the
    // auth timeout.
    // (The learner's side of the HTTP/2 handshake may come first.)
    for mut s in silent {
        use tokio::io::AsyncReadExt;
        let closed = async {
            let mut buf = [0u8; 256];
            while let Ok(n) = s.read(&mut buf).await
                && n > 0
            {}
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), closed)
            .await
            .expect("a silent connection left open");
    }
    // Still serving the actor.
    c.get_parameters(proto::GetParametersRequest {
        actor_id: id,
        model_fingerprint: fp.clone(),
        have_version: 0,
    })
    .await
    .unwrap();
    learner.terminate();
    let (status, lines) = learner.finish().await;
    assert!(status.success(), "{status:?}");
    let said = |m: &str| {
        lines
            .iter()
            .any(|l| l["message"].as_str().is_some_and(|s| s.starts_with(m)))
    };
    assert!(said("connection limit reached"), "no log line at the limit");
    assert!(said("connection closed: no authenticated request"));
    let longest = lines.iter().map(|l| l.to_string().len()).max().unwrap();
    assert!(longest < 2000);
    assert!(lines.len() < 400, "{} log lines", lines.len());
}
