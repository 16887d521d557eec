//! The status line: one structured `tracing` event (target `shoal::status`) per status
//! interval, read from the typed row. Quantities that do not apply to the run's algorithm are
//! `None` in the row and absent from the line.

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

/// `min/avg/max` of the interval's policy lag (`-` where unknown).
fn lag(row: &StatusRow) -> String {
    let n = |x: Option<u64>| x.map_or("-".into(), |v| v.to_string());
    format!(
        "{}/{:.2}/{}",
        n(row.version_diff_min),
        row.version_diff_avg.unwrap_or(f64::NAN),
        n(row.version_diff_max)
    )
}

/// Logs `row` as the status line.
pub fn status_line(row: &StatusRow) {
    let epsilon = row
        .epsilon_min
        .zip(row.epsilon_max)
        .map(|(lo, hi)| format!("{lo:.3}-{hi:.3}"));
    tracing::info!(
        target: "shoal::status",
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
        refused = row.refused,
        bottleneck = row.bottleneck.as_deref().unwrap_or_default(),
        "status"
    );
}
