//! Issue 6, acceptance 4: thousands of malformed and adversarial messages against live learners
//! (PPO, A3C and DQN, each training with two real actor processes meanwhile): random bytes,
//! lying length prefixes, oversized messages, wrong shapes, NaN/Inf and huge values, actions
//! outside the action space, unknown actors, other models, versions from the future, another
//! algorithm's rpc. Every one must get an error status; the learner must not crash or panic, its
//! parameters must stay finite, and it must go on training and serving valid requests.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use shoal_actor::policy::Policy;
use shoal_common::config::{DeviceChoice, RunConfig};
use shoal_common::normalize::Normalizer;
use shoal_common::proto;
use shoal_common::rng::Rng;
use shoal_tests::{
    TEST_TOKEN, TestLearner, dqn_worker_for, register_probe, repo_root, spawn_actor, temp_dir,
    test_client, worker_for,
};
use tonic::Code;
use tonic::transport::Channel;
use tower::ServiceExt;

const RPCS: [&str; 7] = [
    "/shoal.v1.ParameterServer/Register",
    "/shoal.v1.ParameterServer/GetParameters",
    "/shoal.v1.ParameterServer/SubscribeParameters",
    "/shoal.v1.ParameterServer/PushRollout",
    "/shoal.v1.ParameterServer/PushGradient",
    "/shoal.v1.ParameterServer/PushTransitions",
    "/grpc.health.v1.Health/Check",
];

/// Sends `body` as the raw HTTP/2 body of a gRPC call to `path`; returns the status code.
async fn raw_call(channel: &Channel, path: &str, body: Bytes) -> Code {
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://127.0.0.1{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {TEST_TOKEN}"))
        .body(tonic::body::Body::new(http_body_util::Full::new(body)))
        .unwrap();
    let Ok(resp) = channel.clone().oneshot(req).await else {
        return Code::Unavailable;
    };
    let code = |v: &http::HeaderValue| Code::from(v.to_str().unwrap().parse::<i32>().unwrap());
    if let Some(v) = resp.headers().get("grpc-status") {
        return code(v);
    }
    // A streaming answer: the status is in the trailers (a stream that sent messages first
    // would be a success, which the caller reports).
    let collected = match resp.into_body().collect().await {
        Ok(c) => c,
        Err(_) => return Code::Unknown,
    };
    collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .map(code)
        .unwrap_or(Code::Ok)
}

/// A gRPC frame: compression flag, big-endian length, payload.
fn frame(compressed: u8, len: u32, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + payload.len());
    b.put_u8(compressed);
    b.put_u32(len);
    b.put_slice(payload);
    b.freeze()
}

fn random_bytes(rng: &mut Rng, max: usize) -> Vec<u8> {
    let n = rng.below(max + 1);
    (0..n).map(|_| rng.below(256) as u8).collect()
}

/// One way of breaking a little-endian f32 field. Huge finite values break experience, not
/// gradients (which the learner clips), so only `huge_is_invalid` fields get them.
fn break_floats(field: &mut Bytes, rng: &mut Rng, huge_is_invalid: bool) {
    let mut v = field.to_vec();
    match rng.below(7) {
        // A value that is not finite or is implausibly large.
        k @ 0..=3 if v.len() >= 4 => {
            let huge = if huge_is_invalid { 3e30 } else { f32::NAN };
            let bad = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, huge][k];
            let i = rng.below(v.len() / 4) * 4;
            v[i..i + 4].copy_from_slice(&bad.to_le_bytes());
        }
        4 => v.truncate(v.len().saturating_sub(1 + rng.below(4))),
        5 => v.extend_from_slice(&[0, 0, 128, 63]),
        _ => v.clear(),
    }
    if v == field.as_ref() {
        v.push(0); // a field that was already empty
    }
    *field = v.into();
}

/// A mutation that makes any push invalid whatever its kind: returns the fields to change.
enum Common {
    UnknownActor,
    OtherModel,
    FutureVersion,
}

fn common(rng: &mut Rng) -> Common {
    match rng.below(3) {
        0 => Common::UnknownActor,
        1 => Common::OtherModel,
        _ => Common::FutureVersion,
    }
}

struct Probe {
    actor_id: u32,
    fingerprint: String,
}

