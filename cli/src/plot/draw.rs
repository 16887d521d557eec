//! Renders the panels' series (`series`) with plotters.

use std::path::Path;

use plotters::prelude::*;

use super::curve::increasing;
use super::series::{PANELS, Series, panel_series, targets};
use super::{PlotError, Run};

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The x and y ranges that hold every point and band of `series` and the `levels` (targets).
fn bounds(series: &[Series], levels: &[f64]) -> ((f64, f64), (f64, f64)) {
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for &(x, m, s) in series.iter().flat_map(|s| &s.points) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(m - s);
        y1 = y1.max(m + s);
    }
    for &t in levels {
        y0 = y0.min(t);
        y1 = y1.max(t);
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
    ((x0, x1), (y0 - pad, y1 + pad))
}

/// Draws the panels for `groups` into `out` (PNG, `width` × `height`).
pub fn draw(groups: &[Vec<Run>], out: &Path, size: (u32, u32)) -> Result<(), PlotError> {
    let err = |e: &dyn std::fmt::Display| PlotError::Draw {
        path: out.to_path_buf(),
        message: e.to_string(),
    };
    let root = BitMapBackend::new(out, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let areas = root.split_evenly((2, 3));
    let targets = targets(groups);
    for (panel, area) in PANELS.iter().zip(&areas) {
        let series = panel_series(panel, groups);
        let targets: &[(f64, String)] = if panel.target { &targets } else { &[] };
        let levels: Vec<f64> = targets.iter().map(|t| t.0).collect();
        let ((x0, x1), (y0, y1)) = bounds(&series, &levels);
        let mut chart = ChartBuilder::on(area)
            .caption(panel.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc(panel.x.label())
            .x_labels(6)
            .y_labels(6)
            .label_style(("sans-serif", 14))
            .x_label_formatter(&|x| compact(*x))
            .draw()
            .map_err(|e| err(&e))?;
        for s in &series {
            let color = COLORS[s.color % COLORS.len()];
            if s.points.iter().any(|p| p.2 > 0.0) {
                let upper = s.points.iter().map(|&(x, m, sd)| (x, m + sd));
                let lower = s.points.iter().rev().map(|&(x, m, sd)| (x, m - sd));
                chart
                    .draw_series(std::iter::once(Polygon::new(
                        upper.chain(lower).collect::<Vec<_>>(),
                        color.mix(0.2).filled(),
                    )))
                    .map_err(|e| err(&e))?;
            }
            let line: Vec<(f64, f64)> = s.points.iter().map(|&(x, m, _)| (x, m)).collect();
            let style = match s.faint {
                true => color.mix(0.35).stroke_width(1),
                false => color.stroke_width(2),
            };
            if line.len() < 4 && !s.faint {
                // Too few points for a line to show: mark them.
                chart
                    .draw_series(line.iter().map(|&p| Circle::new(p, 4, color.filled())))
                    .map_err(|e| err(&e))?;
            }
            let drawn = if s.dashed {
                chart
                    .draw_series(DashedLineSeries::new(line, 8, 5, style))
                    .map_err(|e| err(&e))?
            } else {
                chart
                    .draw_series(LineSeries::new(line, style))
                    .map_err(|e| err(&e))?
            };
            if let Some(label) = &s.label {
                drawn.label(label).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            }
        }
        for (t, label) in targets {
            let style = BLACK.mix(0.6).stroke_width(1);
            chart
                .draw_series(DashedLineSeries::new([(x0, *t), (x1, *t)], 6, 4, style))
                .map_err(|e| err(&e))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        }
        if series.iter().any(|s| s.label.is_some()) || !targets.is_empty() {
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

/// 150000 → "150k", 2500000 → "2.5M".
pub(super) fn compact(x: f64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_numbers() {
        assert_eq!(compact(150_000.0), "150k");
        assert_eq!(compact(2_500_000.0), "2.5M");
        assert_eq!(compact(12.0), "12");
    }

    #[test]
    fn the_target_is_inside_the_return_panel() {
        // A run that never got near its target of 475.
        let line = Series {
            label: None,
            color: 0,
            faint: false,
            dashed: false,
            points: vec![(0.0, 10.0, 0.0), (100.0, 30.0, 0.0)],
        };
        let ((x0, x1), (y0, y1)) = bounds(std::slice::from_ref(&line), &[475.0]);
        assert_eq!((x0, x1), (0.0, 100.0));
        assert!(y0 < 10.0 && y1 > 475.0, "{y0}..{y1}");
    }
}
