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
