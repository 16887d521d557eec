//! What each panel draws, as data: the curves of runs and groups with their legend labels, and
//! the target lines. The drawing code only renders these.

use shoal_learner::telemetry::StatusRow;

use super::Run;
use super::curve::{Band, Curve, interpolate, mean_band, rolling_mean};

/// Episodes in the rolling mean of the per-episode return curve (as `return_mean_100`).
const WINDOW: usize = 100;

/// Points on the common grid of a group's mean ± std band.
const GRID: usize = 200;

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

/// What a panel's x axis counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Axis {
    /// Env steps.
    Steps,
    /// Wall-clock seconds.
    Seconds,
}

impl Axis {
    fn of(self, r: &StatusRow) -> Option<f64> {
        match self {
            Axis::Steps => r.env_steps.map(|n| n as f64),
            Axis::Seconds => r.time_s,
        }
    }

    /// The axis label.
    pub(super) fn label(self) -> &'static str {
        match self {
            Axis::Steps => "env steps",
            Axis::Seconds => "seconds",
        }
    }
}

/// A quantity of the status row.
pub(super) struct Quantity {
    /// Added to the run's name in the legend (empty: the panel's main quantity).
    legend: &'static str,
    of: fn(&StatusRow) -> Option<f64>,
    /// Drawn dashed.
    dashed: bool,
    /// The training return: drawn from `episodes.csv`, one point per episode, where a run has it.
    per_episode: bool,
}

const RETURN: Quantity = Quantity {
    legend: "",
    of: |r| r.return_mean_100,
    dashed: false,
    per_episode: true,
};
const EVAL_RETURN: Quantity = Quantity {
    legend: "greedy eval",
    of: |r| r.eval_return_mean,
    dashed: true,
    per_episode: false,
};

/// A quantity drawn solid from the status rows.
const fn row(legend: &'static str, of: fn(&StatusRow) -> Option<f64>) -> Quantity {
    Quantity {
        legend,
        of,
        dashed: false,
        per_episode: false,
    }
}

/// One panel: quantities against env steps or seconds.
pub(super) struct Panel {
    pub(super) title: &'static str,
    pub(super) x: Axis,
    ys: &'static [Quantity],
    /// Draws the runs' `target_return`.
    pub(super) target: bool,
}

pub(super) const PANELS: [Panel; 6] = [
    Panel {
        title: "return (mean of last 100 episodes; dashed: greedy evaluation)",
        x: Axis::Steps,
        ys: &[RETURN, EVAL_RETURN],
        target: true,
    },
    Panel {
        title: "return vs wall-clock",
        x: Axis::Seconds,
        ys: &[RETURN, EVAL_RETURN],
        target: true,
    },
    Panel {
        title: "losses (policy, value; DQN: TD)",
        x: Axis::Steps,
        ys: &[
            row("policy loss", |r| r.policy_loss),
            row("value loss", |r| r.value_loss),
            row("TD loss", |r| r.dqn_loss),
        ],
        target: false,
    },
    Panel {
        title: "entropy",
        x: Axis::Steps,
        ys: &[row("", |r| r.entropy)],
        target: false,
    },
    Panel {
        title: "approx KL",
        x: Axis::Steps,
        ys: &[row("", |r| r.approx_kl)],
        target: false,
    },
    Panel {
        title: "env steps per second",
        x: Axis::Steps,
        ys: &[row("", |r| r.sps)],
        target: false,
    },
];

