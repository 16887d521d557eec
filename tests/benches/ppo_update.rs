//! Benchmark: where one synchronous PPO cycle's time goes, measured side by side in one run.
//! Learner (flex): burn's bare forward/backward, plus global-norm clipping, plus the Adam step,
//! and the whole `PpoTrainer::update` (20 epochs × one 256-sample minibatch, the CartPole
//! config) on the host engine (the default) and on the burn engine.
//! Actor: loading a new parameter version, one batched inference, one rollout.
//!
//! `cargo bench -p shoal-tests --bench ppo_update`

use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::Device;
use shoal_actor::policy::Policy;
use shoal_common::normalize::Normalizer;
use shoal_compute::Engine;
use shoal_compute::burn_engine::clip_global_norm;
use shoal_learner::algo::ppo::PpoTrainer;
use shoal_tests::{cartpole_config, collect_batch};

fn per_iter(iters: u32, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_secs_f64() / iters as f64 * 1e3
}

fn main() {
    let config = cartpole_config();
    let spec = shoal_learner::model_spec(&config).unwrap();
    let initial = spec.init_params(1);
    let batch = collect_batch(&config, &spec, &initial, 3, config.ppo.rollouts_per_update);
    let b = batch.len();

    let device = Device::flex().autodiff();
    let mut model = spec.build(&initial, &device);
    let obs = batch.obs.clone().into_tensor(b, &device);
    let mut optim = AdamConfig::new().init();

    let fwd_bwd = per_iter(200, || {
        let loss = model.logits(obs.clone()).mean() + model.values(obs.clone()).mean();
        let _ = GradientsParams::from_grads(loss.backward(), &model);
    });
    let with_clip = per_iter(200, || {
        let loss = model.logits(obs.clone()).mean() + model.values(obs.clone()).mean();
        let mut g = GradientsParams::from_grads(loss.backward(), &model);
        let _ = clip_global_norm(&model, &mut g, 0.5);
    });
    let with_adam = per_iter(200, || {
        let loss = model.logits(obs.clone()).mean() + model.values(obs.clone()).mean();
        let mut g = GradientsParams::from_grads(loss.backward(), &model);
        let _ = clip_global_norm(&model, &mut g, 0.5);
        model = optim.step(1e-4, model.clone(), g);
    });
    let burn = Engine::Burn {
        device: Device::flex(),
    };
    let mut burn_trainer = PpoTrainer::new(&config, spec.clone(), &initial, &burn, 1);
    let burn_update = per_iter(20, || {
        let _ = burn_trainer.update(&batch, 0);
    });
    let host = Engine::Host { threads: 1 };
    let mut trainer = PpoTrainer::new(&config, spec.clone(), &initial, &host, 1);
    let update = per_iter(20, || {
        let _ = trainer.update(&batch, 0);
    });
    let params = trainer.params();
    let load = per_iter(200, || {
        let _ = Policy::new(&spec, &params, 2, Normalizer::off(spec.obs_dim));
    });
    let policy = Policy::new(&spec, &params, 2, Normalizer::off(spec.obs_dim));
    let mut rng = shoal_common::rng::Rng::new(1);
    let all_obs = batch.obs.to_f32();
    let obs4 = &all_obs[..4 * spec.obs_dim];
    let act = per_iter(2000, || {
        let _ = policy.act(obs4, &mut rng);
    });
    let mut worker = shoal_tests::worker_for(&config, &spec, 5);
    let rollout = per_iter(50, || {
        worker.collect(&policy).unwrap();
    });
    let steps = (config.ppo.update_epochs * config.ppo.num_minibatches) as f64;
    println!(
        "PPO update cost on flex, batch {b}, {} params, {steps} minibatch steps per update",
        spec.layout().num_floats()
    );
    println!("  forward+backward (both nets)         {fwd_bwd:8.3} ms/step");
    println!(
        "  + global-norm clipping               {with_clip:8.3} ms/step  (+{:.3})",
        with_clip - fwd_bwd
    );
    println!(
        "  + Adam step                          {with_adam:8.3} ms/step  (+{:.3})",
        with_adam - with_clip
    );
    println!(
        "  full PpoTrainer::update, burn        {burn_update:8.3} ms/update = {:.3} ms/step (PPO loss, tensors, stats)",
        burn_update / steps
    );
    println!(
        "  full PpoTrainer::update, host path   {update:8.3} ms/update = {:.3} ms/step ({} threads; {:.1}x faster)",
        update / steps,
        config.learner.compute_threads,
        burn_update / update
    );
    println!(
        "actor (flex): load a version {load:.3} ms, act on {} observations {:.1} us, one rollout ({}x{} steps) {rollout:.3} ms",
        config.num_envs,
        act * 1e3,
        config.n_steps,
        config.num_envs
    );
}
