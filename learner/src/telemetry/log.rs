//! The status line, read from the typed row, in two forms per status interval: one structured
//! `tracing` event with every quantity (target [`STATUS_TARGET`], for JSON logs and log
//! shippers), and one compact line a person reads (target [`STATUS_TEXT_TARGET`], for text
//! logs; the logging set-up sends each form to its own format). Quantities that do not apply to
//! the run's algorithm are `None` in the row and absent from both.

use std::fmt;

use tracing::field::display;

use super::metrics::StatusRow;

/// A number shown with `digits` decimals.
struct Fixed(f64, usize);

impl fmt::Display for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.*}", self.1, self.0)
    }
}

/// `x` with `digits` decimals, when known.
fn fixed(x: Option<f64>, digits: usize) -> Option<tracing::field::DisplayValue<Fixed>> {
    x.map(|v| display(Fixed(v, digits)))
}

pub use shoal_common::logging::{STATUS_TARGET, STATUS_TEXT_TARGET};

/// `min/avg/max` of the interval's policy lag, when the interval had any.
fn lag(row: &StatusRow) -> Option<String> {
    let n = |x: Option<u64>| x.map_or("-".into(), |v| v.to_string());
    row.version_diff_avg.map(|avg| {
        format!(
            "{}/{avg:.2}/{}",
            n(row.version_diff_min),
            n(row.version_diff_max)
        )
    })
}

