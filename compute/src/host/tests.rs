//! The host engine against burn's autodiff (a reference we did not write), for every encoder
//! and both action heads: the heads of a forward pass, the gradient of every parameter from
//! seeded gradients at the heads, the same over several threads, and a whole Adam step.

use burn::tensor::Device;
use shoal_common::model::ActionHead;
use shoal_common::rng::Rng;

use super::HostModel;
use crate::burn_engine::BurnTraining;
use crate::engine::{HeadGrads, Optimizer, Rows, Training, Want};
use crate::testing::{observations, params, specs};

fn assert_close(what: &str, got: &[f32], want: &[f32], rel: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rel * scale,
            "{what}[{i}]: {g} vs {w} (scale {scale})"
        );
    }
}

#[test]
fn heads_and_gradients_equal_burns_autodiff_for_every_encoder() {
    for (k, (name, spec)) in specs().into_iter().enumerate() {
        spec.validate().unwrap();
        let mut rng = Rng::new(k as u64);
        let rows = if spec.obs_dim > 10_000 { 5 } else { 37 };
        let (bytes, floats) = observations(&spec, rows, &mut rng);
        let obs = if bytes.is_empty() {
            Rows::F32(&floats)
        } else {
            Rows::U8(&bytes)
        };
        let p = params(&spec, k as u64 + 1);
        let a = spec.action.outputs();
        let g_policy: Vec<f32> = (0..rows * a).map(|_| rng.normal() as f32).collect();
        let g_values: Vec<f32> = (0..rows).map(|_| rng.normal() as f32).collect();
        let g_log_std: Vec<f32> = (0..a).map(|_| rng.normal() as f32).collect();
        let gaussian = matches!(spec.action, ActionHead::Gaussian(_));
        let grads = HeadGrads {
            policy: Some(&g_policy),
            values: Some(&g_values),
            log_std: gaussian.then_some(&g_log_std[..]),
        };
        let mut burn = BurnTraining::new(&spec, &p, Optimizer::None, &Device::flex());
        let want_heads = burn.forward(obs, Want::BOTH);
        burn.backward(grads);
        let want = burn.gradient();
        for threads in [1, 2, 3] {
            let mut host = HostModel::new(&spec, &p, Optimizer::None, threads).split_every_batch();
            let heads = host.forward(obs, Want::BOTH);
            assert_close(
                &format!("{name} policy ({threads}t)"),
                &heads.policy,
                &want_heads.policy,
                1e-5,
            );
            assert_close(
                &format!("{name} values ({threads}t)"),
                &heads.values,
                &want_heads.values,
                1e-5,
            );
            host.backward(grads);
            assert_close(
                &format!("{name} gradient ({threads}t)"),
                &host.gradient(),
                &want,
                1e-5,
            );
            // A pass that keeps nothing gives the same heads and leaves the kept one alone.
            let again = Training::infer(&mut host, obs, Want::POLICY);
            assert_eq!(again.policy, heads.policy, "{name}");
            host.backward(grads);
            assert_close(
                &format!("{name} gradient after infer"),
                &host.gradient(),
                &want,
                1e-5,
            );
        }
        // One head only: the other's parameters get no gradient.
        let mut host = HostModel::new(&spec, &p, Optimizer::None, 1);
        let heads = host.forward(obs, Want::VALUE);
        assert!(heads.policy.is_empty());
        host.backward(HeadGrads {
            values: Some(&g_values),
            ..HeadGrads::default()
        });
        let g = host.gradient();
        for (entry, range) in spec.layout().entries().iter().zip(spec.layout().ranges()) {
            if entry.path.starts_with("actor.") || entry.path == "log_std" {
                assert!(g[range].iter().all(|&v| v == 0.0), "{name}: {}", entry.path);
            }
        }
    }
}

#[test]
fn a_step_equals_burns_adam_and_threads_reduce_in_a_fixed_order() {
    for (k, (name, spec)) in specs().into_iter().enumerate() {
        if spec.obs_dim > 10_000 {
            continue;
        }
        let mut rng = Rng::new(40 + k as u64);
        let rows = 29;
        let (bytes, floats) = observations(&spec, rows, &mut rng);
        let obs = if bytes.is_empty() {
            Rows::F32(&floats)
        } else {
            Rows::U8(&bytes)
        };
        let p = params(&spec, k as u64 + 7);
        let g_policy: Vec<f32> = (0..rows * spec.action.outputs())
            .map(|_| rng.normal() as f32)
            .collect();
        let g_values: Vec<f32> = (0..rows).map(|_| rng.normal() as f32).collect();
        let grads = HeadGrads {
            policy: Some(&g_policy),
            values: Some(&g_values),
            log_std: None,
        };
        let adam = Optimizer::Adam { epsilon: 1e-5 };
        let run = |engine: &mut dyn Training| {
            for _ in 0..3 {
                engine.forward(obs, Want::BOTH);
                engine.backward(grads);
                engine.step(1e-3, 0.5);
            }
            engine.params()
        };
        let want = run(&mut BurnTraining::new(&spec, &p, adam, &Device::flex()));
        let got = run(&mut HostModel::new(&spec, &p, adam, 1));
        let moved = got
            .iter()
            .zip(&p)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(moved > 1e-4, "{name}: the steps moved the parameters");
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{name}: {g} vs burn's {w}");
        }
        let twice = |_: ()| run(&mut HostModel::new(&spec, &p, adam, 2).split_every_batch());
        assert_eq!(
            twice(()),
            twice(()),
            "{name}: two threads repeat bit for bit"
        );
    }
}
