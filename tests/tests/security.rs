//! The shared token on every rpc, and TLS: a real learner, real clients and actor processes.

use std::time::Duration;

use shoal_common::config::DeviceChoice;
use shoal_common::proto::{self, parameter_server_client::ParameterServerClient};
use shoal_common::security::{BearerAuth, Token};
use shoal_learner::{LearnerOptions, TlsIdentity};
use shoal_tests::{
    LearnerProcess, TestLearner, cartpole_config, free_port, shoal_exe, spawn_actor_with, temp_dir,
    test_token,
};
use tonic::Code;
use tonic::transport::Endpoint;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// The status of each of the seven rpcs a learner serves, called through `channel` with
/// `auth` (the six of the parameter server and the health check).
async fn call_every_rpc(endpoint: &Endpoint, auth: BearerAuth) -> Vec<(&'static str, Code)> {
    let channel = endpoint.connect().await.unwrap();
    let mut c = ParameterServerClient::with_interceptor(channel.clone(), auth.clone());
    let code = |r: Result<(), tonic::Status>| r.err().map_or(Code::Ok, |s| s.code());
    let mut out = vec![
        (
            "Register",
            code(
                c.register(proto::RegisterRequest::default())
                    .await
                    .map(drop),
            ),
        ),
        (
            "GetParameters",
            code(
                c.get_parameters(proto::GetParametersRequest::default())
                    .await
                    .map(drop),
            ),
        ),
        (
            "SubscribeParameters",
            code(
                c.subscribe_parameters(proto::SubscribeRequest::default())
                    .await
                    .map(drop),
            ),
        ),
        (
            "PushRollout",
            code(c.push_rollout(proto::Rollout::default()).await.map(drop)),
        ),
        (
            "PushGradient",
            code(c.push_gradient(proto::Gradient::default()).await.map(drop)),
        ),
        (
            "PushTransitions",
            code(
                c.push_transitions(proto::TransitionBatch::default())
                    .await
                    .map(drop),
            ),
        ),
    ];
    let mut health = HealthClient::with_interceptor(channel, auth);
    out.push((
        "Health/Check",
        code(health.check(HealthCheckRequest::default()).await.map(drop)),
    ));
    out
}

/// Issue 6, acceptance 3 (first half): a missing or wrong token is refused with
/// UNAUTHENTICATED on every rpc, counted, and the right one gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_a_missing_or_wrong_token() {
    let mut config = cartpole_config();
    config.learner.device = DeviceChoice::Flex;
    let run_dir = temp_dir("auth");
    let learner = TestLearner::start(config, run_dir.clone()).await;
    let endpoint = shoal_actor::endpoint(&learner.url()).unwrap();
    let wrong = Token::new("not-the-run-token-0123456789").unwrap();
    for (who, auth) in [
        ("no token", BearerAuth::new(None)),
        ("a wrong token", BearerAuth::new(Some(wrong))),
    ] {
        for (rpc, code) in call_every_rpc(&endpoint, auth).await {
            assert_eq!(code, Code::Unauthenticated, "{rpc} with {who}");
        }
    }
    // With the token, the same calls reach the handlers (which refuse the empty messages for
    // what they are) and the health check answers.
    for (rpc, code) in call_every_rpc(&endpoint, BearerAuth::new(Some(test_token()))).await {
        assert_ne!(code, Code::Unauthenticated, "{rpc} with the token");
        if rpc == "Health/Check" {
            assert_eq!(code, Code::Ok);
        }
    }
    learner.shutdown.cancel();
    learner.handle.await.unwrap().unwrap();
    let rows = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(rows.lines().last().unwrap()).unwrap();
    assert_eq!(last["refused_unauthenticated"], 14, "{last}");
}

/// A learner process without a token refuses to start (unless told `--insecure`); one with a
/// token logs refused requests without ever writing the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_required_to_start_and_never_logged() {
    let out = std::process::Command::new(shoal_exe())
        .args(["learner", "--listen", "127.0.0.1:0"])
        .env_remove("SHOAL_TOKEN")
        .env_remove("SHOAL_TOKEN_FILE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("SHOAL_TOKEN") && stderr.contains("--insecure"),
        "{stderr}"
    );

    let dir = temp_dir("auth-log");
    let mut config = cartpole_config();
    config.learner.device = DeviceChoice::Flex;
    let config_path = shoal_tests::write_config(&dir, &config);
    let mut learner = LearnerProcess::spawn(
        free_port(),
        &[
            "--config",
            config_path.to_str().unwrap(),
            "--run-dir",
            dir.join("run").to_str().unwrap(),
        ],
    );
    shoal_tests::wait_until_serving(&learner.url, Duration::from_secs(30)).await;
    // The real token with one character added: as close as a wrong token gets.
    let near = Token::new(&format!("{}x", shoal_tests::TEST_TOKEN)).unwrap();
    let endpoint = shoal_actor::endpoint(&learner.url).unwrap();
    let mut c = ParameterServerClient::with_interceptor(
        endpoint.connect().await.unwrap(),
        BearerAuth::new(Some(near)),
    );
    let status = c
        .register(proto::RegisterRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(!status.message().contains(shoal_tests::TEST_TOKEN));
    let line = learner
        .wait_for(
            "request refused: missing or wrong token",
            Duration::from_secs(10),
            |_| true,
        )
        .await;
    assert_eq!(line["rpc"], "/shoal.v1.ParameterServer/Register", "{line}");
    learner.terminate();
    let (status, log) = learner.finish().await;
    assert!(status.success(), "{status}");
    // Everything the learner logged: the token is in none of it.
    assert!(log.len() > 3);
    for line in &log {
        assert!(
            !line.to_string().contains(shoal_tests::TEST_TOKEN),
            "{line}"
        );
    }
}

/// Issue 6, acceptance 3 (second half): with TLS, actors that trust the CA train CartPole
/// normally; a client that does not trust it, or speaks plaintext, gets nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_actors_trusting_the_ca_train_normally() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let dir = temp_dir("tls");
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();

    let mut config = cartpole_config();
    config.learner.device = DeviceChoice::Flex;
    let learner = TestLearner::start_with(LearnerOptions {
        token: Some(test_token()),
        tls: Some(TlsIdentity {
            cert: cert.pem().into_bytes(),
            key: key.serialize_pem().into_bytes(),
        }),
        ..LearnerOptions::new(config, dir.join("run"))
    })
    .await;
    let url = format!("https://localhost:{}", learner.addr.port());

    // No CA: the handshake fails. Plaintext: no answer either.
    let untrusting = shoal_actor::endpoint(&url).unwrap();
    let plain =
        shoal_actor::endpoint(&format!("http://localhost:{}", learner.addr.port())).unwrap();
    for endpoint in [untrusting, plain] {
        let health =
            shoal_actor::health::check(&endpoint, Some(test_token()), "", Duration::from_secs(3))
                .await;
        assert!(
            matches!(health, shoal_actor::health::Health::Unreachable(_)),
            "{health:?}"
        );
    }

    let ca = ca_path.to_str().unwrap();
    let mut actors: Vec<_> = (0..2)
        .map(|i| spawn_actor_with(&url, &format!("tls-{i}"), false, &["--tls-ca", ca]))
        .collect();
    let summary = tokio::time::timeout(Duration::from_secs(300), learner.handle)
        .await
        .expect("the TLS run ends")
        .unwrap()
        .unwrap();
    for a in &mut actors {
        assert!(a.wait().await.unwrap().success());
    }
    assert!(summary.solved, "{summary:?}");
    println!(
        "TLS: solved at {} env steps in {:.1} s",
        summary.env_steps, summary.wall_secs
    );
}
