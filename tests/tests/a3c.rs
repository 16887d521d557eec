//! A3C: the gradient path from an actor to the learner's parameters, staleness refusal against a
//! real learner, and learner + 4 actor processes solving CartPole.

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use shoal_actor::algo::a3c::{GradientComputer, rollout_returns};
use shoal_actor::policy::Policy;
use shoal_common::config::{AlgorithmKind, DeviceChoice, RunConfig};
use shoal_common::gradient::GradientPush;
use shoal_common::model::action_rows;
use shoal_common::normalize::Normalizer;
use shoal_common::proto;
use shoal_common::settings::A3cLoss;
use shoal_compute::Engine;
use shoal_learner::algo::a3c::{A3cTrainer, optimizer};
use shoal_tests::{TestLearner, register_probe, repo_root, spawn_actor, temp_dir, worker_for};
use tonic::Code;

fn a3c_config() -> RunConfig {
    RunConfig::load(&repo_root().join("configs/cartpole-a3c.toml")).unwrap()
}

/// A gradient pushed by an actor (computed by its `GradientComputer`, sent as bytes, validated
/// at the learner's boundary) and applied by the learner's flat-parameter trainer gives the same
/// gradient and the same parameters as burn computing the loss and stepping the optimizer on
/// the network in one process.
#[test]
fn pushed_gradient_applied_by_the_learner_equals_burn_in_process() {
    let mut config = a3c_config();
    config.a3c.max_grad_norm = 1e9; // clipping is tested on its own
    config.a3c.ent_coef = 0.01; // include every term of the loss
    let spec = shoal_learner::model_spec(&config).unwrap();
    let params = spec.init_params(3);
    let policy = Policy::new(&spec, &params, 1, Normalizer::off(spec.obs_dim));
    let rollout = worker_for(&config, &spec, 8).collect(&policy).unwrap();
    let loss = A3cLoss::from_config(&config.a3c);

    // The actor's side, through the wire form.
    let mut computers = [
        Engine::Host { threads: 1 },
        Engine::Burn {
            device: Device::flex(),
        },
    ]
    .map(|engine| GradientComputer::new(&engine, &spec, loss));
    let g = computers[0].compute(1, &params, &rollout);
    let on_burn = computers[1].compute(1, &params, &rollout);
    for (h, b) in g.grad.iter().zip(&on_burn.grad) {
        assert!((h - b).abs() <= 1e-6, "host {h} vs burn {b}");
    }
    assert!((g.policy_loss - on_burn.policy_loss).abs() <= 1e-5);
    let push = GradientPush {
        actor_id: 1,
        version: 1,
        grad: g.grad,
        env_steps: rollout.env_steps() as u32,
        episode_returns: rollout.episode_returns.clone(),
        episode_lengths: rollout.episode_lengths.clone(),
        policy_loss: g.policy_loss,
        value_loss: g.value_loss,
        entropy: g.entropy,
    };
    let received = GradientPush::from_proto(
        &push.to_proto("fp"),
        spec.layout().num_floats(),
        rollout.env_steps() as u32,
    )
    .unwrap();
    let mut trainer = A3cTrainer::new(&config.a3c, &params);
    trainer.apply(received.grad.clone());
    let applied = trainer.params();

    // In process: the same loss written out on the network, burn's gradients per parameter and
    // burn's optimizer on the network module.
    let device = Device::flex().autodiff();
    let model = spec.build(&params, &device);
    let b = rollout.log_probs.len();
    let obs = rollout.obs.clone().into_tensor(b, &device);
    let actions = Tensor::<2>::from_data(
        TensorData::new(
            action_rows(spec.action, &rollout.actions),
            [b, spec.action.outputs()],
        ),
        &device,
    );
    let returns = Tensor::<1>::from_data(
        TensorData::new(rollout_returns(&rollout, loss.gamma), [b]),
        &device,
    );
    let values = model.values(obs.clone());
    let eval = model.evaluate(obs, actions);
    let policy_loss = (eval.log_probs * (returns.clone() - values.clone().detach()))
        .mean()
        .neg();
    let value_loss = (returns - values).square().mean();
    let total =
        policy_loss + value_loss.mul_scalar(loss.vf_coef) - eval.entropy.mul_scalar(loss.ent_coef);
    let grads = GradientsParams::from_grads(total.backward(), &model);
    // The per-parameter gradients, flattened in layout order, equal what the learner received.
    let reference = shoal_compute::burn_engine::flat_grads(&model, &grads);
    assert_eq!(reference.len(), received.grad.len());
    for (i, (a, r)) in received.grad.iter().zip(&reference).enumerate() {
        assert!(
            (a - r).abs() <= 1e-6,
            "gradient {i}: pushed {a} vs in-process {r}"
        );
    }
    let mut opt = optimizer(&config.a3c);
    let stepped = opt.step(config.a3c.learning_rate, model, grads).to_flat();
    for (i, (a, r)) in applied.iter().zip(&stepped).enumerate() {
        assert!(
            (a - r).abs() <= 1e-6,
            "parameter {i}: learner {a} vs in-process {r}"
        );
    }
    assert_ne!(applied, params, "the step changed the parameters");
}

