//! Hidden-layer non-linearities on host slices and their derivatives: `tanh` (a branch-free
//! rational approximation, to float precision) and ReLU (derivative 1 where the output is
//! positive, as burn's).

use super::simd::vectorized;

/// A non-linearity, as the model's `Activation` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nonlinearity {
    /// `tanh`.
    Tanh,
    /// `max(x, 0)`.
    Relu,
}

impl Nonlinearity {
    /// Applies it in place.
    pub fn apply(self, x: &mut [f32]) {
        vectorized(
            #[inline(always)]
            || match self {
                Nonlinearity::Tanh => x.iter_mut().for_each(|v| *v = tanh(*v)),
                Nonlinearity::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
            },
        )
    }

    /// `d ← d · f'(·)` from the non-linearity's outputs `y` (`1 − y²` for tanh; for ReLU 1
    /// where the output is positive).
    pub fn derive(self, y: &[f32], d: &mut [f32]) {
        assert_eq!(y.len(), d.len(), "one derivative per output");
        vectorized(
            #[inline(always)]
            || match self {
                Nonlinearity::Tanh => d.iter_mut().zip(y).for_each(|(d, y)| *d *= 1.0 - y * y),
                Nonlinearity::Relu => d
                    .iter_mut()
                    .zip(y)
                    .for_each(|(d, y)| *d = if *y > 0.0 { *d } else { 0.0 }),
            },
        )
    }
}

/// `tanh` as a rational function `x·P(x²)/Q(x²)` of degrees 13/6 on `|x| ≤ 7.9053` (where tanh
/// is ±1 in `f32`), the approximation Eigen uses for `float`: branch-free, so the loops above
/// vectorise, and within 4·10⁻⁷ relative plus 10⁻⁷ of `f32::tanh` (tested), where the libm
/// call per value would cost more than the layers' matrix products.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A1: f32 = 4.893_524_6e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_672e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525e-3;
    const B2: f32 = 2.268_434_6e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = x2 * A13 + A11;
    let p = x2 * p + A9;
    let p = x2 * p + A7;
    let p = x2 * p + A5;
    let p = x2 * p + A3;
    let p = x2 * p + A1;
    let p = x * p;
    let q = x2 * B6 + B4;
    let q = x2 * q + B2;
    let q = x2 * q + B0;
    p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tanh_matches_libm_to_float_precision() {
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4;
            let (got, want) = (tanh(x), x.tanh());
            assert!(
                (got - want).abs() <= 4e-7 * want.abs() + 1e-7,
                "tanh({x}) = {got} vs {want}"
            );
        }
        assert_eq!(tanh(1e9), 1.0);
        assert_eq!(tanh(-1e9), -1.0);
        assert_eq!(tanh(0.0), 0.0);
    }

    #[test]
    fn derivatives_from_the_outputs() {
        let mut y = vec![-0.5f32, 0.0, 2.0];
        Nonlinearity::Relu.apply(&mut y);
        assert_eq!(y, vec![0.0, 0.0, 2.0]);
        let mut d = vec![1.0f32; 3];
        Nonlinearity::Relu.derive(&y, &mut d);
        assert_eq!(d, vec![0.0, 0.0, 1.0]);
        let mut t = vec![0.3f32];
        Nonlinearity::Tanh.apply(&mut t);
        let mut d = vec![2.0f32];
        Nonlinearity::Tanh.derive(&t, &mut d);
        assert!((d[0] - 2.0 * (1.0 - 0.3f32.tanh().powi(2))).abs() < 1e-6);
    }
}
