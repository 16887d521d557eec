//! Global gradient-norm clipping on the flat gradient: the L2 norm over all parameters (burn's
//! own clipping is per tensor), and the scaling that caps it.

/// `Σ x²` in `f64`, over eight interleaved partial sums: one running sum is a chain of dependent
/// additions at one per ~4 cycles, which made this a third of an A3C gradient's apply.
pub fn sum_of_squares(values: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let chunks = values.chunks_exact(8);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v as f64 * v as f64;
        }
    }
    let tail: f64 = tail.iter().map(|&v| v as f64 * v as f64).sum();
    lanes.iter().sum::<f64>() + tail
}

/// Scales `grad` in place so that its L2 norm is at most `max_norm`; returns the norm before.
pub fn clip_global_norm(grad: &mut [f32], max_norm: f64) -> f64 {
    let norm = sum_of_squares(grad).sqrt();
    if norm > max_norm {
        let scale = (max_norm / (norm + 1e-6)) as f32;
        for g in grad.iter_mut() {
            *g *= scale;
        }
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_bounds_the_norm_and_keeps_small_gradients() {
        let mut g = vec![3.0f32, 4.0];
        assert!((clip_global_norm(&mut g, 1.0) - 5.0).abs() < 1e-12);
        let n: f32 = g.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-5 && (g[0] / g[1] - 0.75).abs() < 1e-6);
        let mut small = vec![0.1f32, 0.2];
        clip_global_norm(&mut small, 1.0);
        assert_eq!(small, vec![0.1, 0.2]);
    }

    #[test]
    fn sum_of_squares_matches_the_plain_sum() {
        for n in [0, 1, 7, 8, 9, 17, 9155] {
            let values: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
            let plain: f64 = values.iter().map(|&v| v as f64 * v as f64).sum();
            assert!(
                (sum_of_squares(&values) - plain).abs() <= 1e-12 * (1.0 + plain),
                "{n}"
            );
        }
    }
}