/// Against a real learner with `max_staleness = 0`: a gradient on the current version is
/// applied (and its ack carries nothing new), one on an older version is refused and counted,
/// its ack carrying the newer parameters; rollouts are refused in an A3C run.
#[tokio::test]
async fn stale_gradients_are_refused_and_counted() {
    let mut config = a3c_config();
    config.a3c.max_staleness = 0;
    config.learner.device = DeviceChoice::Flex;
    let learner = TestLearner::start(config.clone(), temp_dir("a3c-stale")).await;
    let mut c = shoal_tests::test_client(&learner.url()).await;
    let s = register_probe(&mut c).await;
    assert_eq!(s.algorithm, AlgorithmKind::A3c);
    let n = s.model.layout().num_floats();
    let grad = |version: u64| proto::Gradient {
        actor_id: s.actor_id,
        model_fingerprint: s.model_fingerprint.clone(),
        version,
        data: shoal_common::codec::encode_f32(&vec![0.01; n]),
        env_steps: (s.num_envs * s.n_steps) as u32,
        ..Default::default()
    };
    let mut versions = c
        .subscribe_parameters(proto::SubscribeRequest {
            actor_id: s.actor_id,
            model_fingerprint: s.model_fingerprint.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let ack = c.push_gradient(grad(1)).await.unwrap().into_inner();
    assert!(ack.accepted && ack.parameters.is_none(), "{ack:?}");
    // Wait for version 2 (the gradient applied) on the stream.
    loop {
        match versions.message().await.unwrap().unwrap().update {
            Some(proto::parameter_update::Update::Parameters(p)) if p.version >= 2 => break,
            _ => continue,
        }
    }
    let ack = c.push_gradient(grad(1)).await.unwrap().into_inner();
    assert!(!ack.accepted, "{ack:?}");
    assert!(ack.reason.contains("stale"), "{}", ack.reason);
    assert_eq!(ack.parameters.unwrap().version, 2);
    // Malformed: NaN, and a rollout in an A3C run.
    let mut bad = grad(2);
    bad.data = shoal_common::codec::encode_f32(&vec![f32::NAN; n]);
    assert_eq!(
        c.push_gradient(bad).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let err = c.push_rollout(proto::Rollout::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    learner.shutdown.cancel();
    let summary = learner.handle.await.unwrap().unwrap();
    assert_eq!((summary.gradients_applied, summary.gradients_stale), (1, 1));
}

/// Issue 4's bar: learner + 4 actor processes reach a mean return of 475 (last 100 episodes)
/// within 1M env steps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_actor_processes_solve_cartpole_with_a3c_within_1m_steps() {
    let config = a3c_config();
    assert_eq!(config.total_steps, 1_000_000);
    let learner = TestLearner::start(config, temp_dir("a3c-cartpole")).await;
    let mut actors: Vec<_> = (0..4)
        .map(|i| spawn_actor(&learner.url(), &format!("a3c-{i}"), false))
        .collect();
    let summary = learner.handle.await.unwrap().unwrap();
    assert!(summary.solved, "{summary:?}");
    assert!(summary.gradients_applied > 0);
    for actor in &mut actors {
        assert!(actor.wait().await.unwrap().success());
    }
}
