//! Benchmark: gradient pushes per second a learner absorbs, and push-and-pull round-trip
//! latency on loopback, for the CartPole A3C network (4-64-64-2 policy and 4-64-64-1 value
//! network, 9,155 parameters) with 1, 2 and 4 concurrent pushers.
//!
//! Each pusher has its own connection (the actor's transport settings) and pushes a valid gradient computed on the version it
//! holds, adopting the newer parameters each ack carries (the real actor's round trip, minus the
//! environment and the backward pass). `max_staleness` is unbounded here so that every accepted
//! gradient is applied. One fresh learner per pusher count; `SHOAL_BENCH_SECS` (default 3) per run.
//!
//! `cargo bench -p shoal-tests --bench a3c_push`

use std::time::{Duration, Instant};

use shoal_common::codec::encode_f32;
use shoal_common::config::{DeviceChoice, RunConfig};
use shoal_common::proto;
use shoal_tests::{TestLearner, repo_root, temp_dir};
use tonic::Code;

/// The learner runs in this process: with the allocator its binaries use (see learner/src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Default)]
struct PusherResult {
    latencies_us: Vec<f64>,
    accepted: u64,
    queue_full: u64,
}

async fn pusher(url: String, until: Instant) -> PusherResult {
    let mut c = shoal_tests::test_client(&url).await;
    let s = shoal_tests::register_probe(&mut c).await;
    let n = s.model.layout().num_floats();
    let data = encode_f32(&vec![1e-4; n]);
    let mut version = 1;
    let mut out = PusherResult::default();
    while Instant::now() < until {
        let msg = proto::Gradient {
            actor_id: s.actor_id,
            model_fingerprint: s.model_fingerprint.clone(),
            version,
            data: data.clone(),
            env_steps: (s.num_envs * s.n_steps) as u32,
            ..Default::default()
        };
        let start = Instant::now();
        match c.push_gradient(msg).await {
            Ok(ack) => {
                out.latencies_us.push(start.elapsed().as_secs_f64() * 1e6);
                let ack = ack.into_inner();
                out.accepted += ack.accepted as u64;
                if let Some(p) = ack.parameters {
                    version = p.version;
                }
            }
            Err(status) if status.code() == Code::ResourceExhausted => out.queue_full += 1,
            Err(status) => panic!("push failed: {status}"),
        }
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Microseconds per call of `f`, over `n` calls.
fn per_call(n: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_secs_f64() * 1e6 / n as f64
}

/// Where a gradient's time goes inside the learner (no networking).
fn breakdown(config: &RunConfig) {
    use shoal_common::gradient::GradientPush;
    use shoal_learner::algo::a3c::A3cTrainer;
    let spec = shoal_learner::model_spec(config).unwrap();
    let n = spec.layout().num_floats();
    let params = spec.init_params(1);
    let mut trainer = A3cTrainer::new(&config.a3c, &params);
    let grad = vec![1e-4f32; n];
    let msg = proto::Gradient {
        data: encode_f32(&grad),
        env_steps: (config.num_envs * config.n_steps) as u32,
        ..Default::default()
    };
    let decode = per_call(2000, || {
        let _ = GradientPush::from_proto(&msg, n, msg.env_steps).unwrap();
    });
    let apply = per_call(2000, || {
        trainer.apply(grad.clone());
    });
    let burn_apply = burn_apply_us(config, &params, &grad);
    let read = per_call(2000, || {
        let _ = trainer.params();
    });
    let encode = per_call(2000, || {
        let _ = encode_f32(&params);
    });
    println!(
        "learner per gradient (us): decode+validate {decode:.1}, apply (clip + optimizer step) \
         {apply:.1} (burn's optimizer on one flat tensor, as before issue 19: {burn_apply:.1}), \
         read back params {read:.1}, encode a version {encode:.1}"
    );
}

/// Microseconds per gradient of what A3C's apply was before issue 19: global-norm clipping, the
/// gradient into a tensor and burn's optimizer step on the parameters as one flat tensor.
fn burn_apply_us(config: &RunConfig, params: &[f32], grad: &[f32]) -> f64 {
    use burn::module::{Module, Param, ParamId};
    use burn::optim::GradientsParams;
    use burn::tensor::{Device, Tensor, TensorData};

    #[derive(Module, Debug)]
    struct Flat {
        values: Param<Tensor<1>>,
    }
    let n = params.len();
    let device = Device::flex().autodiff();
    let mut values = Param::from_data(TensorData::new(params.to_vec(), [n]), &device);
    values.id = ParamId::from(1);
    let mut flat = Some(Flat { values });
    let mut optimizer = shoal_learner::algo::a3c::optimizer(&config.a3c);
    per_call(2000, || {
        let mut g = grad.to_vec();
        let _ = shoal_compute::kernels::clip::clip_global_norm(&mut g, config.a3c.max_grad_norm);
        let mut grads = GradientsParams::new();
        let module = flat.take().unwrap();
        grads.register(
            module.values.id,
            Tensor::<1>::from_data(TensorData::new(g, [n]), &Device::flex()),
        );
        flat = Some(optimizer.step(config.a3c.learning_rate, module, grads));
    })
}

fn main() {
    let secs: f64 = std::env::var("SHOAL_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    breakdown(&RunConfig::load(&repo_root().join("configs/cartpole-a3c.toml")).unwrap());
    println!("A3C gradient pushes on loopback, 9,155-parameter network, flex, {secs} s per row");
    println!(
        "| pushers | pushes/s acked | gradients/s applied | versions/s | queue full | p50 RTT (us) | p99 RTT (us) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for pushers in [1, 2, 4] {
        runtime.block_on(async {
            let mut config =
                RunConfig::load(&repo_root().join("configs/cartpole-a3c.toml")).unwrap();
            config.total_steps = u64::MAX / 2;
            config.target_return = None;
            config.a3c.max_staleness = u64::MAX / 2;
            config.learner.device = DeviceChoice::Flex;
            config.learner.queue_capacity = 1024;
            let learner = TestLearner::start(config, temp_dir("a3c-bench")).await;
            let until = Instant::now() + Duration::from_secs_f64(secs);
            let tasks: Vec<_> = (0..pushers)
                .map(|_| tokio::spawn(pusher(learner.url(), until)))
                .collect();
            let mut latencies = Vec::new();
            let (mut accepted, mut queue_full) = (0, 0);
            for t in tasks {
                let r = t.await.unwrap();
                latencies.extend(r.latencies_us);
                accepted += r.accepted;
                queue_full += r.queue_full;
            }
            learner.shutdown.cancel();
            let summary = learner.handle.await.unwrap().unwrap();
            latencies.sort_by(|a, b| a.total_cmp(b));
            println!(
                "| {pushers} | {:.0} | {:.0} | {:.0} | {queue_full} | {:.0} | {:.0} |",
                accepted as f64 / secs,
                summary.gradients_applied as f64 / secs,
                summary.version as f64 / secs,
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99),
            );
        });
    }
}
