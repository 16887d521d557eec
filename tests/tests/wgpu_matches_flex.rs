//! One PPO update on the wgpu device (Mesa's software Vulkan driver on machines without a GPU)
//! equals the same update on the host engine, within float tolerance: for the MLP and for a
//! convolutional encoder on image observations (burn's autodiff on wgpu against the host's
//! kernels).
#![cfg(feature = "wgpu")]

use shoal_common::config::{DeviceChoice, RunConfig};
use shoal_common::model::ModelSpec;
use shoal_compute::Engine;
use shoal_learner::algo::ppo::PpoTrainer;
use shoal_learner::device;
use shoal_tests::collect_batch;

#[test]
fn one_ppo_update_on_wgpu_matches_flex() {
    assert_update_matches(RunConfig::default());
}

/// The small CNN shared by both heads, on Catch's `u8` pixels: convolutions forward and
/// backward, and bytes cast to floats on the device.
#[test]
fn one_conv_update_on_wgpu_matches_flex() {
    let mut config = RunConfig {
        env_id: "Catch-v0".into(),
        ..RunConfig::default()
    };
    config.model.encoder = shoal_common::model::EncoderKind::SmallCnn;
    assert_update_matches(config);
}

fn assert_update_matches(mut config: RunConfig) {
    config.ppo.update_epochs = 2;
    config.ppo.num_minibatches = 2;
    config.ppo.learning_rate = 1e-3;
    let spec: ModelSpec = shoal_learner::model_spec(&config).unwrap();
    let initial = spec.init_params(42);

    // Real experience: two rollouts from a worker running the initial policy.
    let batch = collect_batch(&config, &spec, &initial, 7, 2);

    let wgpu = match device::select(DeviceChoice::Wgpu) {
        Ok(d) => d,
        Err(e) if std::env::var_os("SHOAL_SKIP_WGPU").is_some() => {
            eprintln!("skipping: {e} (SHOAL_SKIP_WGPU is set)");
            return;
        }
        Err(e) => {
            panic!("{e}\n(set SHOAL_SKIP_WGPU=1 to skip this test on a machine without Vulkan)")
        }
    };
    eprintln!("wgpu device: {}", wgpu.description);
    let host = Engine::Host { threads: 1 };
    let burn = Engine::Burn {
        device: wgpu.device,
    };
    let mut on_flex = PpoTrainer::new(&config, spec.clone(), &initial, &host, 3);
    let mut on_wgpu = PpoTrainer::new(&config, spec.clone(), &initial, &burn, 3);
    let stats_flex = on_flex.update(&batch, 0);
    let stats_wgpu = on_wgpu.update(&batch, 0);

    let after_flex = on_flex.params();
    let after_wgpu = on_wgpu.params();
    let moved = after_flex
        .iter()
        .zip(&initial)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(moved > 1e-4, "the update changed the parameters ({moved})");
    let diff = after_flex
        .iter()
        .zip(&after_wgpu)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("max |flex - wgpu| = {diff:e} (largest parameter change {moved:e})");
    assert!(diff < 1e-4, "parameters differ by {diff}");
    for (name, a, b) in [
        (
            "policy_loss",
            stats_flex.policy_loss,
            stats_wgpu.policy_loss,
        ),
        ("value_loss", stats_flex.value_loss, stats_wgpu.value_loss),
        ("entropy", stats_flex.entropy, stats_wgpu.entropy),
        ("approx_kl", stats_flex.approx_kl, stats_wgpu.approx_kl),
    ] {
        assert!(
            (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
            "{name}: flex {a} vs wgpu {b}"
        );
    }
}
