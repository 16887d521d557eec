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
