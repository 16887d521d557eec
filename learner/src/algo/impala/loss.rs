//! IMPALA's loss as a small pure function on tensors (Espeholt et al. 2018, section 4.2), the
//! autodiff reference of its gradient at the heads (`shoal_common::objective`): the
//! policy gradient with V-trace advantages, the value loss to the V-trace targets and the
//! entropy bonus; with a clipping ε, APPO's clipped surrogate of the ratio between the current
//! and the behaviour policy instead (PPO's objective with V-trace advantages).

use burn::tensor::Tensor;
use shoal_common::model::PolicyEval;

use shoal_common::objective::LossCoefs;

use crate::algo::ppo::loss::{PpoLoss, ppo_loss};

/// The loss for a minibatch: `policy` is the current policy evaluated on the taken actions and
/// `values` `[B]` the current values; `behaviour_log_probs`, `pg_advantages` and `vs` `[B]` come
/// from the batch and V-trace (constants).
///
/// IMPALA: `policy = −mean(log π(a|x) · A)`. APPO: PPO's clipped surrogate with the ratio
/// `π(a|x) / μ(a|x)`. Both: `value = mean((V(x) − v_s)²)`,
/// `total = policy + vf_coef · value − ent_coef · entropy`. `approx_kl` is between μ and π;
/// `clipfrac` is the clipped share (APPO) or 0.
pub fn impala_loss(
    policy: PolicyEval,
    values: Tensor<1>,
    behaviour_log_probs: Tensor<1>,
    pg_advantages: Tensor<1>,
    vs: Tensor<1>,
    coefs: LossCoefs,
) -> PpoLoss {
    if coefs.clip_coef.is_some() {
        return ppo_loss(
            policy,
            values,
            behaviour_log_probs,
            pg_advantages,
            vs,
            coefs,
        );
    }
    let PolicyEval { log_probs, entropy } = policy;
    let log_ratio = (log_probs.clone() - behaviour_log_probs).detach();
    let policy = (log_probs * pg_advantages).mean().neg();
    let value = (values - vs).square().mean();
    let total = policy.clone() + value.clone().mul_scalar(coefs.vf_coef)
        - entropy.clone().mul_scalar(coefs.ent_coef);
    let approx_kl = (log_ratio.clone().exp().sub_scalar(1.0) - log_ratio.clone()).mean();
    let clipfrac = log_ratio.mul_scalar(0.0).mean();
    PpoLoss {
        total,
        policy,
        value,
        entropy,
        approx_kl,
        clipfrac,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};
    use shoal_common::model::categorical_eval;

    fn t1(v: &[f32]) -> Tensor<1> {
        Tensor::from_data(TensorData::new(v.to_vec(), [v.len()]), &Device::flex())
    }

    fn scalar(t: Tensor<1>) -> f64 {
        t.into_data().convert::<f32>().as_slice::<f32>().unwrap()[0] as f64
    }

    /// Two samples: π = (1/4, 3/4) took action 1, π = (1/2, 1/2) took action 0.
    fn policy() -> PolicyEval {
        let device = Device::flex();
        let logits = Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, 3f32.ln(), 0.0, 0.0], [2, 2]),
            &device,
        );
        let one_hot = Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, 1.0, 1.0, 0.0], [2, 2]),
            &device,
        );
        categorical_eval(logits, one_hot)
    }

    #[test]
    fn impala_loss_on_a_hand_computed_case() {
        let coefs = LossCoefs {
            clip_coef: None,
            vf_coef: 0.5,
            ent_coef: 0.01,
        };
        // Behaviour probabilities 1/2 and 1/4.
        let behaviour = t1(&[0.5f32.ln(), 0.25f32.ln()]);
        let loss = impala_loss(
            policy(),
            t1(&[1.0, 2.0]),
            behaviour,
            t1(&[1.0, -2.0]),
            t1(&[2.0, 0.0]),
            coefs,
        );
        // −mean(ln(3/4) · 1 + ln(1/2) · (−2)).
        let policy_loss = -(0.75f64.ln() - 2.0 * 0.5f64.ln()) / 2.0;
        let value = 2.5;
        let h0 = -(0.25f64 * 0.25f64.ln() + 0.75 * 0.75f64.ln());
        let entropy = (h0 + 2f64.ln()) / 2.0;
        let kl = ((0.5 - 1.5f64.ln()) + (1.0 - 2f64.ln())) / 2.0;
        let close = |a: f64, b: f64| (a - b).abs() < 1e-5;
        assert!(close(scalar(loss.policy), policy_loss));
        assert!(close(scalar(loss.value), value));
        assert!(close(scalar(loss.entropy), entropy));
        assert!(close(scalar(loss.approx_kl), kl));
        assert!(close(scalar(loss.clipfrac), 0.0));
        let total = policy_loss + 0.5 * value - 0.01 * entropy;
        assert!(close(scalar(loss.total), total));
    }

    #[test]
    fn with_a_clipping_epsilon_it_is_the_clipped_surrogate() {
        let coefs = LossCoefs {
            clip_coef: Some(0.2),
            vf_coef: 0.5,
            ent_coef: 0.01,
        };
        let behaviour = t1(&[0.5f32.ln(), 0.25f32.ln()]);
        let loss = impala_loss(
            policy(),
            t1(&[1.0, 2.0]),
            behaviour,
            t1(&[1.0, -2.0]),
            t1(&[2.0, 0.0]),
            coefs,
        );
        // As in PPO's hand-computed case: ratios 1.5 and 2.0, both clipped.
        assert!((scalar(loss.policy) - 1.4).abs() < 1e-5);
        assert!((scalar(loss.clipfrac) - 1.0).abs() < 1e-6);
    }

    /// IMPALA's plain policy gradient (and APPO's clipped one) at the heads, through the host
    /// engine's backward pass, equals burn's autodiff of [`impala_loss`] for every encoder.
    #[test]
    fn the_gradient_at_the_heads_equals_autodiff_for_every_encoder() {
        use burn::optim::GradientsParams;
        use shoal_common::model::{ActionHead, action_rows};
        use shoal_common::objective::{Minibatch, head_grads};
        use shoal_common::rng::Rng;
        use shoal_compute::testing::{observations, params, specs};
        use shoal_compute::{Engine, HeadGrads, Optimizer, Rows, Want};
        for clip_coef in [None, Some(0.2)] {
            let coefs = LossCoefs {
                clip_coef,
                vf_coef: 0.5,
                ent_coef: 0.01,
            };
            for (k, (name, spec)) in specs().into_iter().enumerate() {
                let mut rng = Rng::new(k as u64);
                let rows = if spec.obs_dim > 10_000 { 4 } else { 24 };
                let (bytes, floats) = observations(&spec, rows, &mut rng);
                let obs = if bytes.is_empty() {
                    Rows::F32(&floats)
                } else {
                    Rows::U8(&bytes)
                };
                let p = params(&spec, 5);
                let head = spec.action;
                let actions: Vec<f32> = match head {
                    ActionHead::Categorical(n) => (0..rows).map(|i| (i * 3 % n) as f32).collect(),
                    ActionHead::Gaussian(a) => (0..rows * a).map(|_| rng.normal() as f32).collect(),
                };
                let mut normals =
                    |s: f64| -> Vec<f32> { (0..rows).map(|_| (rng.normal() * s) as f32).collect() };
                let (behaviour, adv, vs) = (normals(0.3), normals(1.0), normals(2.0));
                // The reference: autodiff of the tensor loss.
                let device = Device::flex().autodiff();
                let model = spec.build(&p, &device);
                let x = match obs {
                    Rows::F32(v) => shoal_common::obs::Observations::F32(v.to_vec()),
                    Rows::U8(v) => shoal_common::obs::Observations::U8(v.to_vec()),
                }
                .into_tensor(rows, &device);
                let one_hot = Tensor::<2>::from_data(
                    TensorData::new(action_rows(head, &actions), [rows, head.outputs()]),
                    &device,
                );
                let (policy, values) = model.evaluate_with_values(x, one_hot);
                let t = |v: &[f32]| {
                    Tensor::<1>::from_data(TensorData::new(v.to_vec(), [rows]), &device)
                };
                let loss = impala_loss(policy, values, t(&behaviour), t(&adv), t(&vs), coefs);
                let grads = GradientsParams::from_grads(loss.total.backward(), &model);
                let want = shoal_compute::burn_engine::flat_grads(&model, &grads);
                // The host engine from the gradient at the heads.
                let mut host = Engine::Host { threads: 1 }.training(&spec, &p, Optimizer::None);
                let heads = host.forward(obs, Want::BOTH);
                let log_std = host.log_std();
                let (mut d_out, mut d_v, mut d_ls) = (
                    vec![0.0; heads.policy.len()],
                    vec![0.0; rows],
                    vec![0.0; log_std.len()],
                );
                let mb = Minibatch {
                    actions: &actions,
                    old_log_probs: &behaviour,
                    advantages: &adv,
                    returns: &vs,
                };
                head_grads(
                    head,
                    &heads.policy,
                    &heads.values,
                    &log_std,
                    &mb,
                    rows,
                    coefs,
                    &mut d_out,
                    &mut d_v,
                    &mut d_ls,
                );
                host.backward(HeadGrads {
                    policy: Some(&d_out),
                    values: Some(&d_v),
                    log_std: (!d_ls.is_empty()).then_some(&d_ls[..]),
                });
                let got = host.gradient();
                let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                assert!(scale > 0.0, "{name}");
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-5 * scale,
                        "{name} {clip_coef:?} [{i}]: {g} vs {w}"
                    );
                }
            }
        }
    }
}
