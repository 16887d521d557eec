//! The parameter server's contract, exercised with a real tonic client against a real learner:
//! registration, versioned parameters, and refusals with specific statuses.

use shoal_actor::policy::Policy;
use shoal_actor::worker::Worker;
use shoal_common::codec::encode_f32;
use shoal_common::config::{DeviceChoice, RunConfig};
use shoal_common::model::ActionHead;
use shoal_common::normalize::{NormStats, Normalizer};
use shoal_common::proto;
use shoal_tests::{TestLearner, register_probe, temp_dir};
use tonic::Code;

fn config() -> RunConfig {
    RunConfig {
        total_steps: 1_000_000,
        learner: shoal_common::config::LearnerConfig {
            device: DeviceChoice::Flex,
            ..Default::default()
        },
        ..RunConfig::default()
    }
}

async fn client(learner: &TestLearner) -> shoal_actor::Client {
    shoal_tests::test_client(&learner.url()).await
}

#[tokio::test]
async fn registration_and_versioned_parameters() {
    let learner = TestLearner::start(config(), temp_dir("proto-params")).await;
    let mut c = client(&learner).await;
    let a = register_probe(&mut c).await;
    let b = register_probe(&mut c).await;
    assert_ne!(a.actor_id, b.actor_id);
    assert_ne!(a.seed, b.seed, "each actor derives its own seed");
    assert_eq!(a.env, shoal_common::env::EnvSpec::new("CartPole-v1"));
    assert_eq!((a.num_envs, a.n_steps), (4, 32));

    let full = c
        .get_parameters(proto::GetParametersRequest {
            actor_id: a.actor_id,
            model_fingerprint: a.model_fingerprint.clone(),
            have_version: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(full.latest_version, 1);
    let params = full.parameters.unwrap();
    let values = a.model.layout().decode(&params.data).unwrap();
    assert_eq!(values.len(), a.model.layout().num_floats());

    let same = c
        .get_parameters(proto::GetParametersRequest {
            actor_id: a.actor_id,
            model_fingerprint: a.model_fingerprint.clone(),
            have_version: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(same.latest_version, 1);
    assert!(same.parameters.is_none(), "already up to date: no payload");

    // The subscription starts with the current version.
    let mut stream = c
        .subscribe_parameters(proto::SubscribeRequest {
            actor_id: a.actor_id,
            model_fingerprint: a.model_fingerprint.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    match first.update {
        Some(proto::parameter_update::Update::Parameters(p)) => assert_eq!(p.version, 1),
        other => panic!("unexpected {other:?}"),
    }
    learner.shutdown.cancel();
    learner.handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn mismatches_and_bad_input_are_refused_with_specific_statuses() {
    let learner = TestLearner::start(config(), temp_dir("proto-refusals")).await;
    let mut c = client(&learner).await;
    let a = register_probe(&mut c).await;

    // A mismatched model fingerprint.
    let err = c
        .get_parameters(proto::GetParametersRequest {
            actor_id: a.actor_id,
            model_fingerprint: "deadbeefdeadbeef".into(),
            have_version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("model fingerprint mismatch"),
        "{}",
        err.message()
    );

    // An unknown actor id.
    let err = c
        .subscribe_parameters(proto::SubscribeRequest {
            actor_id: 999,
            model_fingerprint: a.model_fingerprint.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Another protocol version.
    let err = c
        .register(proto::RegisterRequest {
            protocol_version: 0,
            name: "old".into(),
            previous_actor_id: None,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // A rollout with a NaN reward, and one from a future version.
    let tn = a.num_envs * a.n_steps;
    let mut rollout = proto::Rollout {
        actor_id: a.actor_id,
        model_fingerprint: a.model_fingerprint.clone(),
        version: 1,
        n_steps: a.n_steps as u32,
        num_envs: a.num_envs as u32,
        observations: encode_f32(&vec![0.0; tn * 4]),
        actions: encode_f32(&vec![0.0; tn]),
        rewards: encode_f32(&vec![f32::NAN; tn]),
        terminated: vec![0u8; tn].into(),
        truncated: vec![0u8; tn].into(),
        log_probs: encode_f32(&vec![-0.69; tn]),
        values: encode_f32(&vec![0.0; tn]),
        bootstrap_values: encode_f32(&vec![0.0; a.num_envs]),
        truncation_values: encode_f32(&vec![0.0; tn]),
        episode_returns: vec![],
        episode_lengths: vec![],
        moments: Some(NormStats::new(4).to_proto()),
        actor_stats: None,
        ..Default::default()
    };
    let err = c.push_rollout(rollout.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("rewards"), "{}", err.message());
    rollout.rewards = encode_f32(&vec![1.0; tn]);
    // Statistics that would poison every actor's normalisation.
    let mut poisoned = NormStats::new(4).to_proto();
    poisoned.returns.as_mut().unwrap().count = f64::INFINITY;
    let err = c
        .push_rollout(proto::Rollout {
            moments: Some(poisoned),
            ..rollout.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("normalisation"), "{}", err.message());
    rollout.version = 7;
    let err = c.push_rollout(rollout.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // The same rollout, fixed, is accepted.
    rollout.version = 1;
    let ack = c.push_rollout(rollout).await.unwrap().into_inner();
    assert!(ack.accepted);
    assert_eq!(ack.current_version, 1);

    learner.shutdown.cancel();
    learner.handle.await.unwrap().unwrap();
}

/// Two actors collect Pendulum rollouts with a Gaussian policy and normalisation on; the next
/// version ships the merge of exactly the statistics they reported, and both actors read it.
#[tokio::test]
async fn statistics_from_two_actors_are_merged_into_the_next_version() {
    let mut config = config();
    config.env_id = "Pendulum-v1".into();
    config.num_envs = 2;
    config.n_steps = 50;
    config.normalize.observations = true;
    config.normalize.rewards = true;
    let learner = TestLearner::start(config.clone(), temp_dir("proto-norm")).await;
    let mut c = client(&learner).await;
    let mut merged = NormStats::new(3);
    let mut subscription = None;
    for _ in 0..2 {
        let s = register_probe(&mut c).await;
        assert_eq!(s.model.action, ActionHead::Gaussian(1));
        assert_eq!(s.normalize, config.normalize_settings());
        let p = c
            .get_parameters(proto::GetParametersRequest {
                actor_id: s.actor_id,
                model_fingerprint: s.model_fingerprint.clone(),
                have_version: 0,
            })
            .await
            .unwrap()
            .into_inner()
            .parameters
            .unwrap();
        let stats = NormStats::from_proto(p.normalization.as_ref(), 3).unwrap();
        assert_eq!(stats, NormStats::new(3), "version 1 ships empty statistics");
        let params = s.model.layout().decode(&p.data).unwrap();
        let policy = Policy::new(
            &s.model,
            &params,
            p.version,
            Normalizer::new(s.normalize, &stats),
        );
        let rollout = Worker::new(&s).unwrap().collect(&policy).unwrap();
        merged.merge(&rollout.moments);
        if subscription.is_none() {
            subscription = Some(
                c.subscribe_parameters(proto::SubscribeRequest {
                    actor_id: s.actor_id,
                    model_fingerprint: s.model_fingerprint.clone(),
                })
                .await
                .unwrap()
                .into_inner(),
            );
        }
        let ack = c
            .push_rollout(rollout.to_proto(&s.model_fingerprint))
            .await
            .unwrap()
            .into_inner();
        assert!(ack.accepted);
    }
    // Version 2 follows the update on both rollouts.
    let mut stream = subscription.unwrap();
    let shipped = loop {
        match stream.message().await.unwrap().unwrap().update {
            Some(proto::parameter_update::Update::Parameters(p)) if p.version == 2 => {
                break NormStats::from_proto(p.normalization.as_ref(), 3).unwrap();
            }
            Some(proto::parameter_update::Update::Parameters(_)) => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(shipped.observations.count, 200.0);
    assert_eq!(shipped.returns.count, 200.0);
    for (got, want) in [
        (&shipped.observations.mean, &merged.observations.mean),
        (&shipped.observations.m2, &merged.observations.m2),
        (&shipped.returns.m2, &merged.returns.m2),
    ] {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-9 * (1.0 + w.abs()), "{g} vs {w}");
        }
    }
    learner.shutdown.cancel();
    let summary = learner.handle.await.unwrap().unwrap();
    // The final checkpoint keeps the statistics.
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(summary.run_dir.join("checkpoints/final/checkpoint.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(meta["normalization"]["observations"]["count"], 200.0);
}