impl Run {
    /// The directory's name.
    pub fn name(&self) -> String {
        self.dir.file_name().map_or_else(
            || self.dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// The legend label of a run drawn on its own: its directory, with the environment and
    /// algorithm unless the name says them.
    fn label(&self) -> String {
        let name = self.name();
        if name.contains(&self.env_id) && name.contains(self.algorithm) {
            name
        } else {
            format!("{name} ({} {})", self.env_id, self.algorithm)
        }
    }

    /// Whether the run has a finished episode (else it has no return curve).
    pub fn has_episodes(&self) -> bool {
        !self.episodes.is_empty()
            || self
                .rows
                .iter()
                .any(|r| r.return_mean_100.is_some_and(f64::is_finite))
    }

    /// `(env steps, seconds)` of the status rows, sorted, from `(0, 0)`: the clock that places
    /// episodes on the wall-clock axis.
    fn clock(&self) -> Curve {
        let mut clock: Curve = std::iter::once((0.0, 0.0))
            .chain(self.series(Axis::Steps, &row("", |r| r.time_s)))
            .collect();
        clock.sort_by(|a, b| a.0.total_cmp(&b.0));
        clock
    }

    /// `(x, y)` of `y` against `x`: the training return from `episodes.csv` where the run has
    /// one (its mean over the last 100 episodes at every episode), else the status rows where
    /// both are numbers.
    pub(super) fn series(&self, x: Axis, y: &Quantity) -> Curve {
        if y.per_episode && !self.episodes.is_empty() {
            let curve = rolling_mean(&self.episodes, WINDOW);
            return match x {
                Axis::Steps => curve,
                Axis::Seconds => {
                    let clock = self.clock();
                    curve
                        .into_iter()
                        .filter_map(|(steps, r)| Some((interpolate(&clock, steps)?, r)))
                        .collect()
                }
            };
        }
        self.rows
            .iter()
            .filter_map(|r| Some((x.of(r)?, (y.of)(r)?)))
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .collect()
    }
}

/// The legend label of a group of seeds: `<env> <algorithm> (n seeds: …)` with the directory
/// names when they are short, else the seeds.
fn group_label(runs: &[Run]) -> String {
    let names: Vec<String> = runs.iter().map(Run::name).collect();
    let names = names.join(", ");
    let seeds: Vec<String> = runs.iter().map(|r| r.seed.to_string()).collect();
    let seeds = seeds.join(", ");
    let which = if names.len() <= 40 {
        format!(": {names}")
    } else if seeds.len() <= 40 {
        format!(": {seeds}")
    } else {
        String::new()
    };
    let run = &runs[0];
    format!(
        "{} {} ({} seeds{which})",
        run.env_id,
        run.algorithm,
        runs.len()
    )
}

/// One line of a panel, or a group's mean with its ± std band.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Series {
    /// The legend entry; `None` for a seed's own line under its group's mean.
    pub(super) label: Option<String>,
    /// Index into the palette.
    pub(super) color: usize,
    /// A seed's own line, drawn thin and light.
    pub(super) faint: bool,
    /// Drawn dashed.
    pub(super) dashed: bool,
    /// `(x, y, std)`; std is 0 but on a group's band.
    pub(super) points: Band,
}

/// The series of `panel` for `groups`, seeds' own lines first. A run alone is its line. A group
/// of seeds is each seed's whole curve, faint, and their mean ± std, bold, over the range all
/// of them cover (the label says where that ends when a seed goes further); seeds sharing no
/// range are drawn as separate runs.
pub(super) fn panel_series(panel: &Panel, groups: &[Vec<Run>]) -> Vec<Series> {
    let mut out = Vec::new();
    for (g, runs) in groups.iter().enumerate() {
        for (k, y) in panel.ys.iter().enumerate() {
            // One color per group, and per quantity where a panel shows several.
            let color = g * panel.ys.len() + k;
            let with_legend = |label: String| match y.legend {
                "" => label,
                q => format!("{label} {q}"),
            };
            let line = |label: Option<String>, faint: bool, points: Band| Series {
                label,
                color,
                faint,
                dashed: y.dashed,
                points,
            };
            let (drawn, curves): (Vec<&Run>, Vec<Curve>) = runs
                .iter()
                .map(|r| (r, r.series(panel.x, y)))
                .filter(|(_, c)| !c.is_empty())
                .unzip();
            let flat = |c: &[(f64, f64)]| c.iter().map(|&(x, y)| (x, y, 0.0)).collect();
            let band = match curves.len() {
                0 | 1 => Vec::new(),
                _ => mean_band(&curves, GRID),
            };
            if band.len() < 2 {
                for (run, c) in drawn.iter().zip(&curves) {
                    out.push(line(Some(with_legend(run.label())), false, flat(c)));
                }
                continue;
            }
            for c in &curves {
                out.push(line(None, true, flat(c)));
            }
            let end = band[band.len() - 1].0;
            let longest = curves.iter().map(|c| c[c.len() - 1].0).fold(end, f64::max);
            let mut label = format!("{}, mean ± std", with_legend(group_label(runs)));
            if longest > end {
                label += &format!(" to {} {}", super::draw::compact(end), panel.x.label());
            }
            out.push(line(Some(label), false, band));
        }
    }
    out.sort_by_key(|s| !s.faint);
    out
}

/// The return panels' target lines: `(return, label)`, one per distinct `target_return` of the
/// groups, labelled "target" (naming the environments when there are several lines).
pub(super) fn targets(groups: &[Vec<Run>]) -> Vec<(f64, String)> {
    let mut lines: Vec<(f64, Vec<&str>)> = Vec::new();
    for run in groups.iter().map(|g| &g[0]) {
        let Some(t) = run.target_return.filter(|t| t.is_finite()) else {
            continue;
        };
        match lines.iter_mut().find(|(v, _)| *v == t) {
            Some((_, envs)) if envs.contains(&run.env_id.as_str()) => {}
            Some((_, envs)) => envs.push(&run.env_id),
            None => lines.push((t, vec![&run.env_id])),
        }
    }
    let several = lines.len() > 1;
    lines
        .into_iter()
        .map(|(t, envs)| match several {
            true => (t, format!("target ({})", envs.join(", "))),
            false => (t, "target".to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A run of `seed` with one status row per `(env_steps, return_mean_100)`, one second apart.
    fn fake_run(name: &str, seed: u64, returns: &[(u64, f64)]) -> Run {
        let rows = returns
            .iter()
            .enumerate()
            .map(|(i, &(steps, r))| StatusRow {
                time_s: Some(i as f64 + 1.0),
                env_steps: Some(steps),
                return_mean_100: Some(r),
                ..StatusRow::default()
            })
            .collect();
        Run {
            dir: PathBuf::from("runs").join(name),
            key: "cartpole ppo".into(),
            env_id: "CartPole-v1".into(),
            algorithm: "ppo",
            seed,
            target_return: Some(475.0),
            rows,
            episodes: Vec::new(),
        }
    }

    fn steps(s: &Series) -> (f64, f64) {
        (s.points[0].0, s.points[s.points.len() - 1].0)
    }

    #[test]
    fn seeds_are_drawn_whole_and_their_band_over_the_common_range() {
        // A 45k-step run and a longer solved run, seeds of one config.
        let short = fake_run("s1", 1, &[(15_000, 20.0), (30_000, 60.0), (45_000, 100.0)]);
        let long = fake_run(
            "s2",
            2,
            &[
                (15_000, 40.0),
                (30_000, 80.0),
                (45_000, 200.0),
                (90_000, 480.0),
            ],
        );
        let groups = group(vec![short, long]);
        assert_eq!(groups.len(), 1);
        let series = panel_series(&PANELS[0], &groups);
        assert_eq!(series.len(), 3, "{series:?}");
        // Each seed's whole curve, faint and without a legend entry of its own.
        assert!(series[..2].iter().all(|s| s.faint && s.label.is_none()));
        assert_eq!(steps(&series[0]), (15_000.0, 45_000.0));
        assert_eq!(steps(&series[1]), (15_000.0, 90_000.0));
        // The band: bold, over 15k..45k, saying where it stops.
        let band = &series[2];
        assert!(!band.faint);
        assert_eq!(steps(band), (15_000.0, 45_000.0));
        assert_eq!(band.points[band.points.len() - 1], (45_000.0, 150.0, 50.0));
        assert_eq!(
            band.label.as_deref(),
            Some("CartPole-v1 ppo (2 seeds: s1, s2), mean ± std to 45k env steps")
        );
    }

    #[test]
    fn legends_name_runs_and_groups() {
        let a = fake_run(
            "CartPole-v1-ppo-s1-20250101-000000",
            1,
            &[(0, 1.0), (9, 2.0)],
        );
        let mut b = fake_run("baseline", 1, &[(0, 1.0), (9, 2.0)]);
        b.key = "other".into();
        let labels = |groups: &[Vec<Run>], panel: &Panel| -> Vec<String> {
            panel_series(panel, groups)
                .into_iter()
                .filter_map(|s| s.label)
                .collect()
        };
        let groups = group(vec![a.clone(), b]);
        assert_eq!(
            labels(&groups, &PANELS[0]),
            [
                "CartPole-v1-ppo-s1-20250101-000000",
                "baseline (CartPole-v1 ppo)"
            ]
        );
        // Seeds with long directory names are listed by seed; the band ends with every seed.
        let c = Run {
            dir: PathBuf::from("runs/CartPole-v1-ppo-s2-20250101-000000"),
            seed: 2,
            ..a.clone()
        };
        let seeds = group(vec![a.clone(), c]);
        assert_eq!(
            labels(&seeds, &PANELS[0]),
            ["CartPole-v1 ppo (2 seeds: 1, 2), mean ± std"]
        );
        // A second quantity of a panel is named after the run.
        let mut eval = a;
        eval.rows[1].eval_return_mean = Some(3.0);
        eval.rows[0].eval_return_mean = Some(3.0);
        assert_eq!(
            labels(&[vec![eval]], &PANELS[0])[1],
            "CartPole-v1-ppo-s1-20250101-000000 greedy eval"
        );
    }

    #[test]
    fn episodes_give_one_point_per_episode_on_both_return_panels() {
        let mut run = fake_run("r", 1, &[(100, 5.0), (200, 9.0)]);
        // Four episodes; the status rows put 100 steps at 1 s, 200 at 2 s.
        run.episodes = vec![(50.0, 2.0), (100.0, 4.0), (150.0, 6.0), (200.0, 8.0)];
        let by_steps = run.series(Axis::Steps, &RETURN);
        assert_eq!(
            by_steps,
            vec![(50.0, 2.0), (100.0, 3.0), (150.0, 4.0), (200.0, 5.0)]
        );
        let by_time = run.series(Axis::Seconds, &RETURN);
        assert_eq!(
            by_time,
            vec![(0.5, 2.0), (1.0, 3.0), (1.5, 4.0), (2.0, 5.0)]
        );
        // Other quantities still come from the status rows.
        let rows = fake_run("r", 1, &[(100, 5.0), (200, 9.0)]);
        assert_eq!(
            rows.series(Axis::Steps, &RETURN),
            vec![(100.0, 5.0), (200.0, 9.0)]
        );
    }

    #[test]
    fn targets_are_one_line_per_value() {
        let a = fake_run("a", 1, &[(0, 1.0)]);
        let mut b = fake_run("b", 1, &[(0, 1.0)]);
        b.key = "other".into();
        assert_eq!(
            targets(&group(vec![a.clone(), b.clone()])),
            [(475.0, "target".to_string())]
        );
        b.env_id = "Acrobot-v1".into();
        b.target_return = Some(-100.0);
        assert_eq!(
            targets(&group(vec![a, b])),
            [
                (475.0, "target (CartPole-v1)".to_string()),
                (-100.0, "target (Acrobot-v1)".to_string())
            ]
        );
        let mut none = fake_run("c", 1, &[(0, 1.0)]);
        none.target_return = None;
        assert!(targets(&[vec![none]]).is_empty());
    }
}
