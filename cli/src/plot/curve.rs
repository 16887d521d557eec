//! Curve arithmetic: interpolation, the mean ± std of seeds on a common grid, rolling means.

/// `y` linearly interpolated at `x` on a curve sorted by x; `None` outside it.
pub(super) fn interpolate(curve: &[(f64, f64)], x: f64) -> Option<f64> {
    let i = curve.partition_point(|p| p.0 < x);
    if i < curve.len() && curve[i].0 == x {
        return Some(curve[i].1);
    }
    if i == 0 || i == curve.len() {
        return None;
    }
    let ((x0, y0), (x1, y1)) = (curve[i - 1], curve[i]);
    Some(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
}

/// Points `(x, y)` of a curve, sorted by x.
pub type Curve = Vec<(f64, f64)>;

/// Points `(x, mean, std)` of a curve drawn with its spread.
pub type Band = Vec<(f64, f64, f64)>;

/// Mean and standard deviation over `curves` on a grid of `points` x values spanning the range
/// all of them cover: `(x, mean, std)`. One curve: itself, with no spread.
pub fn mean_band(curves: &[Curve], points: usize) -> Band {
    let curves: Vec<&Curve> = curves.iter().filter(|c| !c.is_empty()).collect();
    match curves.len() {
        0 => return Vec::new(),
        1 => return curves[0].iter().map(|&(x, y)| (x, y, 0.0)).collect(),
        _ => {}
    }
    let lo = curves
        .iter()
        .map(|c| c[0].0)
        .fold(f64::NEG_INFINITY, f64::max);
    let hi = curves
        .iter()
        .map(|c| c[c.len() - 1].0)
        .fold(f64::INFINITY, f64::min);
    if !increasing(lo, hi) {
        return Vec::new();
    }
    (0..points)
        .filter_map(|k| {
            let x = lo + (hi - lo) * k as f64 / (points - 1) as f64;
            let ys: Vec<f64> = curves.iter().filter_map(|c| interpolate(c, x)).collect();
            (ys.len() == curves.len()).then(|| {
                let (m, s) = shoal_common::evaluate::mean_std(&ys);
                (x, m, s)
            })
        })
        .collect()
}

/// `(x, mean of the last `window` ys up to and including this point)` at every point.
pub(super) fn rolling_mean(points: &[(f64, f64)], window: usize) -> Curve {
    let mut sum = 0.0;
    points
        .iter()
        .enumerate()
        .map(|(i, &(x, y))| {
            sum += y;
            if i >= window {
                sum -= points[i - window].1;
            }
            (x, sum / (i + 1).min(window) as f64)
        })
        .collect()
}

/// `lo < hi`, false when either is NaN.
pub(super) fn increasing(lo: f64, hi: f64) -> bool {
    lo.partial_cmp(&hi) == Some(std::cmp::Ordering::Less)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_band_interpolates_on_the_common_range() {
        let a = vec![(0.0, 0.0), (10.0, 10.0)];
        let b = vec![(0.0, 2.0), (5.0, 7.0), (20.0, 22.0)];
        let band = mean_band(&[a.clone(), b], 3);
        // Common range 0..10; at 5: a = 5, b = 7 → mean 6, std 1.
        assert_eq!(band.len(), 3);
        assert_eq!(band[1], (5.0, 6.0, 1.0));
        assert_eq!(band[2], (10.0, 11.0, 1.0));
        // One curve is drawn as it is.
        assert_eq!(mean_band(&[a], 3), vec![(0.0, 0.0, 0.0), (10.0, 10.0, 0.0)]);
        assert!(mean_band(&[], 3).is_empty());
    }

    #[test]
    fn rolling_mean_covers_the_last_episodes_at_every_episode() {
        let points: Vec<(f64, f64)> = (0..5).map(|i| (10.0 * i as f64, i as f64)).collect();
        let mean = rolling_mean(&points, 3);
        let ys: Vec<f64> = mean.iter().map(|p| p.1).collect();
        // 0; (0+1)/2; (0+1+2)/3; (1+2+3)/3; (2+3+4)/3.
        assert_eq!(ys, vec![0.0, 0.5, 1.0, 2.0, 3.0]);
        assert_eq!(mean[4].0, 40.0);
    }
}