/// `x` to three significant digits, in scientific notation when tiny or huge (a value loss of
/// 1.8e-6 is not `0.0000`).
pub fn sig(x: f64) -> String {
    let a = x.abs();
    if x == 0.0 || !x.is_finite() {
        format!("{x}")
    } else if !(1e-3..1e6).contains(&a) {
        format!("{x:.2e}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else {
        let digits = (2 - a.log10().floor() as i32).max(0) as usize;
        format!("{x:.digits$}")
    }
}

/// A count in at most 5 characters, with a k/M suffix: `950`, `51.2k`, `1.50M` (the status
/// line and `shoal train`'s progress line).
pub fn count(n: f64) -> String {
    match n {
        n if n >= 1e6 => format!("{:.2}M", n / 1e6),
        n if n >= 1e4 => format!("{:.1}k", n / 1e3),
        n => format!("{n:.0}"),
    }
}

/// The compact status line: progress, return, the algorithm's few key quantities, actors and
/// the bottleneck, about 100 characters.
pub fn compact_line(row: &StatusRow) -> String {
    let mut parts = vec![format!(
        "steps {} @ {}/s",
        count(row.env_steps.unwrap_or(0) as f64),
        count(row.sps.unwrap_or(0.0))
    )];
    match (row.eval_return_mean, row.return_mean_100) {
        (Some(eval), train) => parts.push(format!(
            "eval {eval:.1} (train {})",
            train.map_or("-".into(), |r| format!("{r:.1}"))
        )),
        (None, Some(r)) => parts.push(format!("return {r:.1}")),
        (None, None) => parts.push("return -".into()),
    }
    if let Some(v) = row.version {
        parts.push(format!("v{v}"));
    }
    let named = [
        ("pi", row.policy_loss),
        ("vf", row.value_loss),
        ("H", row.entropy),
        ("loss", row.dqn_loss),
        ("q", row.q_mean),
    ];
    let losses: Vec<String> = named
        .iter()
        .filter_map(|(name, x)| x.map(|x| format!("{name} {}", sig(x))))
        .collect();
    if !losses.is_empty() {
        parts.push(losses.join(" "));
    }
    if let Some(kl) = row.kl_ref {
        let beta = row
            .kl_ref_coef
            .map_or(String::new(), |b| format!(" β {}", sig(b)));
        parts.push(format!("kl_ref {}{beta}", sig(kl)));
    }
    if let Some(g) = row.gradients_applied_per_s {
        parts.push(format!("grads {}/s", count(g)));
    }
    if let (Some(lo), Some(hi)) = (row.epsilon_min, row.epsilon_max) {
        parts.push(format!("ε {lo:.2}-{hi:.2}"));
    }
    // Synchronous PPO's lag is always 0: shown only when there is some.
    if let Some(lag) = row.version_diff_avg.filter(|&lag| lag > 0.0) {
        parts.push(format!("lag {lag:.1}"));
    }
    if let Some(masked) = row.masked_fraction.filter(|&m| m > 0.0) {
        parts.push(format!("masked {:.0}%", 100.0 * masked));
    }
    parts.push(format!("actors {}", row.connected_actors.unwrap_or(0)));
    if let Some(b) = &row.bottleneck {
        parts.push(b.clone());
    }
    parts.join(" | ")
}

/// Logs `row` as the status line (both forms). While no actor is connected, a line that says
/// the learner waits for actors replaces the compact form (JSON logs get both it and the row).
pub fn status_line(row: &StatusRow) {
    let idle = row.connected_actors == Some(0);
    if idle {
        tracing::info!(
            "waiting for actors: none connected (actors join with `shoal actor --learner URL`)"
        );
    } else {
        tracing::info!(target: STATUS_TEXT_TARGET, "{}", compact_line(row));
    }
    let epsilon = row
        .epsilon_min
        .zip(row.epsilon_max)
        .map(|(lo, hi)| format!("{lo:.3}-{hi:.3}"));
    tracing::info!(
        target: STATUS_TARGET,
        env_steps = row.env_steps,
        sps = fixed(row.sps, 0),
        updates = row.updates,
        version = row.version,
        episodes = row.episodes,
        eval_return_mean = fixed(row.eval_return_mean, 1),
        return_mean_100 = fixed(row.return_mean_100, 1),
        return_max_100 = fixed(row.return_max_100, 1),
        policy_loss = fixed(row.policy_loss, 4),
        value_loss = fixed(row.value_loss, 4),
        entropy = fixed(row.entropy, 4),
        approx_kl = fixed(row.approx_kl, 5),
        kl_ref = fixed(row.kl_ref, 4),
        kl_ref_coef = fixed(row.kl_ref_coef, 4),
        clipfrac = fixed(row.clipfrac, 3),
        explained_variance = fixed(row.explained_variance, 3),
        grads_per_s = fixed(row.gradients_applied_per_s, 0),
        grads_stale_per_s = fixed(row.gradients_stale_per_s, 1),
        replay_size = row.replay_size,
        replay_ratio = fixed(row.replay_ratio, 3),
        epsilon,
        q_mean = fixed(row.q_mean, 3),
        td_error = fixed(row.td_error, 4),
        loss = fixed(row.dqn_loss, 4),
        lag_min_avg_max = lag(row),
        actors = row.connected_actors,
        queue = row.queue_depth,
        busy = fixed(row.learner_busy, 2),
        stale = row.rollouts_stale,
        masked = fixed(row.masked_fraction, 3),
        refused = row.refused,
        bottleneck = row.bottleneck.as_deref().unwrap_or_default(),
        "status"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_three_significant_digits() {
        assert_eq!(sig(1.8e-6), "1.80e-6");
        assert_eq!(sig(0.98282611), "0.983");
        assert_eq!(sig(-0.0123456), "-0.0123");
        assert_eq!(sig(212.345), "212.3");
        assert_eq!(sig(0.0), "0");
        assert_eq!(count(51_234.0), "51.2k");
        assert_eq!(count(950.0), "950");
    }

    #[test]
    fn the_compact_line_is_short_and_shows_what_applies() {
        let row = StatusRow {
            env_steps: Some(51_234),
            sps: Some(10_200.0),
            return_mean_100: Some(212.34),
            version: Some(120),
            policy_loss: Some(-0.0123),
            value_loss: Some(1.8e-6),
            entropy: Some(0.612),
            approx_kl: Some(0.0031),
            version_diff_avg: Some(0.0),
            connected_actors: Some(2),
            learner_busy: Some(0.98282611),
            bottleneck: Some("learner-bound".into()),
            ..StatusRow::default()
        };
        let line = compact_line(&row);
        assert_eq!(
            line,
            "steps 51.2k @ 10.2k/s | return 212.3 | v120 | pi -0.0123 vf 1.80e-6 H 0.612 | \
             actors 2 | learner-bound"
        );
        assert!(line.len() < 110, "{}", line.len());
        assert!(!line.contains("NaN"));
        assert!(lag(&StatusRow::default()).is_none());
    }
}