impl Probe {
    fn apply(
        &self,
        c: Common,
        actor_id: &mut u32,
        fp: &mut String,
        version: &mut u64,
        rng: &mut Rng,
    ) {
        match c {
            Common::UnknownActor => *actor_id = 100_000 + rng.below(1_000_000) as u32,
            Common::OtherModel => *fp = format!("{}x", self.fingerprint),
            // Far beyond anything the learner publishes during the test.
            Common::FutureVersion => *version = 1_000_000 + rng.below(1 << 30) as u64,
        }
    }
}

#[derive(Default)]
struct Tally {
    by_kind: BTreeMap<&'static str, u64>,
    by_code: BTreeMap<String, u64>,
}

impl Tally {
    fn record(&mut self, kind: &'static str, code: Code) {
        assert_ne!(code, Code::Ok, "a {kind} message was accepted");
        *self.by_kind.entry(kind).or_default() += 1;
        *self.by_code.entry(format!("{code:?}")).or_default() += 1;
    }

    fn total(&self) -> u64 {
        self.by_kind.values().sum()
    }
}

fn code<T>(r: Result<T, tonic::Status>) -> Code {
    r.err().map_or(Code::Ok, |s| s.code())
}

async fn fuzz(file: &str, rounds: usize) -> Tally {
    let mut config = RunConfig::load(&repo_root().join(file)).unwrap();
    config.learner.device = DeviceChoice::Flex;
    config.total_steps = u64::MAX / 4;
    config.target_return = None;
    config.learner.status_interval_secs = 0.5;
    let spec = shoal_learner::model_spec(&config).unwrap();
    let learner = TestLearner::start(
        config.clone(),
        temp_dir(&format!("fuzz-{}", config.algorithm.name())),
    )
    .await;
    let url = learner.url();
    let mut actors: Vec<_> = (0..2)
        .map(|i| spawn_actor(&url, &format!("fuzz-bystander-{i}"), false))
        .collect();
    let mut client = test_client(&url).await;
    let s = register_probe(&mut client).await;
    let probe = Probe {
        actor_id: s.actor_id,
        fingerprint: s.model_fingerprint.clone(),
    };
    let channel = shoal_actor::endpoint(&url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut rng = Rng::new(0xF022);
    let mut tally = Tally::default();

    // Valid messages of each kind, to break one field at a time.
    let policy = Policy::new(
        &spec,
        &spec.init_params(1),
        1,
        Normalizer::off(spec.obs_dim),
    );
    let rollout = {
        let mut r = worker_for(&config, &spec, 5)
            .collect(&policy)
            .unwrap()
            .to_proto(&probe.fingerprint);
        r.actor_id = probe.actor_id;
        r
    };
    let transitions = {
        let mut c = config.clone();
        c.dqn.epsilon = 1.0;
        let mut t = dqn_worker_for(&c, &spec, 6)
            .collect(&policy)
            .unwrap()
            .to_proto(&probe.fingerprint);
        t.actor_id = probe.actor_id;
        t
    };
    let gradient = shoal_common::gradient::GradientPush {
        actor_id: probe.actor_id,
        version: 1,
        grad: vec![1e-3; spec.layout().num_floats()],
        env_steps: (config.n_steps * config.num_envs) as u32,
        ..Default::default()
    }
    .to_proto(&probe.fingerprint);
    let max_request = shoal_learner::edge::max_request_bytes(&config, &spec);

    for round in 0..rounds {
        // 1. Random bytes with a correct length prefix, to every rpc.
        let path = RPCS[rng.below(RPCS.len())];
        let payload = random_bytes(&mut rng, 512);
        let c = raw_call(&channel, path, frame(0, payload.len() as u32, &payload)).await;
        // An empty or lucky payload can decode as a valid health check of the whole server.
        if !(path.ends_with("Check") && c == Code::Ok) {
            tally.record("random bytes", c);
        }

        // 2. Frames that lie: a length beyond the limit, beyond the body, or a compressed flag
        //    without an encoding.
        let payload = random_bytes(&mut rng, 64);
        let (kind, body) = match round % 3 {
            0 => (
                "length prefix over the limit",
                frame(0, u32::MAX - rng.below(1000) as u32, &payload),
            ),
            1 => (
                "length prefix beyond the body",
                frame(
                    0,
                    payload.len() as u32 + 1 + rng.below(100) as u32,
                    &payload,
                ),
            ),
            _ => (
                "compressed flag without encoding",
                frame(1, payload.len() as u32, &payload),
            ),
        };
        tally.record(kind, raw_call(&channel, RPCS[rng.below(6)], body).await);

        // 3. Well-formed protobuf with adversarial content, for the run's push.
        match config.algorithm.name() {
            "ppo" => {
                let mut m = rollout.clone();
                m.version = 1;
                let kind = match rng.below(6) {
                    0 => {
                        let fields = [
                            &mut m.observations,
                            &mut m.actions,
                            &mut m.rewards,
                            &mut m.log_probs,
                            &mut m.values,
                            &mut m.bootstrap_values,
                            &mut m.truncation_values,
                        ];
                        let k = rng.below(fields.len());
                        break_floats(fields.into_iter().nth(k).unwrap(), &mut rng, true);
                        "rollout: NaN/Inf/huge value or wrong length"
                    }
                    1 => {
                        let i = rng.below(m.actions.len() / 4) * 4;
                        let bad = [2.0f32, -1.0, 0.5, 1e9][rng.below(4)];
                        let mut a = m.actions.to_vec();
                        a[i..i + 4].copy_from_slice(&bad.to_le_bytes());
                        m.actions = a.into();
                        "rollout: action outside the action space"
                    }
                    2 => {
                        if rng.below(2) == 0 {
                            m.n_steps = [0, 1, u32::MAX][rng.below(3)];
                        } else {
                            m.num_envs = m.num_envs + 1 + rng.below(1000) as u32;
                        }
                        "rollout: wrong shape"
                    }
                    3 => {
                        let mut t = m.terminated.to_vec();
                        let i = rng.below(t.len());
                        t[i] = 2 + rng.below(250) as u8;
                        m.terminated = t.into();
                        "rollout: flag not 0/1"
                    }
                    4 => {
                        m.episode_returns.push(f32::NAN);
                        m.episode_lengths.push(1);
                        "rollout: episode statistics"
                    }
                    _ => {
                        probe.apply(
                            common(&mut rng),
                            &mut m.actor_id,
                            &mut m.model_fingerprint,
                            &mut m.version,
                            &mut rng,
                        );
                        "unknown actor, other model or future version"
                    }
                };
                tally.record(kind, code(client.push_rollout(m).await));
                tally.record(
                    "another algorithm's rpc",
                    code(client.push_gradient(gradient.clone()).await),
                );
            }
            "a3c" => {
                let mut m = gradient.clone();
                let kind = match rng.below(4) {
                    0 => {
                        break_floats(&mut m.data, &mut rng, false);
                        "gradient: NaN/Inf or wrong length"
                    }
                    1 => {
                        m.env_steps = m.env_steps + 1 + rng.below(1000) as u32;
                        "gradient: wrong env steps"
                    }
                    2 => {
                        m.policy_loss = [f32::NAN, f32::INFINITY][rng.below(2)];
                        "gradient: non-finite statistics"
                    }
                    _ => {
                        probe.apply(
                            common(&mut rng),
                            &mut m.actor_id,
                            &mut m.model_fingerprint,
                            &mut m.version,
                            &mut rng,
                        );
                        "unknown actor, other model or future version"
                    }
                };
                tally.record(kind, code(client.push_gradient(m).await));
                tally.record(
                    "another algorithm's rpc",
                    code(client.push_transitions(transitions.clone()).await),
                );
            }
            _ => {
                let mut m = transitions.clone();
                m.version = 1;
                let kind = match rng.below(5) {
                    0 => {
                        let fields = [
                            &mut m.observations,
                            &mut m.rewards,
                            &mut m.next_observations,
                            &mut m.actions,
                            &mut m.discounts,
                        ];
                        let k = rng.below(fields.len());
                        break_floats(fields.into_iter().nth(k).unwrap(), &mut rng, true);
                        "transitions: NaN/Inf/huge value or wrong length"
                    }
                    1 => {
                        let mut a = m.actions.to_vec();
                        let i = rng.below(a.len() / 4) * 4;
                        let bad = [2.0f32, -1.0, 0.5][rng.below(3)];
                        a[i..i + 4].copy_from_slice(&bad.to_le_bytes());
                        m.actions = a.into();
                        "transitions: action outside the action space"
                    }
                    2 => {
                        let mut d = m.discounts.to_vec();
                        let i = rng.below(d.len() / 4) * 4;
                        d[i..i + 4].copy_from_slice(&[1.5f32, -0.1][rng.below(2)].to_le_bytes());
                        m.discounts = d.into();
                        "transitions: discount outside [0, 1]"
                    }
                    3 => {
                        m.episode_returns.push(1.0);
                        "transitions: episode statistics"
                    }
                    _ => {
                        probe.apply(
                            common(&mut rng),
                            &mut m.actor_id,
                            &mut m.model_fingerprint,
                            &mut m.version,
                            &mut rng,
                        );
                        "unknown actor, other model or future version"
                    }
                };
                tally.record(kind, code(client.push_transitions(m).await));
                tally.record(
                    "another algorithm's rpc",
                    code(client.push_rollout(rollout.clone()).await),
                );
            }
        }

        // 4. Protocol and identity: another protocol version; parameters for an unknown
        //    actor; a subscription for another model.
        let c = match round % 3 {
            0 => code(
                client
                    .register(proto::RegisterRequest {
                        protocol_version: 3 + rng.below(1000) as i32,
                        ..Default::default()
                    })
                    .await,
            ),
            1 => code(
                client
                    .get_parameters(proto::GetParametersRequest {
                        actor_id: 100_000 + rng.below(1000) as u32,
                        model_fingerprint: probe.fingerprint.clone(),
                        have_version: 0,
                    })
                    .await,
            ),
            _ => code(
                client
                    .subscribe_parameters(proto::SubscribeRequest {
                        actor_id: probe.actor_id,
                        model_fingerprint: "another model".into(),
                    })
                    .await,
            ),
        };
        tally.record("protocol version, unknown actor or other model", c);
    }

    // 5. Messages over the run's size limit, once per rpc.
    for path in &RPCS[..6] {
        let big = vec![0u8; max_request + 1];
        tally.record(
            "oversized message",
            raw_call(&channel, path, frame(0, big.len() as u32, &big)).await,
        );
    }

    // The learner is alive, healthy, finite, and still takes valid requests and trains.
    assert!(!learner.handle.is_finished(), "the learner stopped");
    let serving = shoal_actor::health::check(
        &shoal_actor::endpoint(&url).unwrap(),
        Some(shoal_tests::test_token()),
        shoal_actor::health::PARAMETER_SERVER,
        std::time::Duration::from_secs(3),
    )
    .await;
    assert_eq!(serving, shoal_actor::health::Health::Serving);
    let params = client
        .get_parameters(proto::GetParametersRequest {
            actor_id: probe.actor_id,
            model_fingerprint: probe.fingerprint.clone(),
            have_version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let values = s
        .model
        .layout()
        .decode(&params.parameters.unwrap().data)
        .unwrap();
    assert!(values.iter().all(|x| x.is_finite()));
    assert!(
        params.latest_version > 1,
        "the bystanders' training went on"
    );
    // A full queue is backpressure, not a refusal: retry as actors do.
    let mut valid = Code::ResourceExhausted;
    for _ in 0..500 {
        let v = params.latest_version;
        valid = match config.algorithm.name() {
            "ppo" => code(
                client
                    .push_rollout(proto::Rollout {
                        version: v,
                        ..rollout.clone()
                    })
                    .await,
            ),
            "a3c" => code(
                client
                    .push_gradient(proto::Gradient {
                        version: v,
                        ..gradient.clone()
                    })
                    .await,
            ),
            _ => code(
                client
                    .push_transitions(proto::TransitionBatch {
                        version: v,
                        ..transitions.clone()
                    })
                    .await,
            ),
        };
        if valid != Code::ResourceExhausted {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(valid, Code::Ok);
    learner.shutdown.cancel();
    let summary = learner.handle.await.unwrap().unwrap();
    for a in &mut actors {
        let _ = a.start_kill();
    }
    // The status line counted the refusals by kind.
    let rows = std::fs::read_to_string(summary.run_dir.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(rows.lines().last().unwrap()).unwrap();
    for key in [
        "refused_undecodable",
        "refused_oversized",
        "refused_unknown_actor",
        "refused_fingerprint",
        "refused_future_version",
        "refused_protocol",
        "refused_wrong_algorithm",
    ] {
        assert!(last[key].as_u64().unwrap() > 0, "{key}: {last}");
    }
    assert!(
        last["refused"].as_u64().unwrap() > tally.total() / 2,
        "{last}"
    );
    println!(
        "{}: {} malformed or adversarial messages, every one refused; by kind {:?}; by status {:?}",
        config.algorithm.name(),
        tally.total(),
        tally.by_kind,
        tally.by_code
    );
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_bad_messages_are_refused_and_the_learners_stay_healthy() {
    let mut total = 0;
    for file in [
        "configs/cartpole-ppo.toml",
        "configs/cartpole-a3c.toml",
        "configs/cartpole-dqn.toml",
    ] {
        total += fuzz(file, 1000).await.total();
    }
    println!("in all: {total} messages");
    assert!(total >= 15_000, "{total}");
}
