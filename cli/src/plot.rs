//! `shoal plot`: learning curves of one or more runs as a PNG, from their `metrics.jsonl`.
//!
//! Six panels: the training return (mean of the last 100 episodes; DQN runs add their greedy
//! evaluation return, dashed) against env steps and against wall-clock, then the losses, the
//! entropy, the approximate KL and the throughput against env steps. Runs whose configs differ
//! only in their seed form one group: drawn as the mean with a band of ± one standard deviation
//! over the seeds (on a common grid of env steps or seconds); a group of one run is its line.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use shoal_common::config::RunConfig;
use shoal_learner::telemetry::StatusRow;
use thiserror::Error;

/// Why a plot could not be made.
#[derive(Debug, Error)]
pub enum PlotError {
    /// A run directory could not be read.
    #[error("{path}: {message}")]
    Run {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// No font to write labels with.
    #[error(
        "no TrueType font found (looked for DejaVu Sans and Liberation Sans); install \
         fonts-dejavu-core or pass --font FILE.ttf"
    )]
    NoFont,
    /// Drawing failed.
    #[error("drawing {path}: {message}")]
    Draw {
        /// The PNG.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// One run's curves.
#[derive(Debug, Clone)]
pub struct Run {
    /// The directory.
    pub dir: PathBuf,
    /// Its config without the seed (runs with equal keys are seeds of one experiment).
    pub key: String,
    /// A short name for the legend.
    pub label: String,
    /// Metrics rows.
    pub rows: Vec<StatusRow>,
}

impl Run {
    /// Reads `dir/config.toml` and `dir/metrics.jsonl`.
    pub fn load(dir: &Path) -> Result<Self, PlotError> {
        let err = |path: PathBuf, message: String| PlotError::Run { path, message };
        let config_path = dir.join("config.toml");
        let config = RunConfig::load(&config_path).map_err(|e| err(config_path, e.to_string()))?;
        let key = RunConfig {
            seed: 0,
            ..config.clone()
        }
        .to_toml();
        let metrics_path = dir.join("metrics.jsonl");
        let text = std::fs::read_to_string(&metrics_path)
            .map_err(|e| err(metrics_path.clone(), e.to_string()))?;
        let rows = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect::<Result<Vec<StatusRow>, _>>()
            .map_err(|e| err(metrics_path, e.to_string()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            key,
            label: format!("{} {}", config.env_id, config.algorithm.name()),
            rows,
        })
    }

    /// `(x, y)` of the rows where both are numbers.
    fn series(&self, x: &Quantity, y: &Quantity) -> Vec<(f64, f64)> {
        self.rows
            .iter()
            .filter_map(|r| Some(((x.of)(r)?, (y.of)(r)?)))
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .collect()
    }
}

/// Runs grouped by config (seeds of one experiment together), in order of first appearance.
pub fn group(runs: Vec<Run>) -> Vec<Vec<Run>> {
    let mut groups: Vec<Vec<Run>> = Vec::new();
    for run in runs {
        match groups.iter_mut().find(|g| g[0].key == run.key) {
            Some(g) => g.push(run),
            None => groups.push(vec![run]),
        }
    }
    groups
}

/// `y` linearly interpolated at `x` on a curve sorted by x; `None` outside it.
fn interpolate(curve: &[(f64, f64)], x: f64) -> Option<f64> {
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

/// Points `(x, mean, std)` of a curve drawn with its spread.
type Band = Vec<(f64, f64, f64)>;

/// Mean and standard deviation over `curves` on a grid of `points` x values spanning the range
/// all of them cover: `(x, mean, std)`. One curve: itself, with no spread.
pub fn mean_band(curves: &[Vec<(f64, f64)>], points: usize) -> Band {
    let curves: Vec<&Vec<(f64, f64)>> = curves.iter().filter(|c| !c.is_empty()).collect();
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

/// Registers a TrueType font for the labels: `font`, else the first of the usual system fonts.
pub fn register_font(font: Option<&Path>) -> Result<(), PlotError> {
    let candidates: Vec<PathBuf> = match font {
        Some(f) => vec![f.to_path_buf()],
        None => [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
        ]
        .iter()
        .map(PathBuf::from)
        .collect(),
    };
    for path in candidates {
        if let Ok(bytes) = std::fs::read(&path) {
            // The font must outlive every chart: it is loaded once per process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return Ok(());
            }
        }
    }
    Err(PlotError::NoFont)
}

/// A quantity of the status row, by its `metrics.jsonl` key.
struct Quantity {
    name: &'static str,
    of: fn(&StatusRow) -> Option<f64>,
}

const ENV_STEPS: Quantity = Quantity {
    name: "env_steps",
    of: |r| r.env_steps.map(|n| n as f64),
};
const TIME: Quantity = Quantity {
    name: "time_s",
    of: |r| r.time_s,
};
const RETURN: Quantity = Quantity {
    name: "return_mean_100",
    of: |r| r.return_mean_100,
};
/// Drawn dashed.
const EVAL_RETURN: Quantity = Quantity {
    name: "eval_return_mean",
    of: |r| r.eval_return_mean,
};

/// One panel: quantities against env steps or seconds.
struct Panel {
    title: &'static str,
    x: Quantity,
    x_label: &'static str,
    ys: &'static [Quantity],
}

const PANELS: [Panel; 6] = [
    Panel {
        title: "return (mean of last 100 episodes; dashed: greedy evaluation)",
        x: ENV_STEPS,
        x_label: "env steps",
        ys: &[RETURN, EVAL_RETURN],
    },
    Panel {
        title: "return vs wall-clock",
        x: TIME,
        x_label: "seconds",
        ys: &[RETURN, EVAL_RETURN],
    },
    Panel {
        title: "losses (policy, value; DQN: TD)",
        x: ENV_STEPS,
        x_label: "env steps",
        ys: &[
            Quantity {
                name: "policy_loss",
                of: |r| r.policy_loss,
            },
            Quantity {
                name: "value_loss",
                of: |r| r.value_loss,
            },
            Quantity {
                name: "dqn_loss",
                of: |r| r.dqn_loss,
            },
        ],
    },
    Panel {
        title: "entropy",
        x: ENV_STEPS,
        x_label: "env steps",
        ys: &[Quantity {
            name: "entropy",
            of: |r| r.entropy,
        }],
    },
    Panel {
        title: "approx KL",
        x: ENV_STEPS,
        x_label: "env steps",
        ys: &[Quantity {
            name: "approx_kl",
            of: |r| r.approx_kl,
        }],
    },
    Panel {
        title: "env steps per second",
        x: ENV_STEPS,
        x_label: "env steps",
        ys: &[Quantity {
            name: "sps",
            of: |r| r.sps,
        }],
    },
];

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Draws the panels for `groups` into `out` (PNG, `width` × `height`).
pub fn draw(groups: &[Vec<Run>], out: &Path, size: (u32, u32)) -> Result<(), PlotError> {
    let err = |e: &dyn std::fmt::Display| PlotError::Draw {
        path: out.to_path_buf(),
        message: e.to_string(),
    };
    let root = BitMapBackend::new(out, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let areas = root.split_evenly((2, 3));
    for (panel, area) in PANELS.iter().zip(&areas) {
        // Every (group, quantity) band; a group whose runs share no range of x (runs shorter
        // than a status interval, say) is drawn run by run instead.
        let mut bands: Vec<(usize, usize, Band)> = Vec::new();
        for (g, runs) in groups.iter().enumerate() {
            for (k, y) in panel.ys.iter().enumerate() {
                let curves: Vec<Vec<(f64, f64)>> =
                    runs.iter().map(|r| r.series(&panel.x, y)).collect();
                let band = mean_band(&curves, 200);
                if band.len() >= 2 {
                    bands.push((g, k, band));
                } else {
                    for c in curves.iter().filter(|c| !c.is_empty()) {
                        bands.push((g, k, c.iter().map(|&(x, y)| (x, y, 0.0)).collect()));
                    }
                }
            }
        }
        let points = bands.iter().flat_map(|(_, _, b)| b.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for &(x, m, s) in points {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(m - s);
            y1 = y1.max(m + s);
        }
        if !increasing(x0, x1) {
            (x0, x1) = (0.0, 1.0);
        }
        if !increasing(y0, y1) {
            (y0, y1) = if y0.is_finite() {
                (y0 - 1.0, y0 + 1.0)
            } else {
                (0.0, 1.0)
            };
        }
        let pad = 0.05 * (y1 - y0);
        let mut chart = ChartBuilder::on(area)
            .caption(panel.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(panel.x_label)
            .x_labels(6)
            .y_labels(6)
            .label_style(("sans-serif", 14))
            .x_label_formatter(&|x| compact(*x))
            .draw()
            .map_err(|e| err(&e))?;
        let mut labelled = std::collections::HashSet::new();
        for (g, k, band) in &bands {
            // One color per group, and per quantity where a panel shows several.
            let color = COLORS[(g * panel.ys.len() + k) % COLORS.len()];
            if band.iter().any(|p| p.2 > 0.0) {
                let upper = band.iter().map(|&(x, m, s)| (x, m + s));
                let lower = band.iter().rev().map(|&(x, m, s)| (x, m - s));
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        upper.chain(lower).collect::<Vec<_>>(),
                        color.mix(0.2).filled(),
                    )))
                    .map_err(|e| err(&e))?;
            }
            let line: Vec<(f64, f64)> = band.iter().map(|&(x, m, _)| (x, m)).collect();
            let style = color.stroke_width(2);
            let runs = &groups[*g];
            let label = format!(
                "{}{} ({} run{})",
                runs[0].label,
                if panel.ys.len() > 1 {
                    format!(" {}", panel.ys[*k].name)
                } else {
                    String::new()
                },
                runs.len(),
                if runs.len() == 1 { "" } else { "s" }
            );
            if line.len() < 4 {
                // Too few points for a line to show: mark them.
                chart
                    .draw_series(line.iter().map(|&p| Circle::new(p, 4, color.filled())))
                    .map_err(|e| err(&e))?;
            }
            let series = if panel.ys[*k].name == EVAL_RETURN.name {
                chart
                    .draw_series(DashedLineSeries::new(line, 8, 5, style))
                    .map_err(|e| err(&e))?
            } else {
                chart
                    .draw_series(LineSeries::new(line, style))
                    .map_err(|e| err(&e))?
            };
            // Runs drawn one by one share their group's legend entry.
            if labelled.insert((*g, *k)) {
                series.label(label).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            }
        }
        if !bands.is_empty() {
            chart
                .configure_series_labels()
                .label_font(("sans-serif", 13))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(|e| err(&e))?;
        }
    }
    root.present().map_err(|e| err(&e))
}

/// `lo < hi`, false when either is NaN.
fn increasing(lo: f64, hi: f64) -> bool {
    lo.partial_cmp(&hi) == Some(std::cmp::Ordering::Less)
}

/// 150000 → "150k", 2500000 → "2.5M".
fn compact(x: f64) -> String {
    let a = x.abs();
    if a >= 1e6 {
        format!("{}M", trim(x / 1e6))
    } else if a >= 1e3 {
        format!("{}k", trim(x / 1e3))
    } else {
        trim(x)
    }
}

fn trim(x: f64) -> String {
    let s = format!("{x:.1}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

/// `shoal plot`: loads `dirs`, groups them by config and draws `out`.
pub fn plot(dirs: &[PathBuf], out: &Path, font: Option<&Path>) -> Result<usize, PlotError> {
    register_font(font)?;
    let runs = dirs
        .iter()
        .map(|d| Run::load(d))
        .collect::<Result<Vec<_>, _>>()?;
    let groups = group(runs);
    draw(&groups, out, (1800, 1000))?;
    Ok(groups.len())
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
    fn compact_numbers() {
        assert_eq!(compact(150_000.0), "150k");
        assert_eq!(compact(2_500_000.0), "2.5M");
        assert_eq!(compact(12.0), "12");
    }
}
