//! Where the status quantities go besides the log line: the CSV columns, the TensorBoard tags
//! (CleanRL's names where CleanRL has the quantity), the Prometheus exposition with per-actor
//! labels, and the warnings that name the bottleneck.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::Value;
use shoal_common::stats::ActorStats;

/// Every metrics-row quantity, in the order of `metrics.csv`'s columns (`metrics.jsonl` rows
/// have the same keys, plus `per_actor`).
pub const COLUMNS: &[&str] = &[
    "time_s",
    "env_steps",
    "sps",
    "updates",
    "version",
    "episodes",
    "return_mean_100",
    "return_max_100",
    "length_mean_100",
    "eval_return_mean",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clipfrac",
    "explained_variance",
    "grad_norm",
    "learning_rate",
    "version_diff_min",
    "version_diff_avg",
    "version_diff_p50",
    "version_diff_p90",
    "version_diff_max",
    "connected_actors",
    "queue_depth",
    "learner_busy",
    "rollouts_used",
    "rollouts_stale",
    "queue_full",
    "longest_wait_s",
    "longest_stall_s",
    "partial_updates",
    "nonfinite_updates",
    "actors_timed_out",
    "gradients_applied",
    "gradients_applied_per_s",
    "gradients_stale",
    "gradients_stale_per_s",
    "replay_size",
    "replay_ratio",
    "epsilon_min",
    "epsilon_max",
    "q_mean",
    "td_error",
    "dqn_loss",
    "refused",
    "rollouts_rejected",
    "gradients_rejected",
    "transitions_rejected",
    "refused_unauthenticated",
    "refused_unknown_actor",
    "refused_fingerprint",
    "refused_future_version",
    "refused_protocol",
    "refused_wrong_algorithm",
    "refused_oversized",
    "refused_undecodable",
    "bottleneck",
];

/// Quantities that only grow (Prometheus counters, exported with a `_total` suffix).
const COUNTERS: &[&str] = &[
    "env_steps",
    "updates",
    "episodes",
    "rollouts_used",
    "rollouts_stale",
    "queue_full",
    "partial_updates",
    "nonfinite_updates",
    "actors_timed_out",
    "gradients_applied",
    "gradients_stale",
    "refused",
    "rollouts_rejected",
    "gradients_rejected",
    "transitions_rejected",
    "refused_unauthenticated",
    "refused_unknown_actor",
    "refused_fingerprint",
    "refused_future_version",
    "refused_protocol",
    "refused_wrong_algorithm",
    "refused_oversized",
    "refused_undecodable",
];

/// The TensorBoard tag of a quantity: CleanRL's (`charts/`, `losses/`, `eval/`) where it has
/// one, Sample Factory's `perf/` for throughput and policy lag, `shoal/` for the rest.
pub fn tensorboard_tag(key: &str) -> String {
    let tag = match key {
        "return_mean_100" => "charts/episodic_return",
        "length_mean_100" => "charts/episodic_length",
        "sps" => "charts/SPS",
        "learning_rate" => "charts/learning_rate",
        "policy_loss" => "losses/policy_loss",
        "value_loss" => "losses/value_loss",
        "entropy" => "losses/entropy",
        "approx_kl" => "losses/approx_kl",
        "clipfrac" => "losses/clipfrac",
        "explained_variance" => "losses/explained_variance",
        "q_mean" => "losses/q_values",
        "dqn_loss" => "losses/td_loss",
        "eval_return_mean" => "eval/episodic_return",
        "version_diff_min"
        | "version_diff_avg"
        | "version_diff_max"
        | "version_diff_p50"
        | "version_diff_p90"
        | "learner_busy"
        | "queue_depth"
        | "gradients_applied_per_s" => {
            return format!("perf/{key}");
        }
        _ => return format!("shoal/{key}"),
    };
    tag.to_string()
}

/// The numeric quantities of a row as TensorBoard scalars.
pub fn tensorboard_scalars(row: &Value) -> Vec<(String, f32)> {
    COLUMNS
        .iter()
        .filter(|k| **k != "time_s")
        .filter_map(|k| Some((tensorboard_tag(k), row.get(*k)?.as_f64()? as f32)))
        .filter(|(_, v)| v.is_finite())
        .collect()
}

/// `metrics.csv`'s header line.
pub fn csv_header() -> String {
    COLUMNS.join(",")
}

/// One `metrics.csv` line: numbers as JSON writes them, empty cells for missing values,
/// strings quoted.
pub fn csv_line(row: &Value) -> String {
    COLUMNS
        .iter()
        .map(|k| match row.get(*k) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => format!("\"{}\"", s.replace('"', "\"\"")),
            Some(v) => v.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A Prometheus label value, escaped.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition of the newest status `row` and the actors' reports:
/// `shoal_<quantity>` (counters end in `_total`) and `shoal_actor_*{actor="NAME",actor_id="ID"}`.
pub fn prometheus_text(row: Option<&Value>, actors: &[(u32, String, ActorStats)]) -> String {
    let mut out = String::new();
    if let Some(row) = row {
        for key in COLUMNS {
            let Some(v) = row.get(*key).and_then(Value::as_f64) else {
                continue;
            };
            let counter = COUNTERS.contains(key);
            let name = if counter {
                format!("shoal_{key}_total")
            } else {
                format!("shoal_{key}")
            };
            let kind = if counter { "counter" } else { "gauge" };
            let _ = writeln!(
                out,
                "# HELP {name} shoal status quantity `{key}` (README, Monitoring)."
            );
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {v}");
        }
    }
    if !actors.is_empty() {
        for m in ACTOR_METRICS {
            let _ = writeln!(out, "# HELP {} {}.", m.name, m.help);
            let _ = writeln!(out, "# TYPE {} {}", m.name, m.kind);
            for (id, actor, stats) in actors {
                let _ = writeln!(
                    out,
                    "{}{{actor=\"{}\",actor_id=\"{id}\"}} {}",
                    m.name,
                    label(actor),
                    (m.value)(stats)
                );
            }
        }
    }
    out
}

/// One per-actor metric.
struct ActorMetric {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&ActorStats) -> f64,
}

const ACTOR_METRICS: [ActorMetric; 5] = [
    ActorMetric {
        name: "shoal_actor_sps",
        kind: "gauge",
        help: "environment steps per second of the actor",
        value: |s| s.sps,
    },
    ActorMetric {
        name: "shoal_actor_env_steps_total",
        kind: "counter",
        help: "environment steps the actor took",
        value: |s| s.env_steps as f64,
    },
    ActorMetric {
        name: "shoal_actor_episodes_total",
        kind: "counter",
        help: "episodes the actor finished",
        value: |s| s.episodes as f64,
    },
    ActorMetric {
        name: "shoal_actor_reconnects_total",
        kind: "counter",
        help: "reconnects of the actor to the learner",
        value: |s| s.reconnects as f64,
    },
    ActorMetric {
        name: "shoal_actor_inference_seconds",
        kind: "gauge",
        help: "mean seconds per batched policy forward pass in the actor's last collection",
        value: |s| s.inference_secs,
    },
];

/// Serves `GET /metrics` (the Prometheus text exposition of `shared`'s newest status and actor
/// reports) on `listener` until `shutdown`. With a `token`, a scrape must carry it as
/// `Authorization: Bearer <token>` (Prometheus: `authorization: {credentials_file: ...}`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: std::sync::Arc<crate::service::Shared>,
    token: Option<shoal_common::security::Token>,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;
    let scrape = move |headers: HeaderMap| {
        let shared = shared.clone();
        let token = token.clone();
        async move {
            if let Some(token) = &token
                && !headers
                    .get(header::AUTHORIZATION)
                    .is_some_and(|v| token.accepts(v.as_bytes()))
            {
                shared
                    .counters
                    .refused_unauthenticated
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return (StatusCode::UNAUTHORIZED, "missing or wrong token\n").into_response();
            }
            let text = prometheus_text(shared.status().as_ref(), &shared.actor_reports());
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                text,
            )
                .into_response()
        }
    };
    let app = axum::Router::new().route("/metrics", axum::routing::get(scrape));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Names the bottleneck from consecutive status rows, as Sample Factory's reports do, and
/// rate-limits the warnings (each kind at most once per [`Bottlenecks::REPEAT`]).
#[derive(Debug)]
pub struct Bottlenecks {
    capacity: u64,
    previous: Option<Value>,
    lag_rises: u32,
    last_warned: HashMap<&'static str, Instant>,
}

/// The kinds of bottleneck and what to do about each.
const ADVICE: [(&str, &str); 4] = [
    (
        "learner-bound",
        "the learner updated nearly all the interval or its queue was full: actors produce \
         faster than it learns (a faster device or cheaper updates help; more actors do not)",
    ),
    (
        "actor-bound",
        "the learner was idle most of the interval with an empty queue: experience arrives too \
         slowly (more actors or environments per actor help)",
    ),
    (
        "policy-lag-growing",
        "experience is made with ever older parameters (the learner falls behind, or versions \
         reach the actors late)",
    ),
    (
        "stale-data-rising",
        "a growing share of the experience arrives too old to be used and is dropped",
    ),
];

impl Bottlenecks {
    /// Warnings of one kind come at most this often.
    pub const REPEAT: Duration = Duration::from_secs(30);

    /// For a learner whose queue holds `capacity` items.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity as u64,
            previous: None,
            lag_rises: 0,
            last_warned: HashMap::new(),
        }
    }

    /// The bottlenecks `row` shows (after the previous row); logs a warning for each, unless
    /// one of its kind was logged within [`Bottlenecks::REPEAT`].
    pub fn check(&mut self, row: &Value) -> Vec<&'static str> {
        let kinds = self.detect(row);
        for kind in &kinds {
            if self
                .last_warned
                .get(kind)
                .is_none_or(|t| t.elapsed() >= Self::REPEAT)
            {
                self.last_warned.insert(kind, Instant::now());
                let advice = ADVICE.iter().find(|(k, _)| k == kind).map_or("", |a| a.1);
                tracing::warn!(
                    target: "shoal::status",
                    bottleneck = kind,
                    queue_depth = row["queue_depth"].as_u64(),
                    learner_busy = row["learner_busy"].as_f64(),
                    lag_avg = row["version_diff_avg"].as_f64(),
                    "bottleneck: {advice}"
                );
            }
        }
        kinds
    }

    /// The pure part of [`Bottlenecks::check`].
    pub fn detect(&mut self, row: &Value) -> Vec<&'static str> {
        let num = |r: &Value, k: &str| r.get(k).and_then(Value::as_f64);
        let mut kinds = Vec::new();
        let Some(prev) = self.previous.replace(row.clone()) else {
            return kinds;
        };
        let delta = |k: &str| num(row, k).unwrap_or(0.0) - num(&prev, k).unwrap_or(0.0);
        let depth = num(row, "queue_depth").unwrap_or(0.0);
        let busy = num(row, "learner_busy").unwrap_or(0.0);
        if delta("queue_full") > 0.0 || depth >= 0.75 * self.capacity as f64 || busy >= 0.9 {
            kinds.push("learner-bound");
        }
        let actors = num(row, "connected_actors").unwrap_or(0.0);
        if busy < 0.5 && depth == 0.0 && actors > 0.0 && delta("env_steps") > 0.0 {
            kinds.push("actor-bound");
        }
        match (num(row, "version_diff_avg"), num(&prev, "version_diff_avg")) {
            (Some(now), Some(before)) if now > before => self.lag_rises += 1,
            _ => self.lag_rises = 0,
        }
        if self.lag_rises >= 3 && num(row, "version_diff_avg").unwrap_or(0.0) > 1.0 {
            kinds.push("policy-lag-growing");
        }
        let stale = delta("rollouts_stale") + delta("gradients_stale");
        let used = delta("rollouts_used") + delta("gradients_applied");
        if stale > 0.0 && stale > 0.25 * (stale + used) {
            kinds.push("stale-data-rising");
        }
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_lines_follow_the_columns_and_quote_strings() {
        let row = json!({"time_s": 1.5, "env_steps": 10, "bottleneck": "learner-bound, \"x\""});
        let line = csv_line(&row);
        assert_eq!(line.split(',').count(), COLUMNS.len() + 1); // the string holds a comma
        assert!(line.starts_with("1.5,10,,"));
        assert!(line.ends_with("\"learner-bound, \"\"x\"\"\""));
        assert_eq!(csv_header().split(',').count(), COLUMNS.len());
    }

    #[test]
    fn tags_follow_cleanrl_where_it_names_the_quantity() {
        assert_eq!(tensorboard_tag("return_mean_100"), "charts/episodic_return");
        assert_eq!(tensorboard_tag("approx_kl"), "losses/approx_kl");
        assert_eq!(tensorboard_tag("version_diff_avg"), "perf/version_diff_avg");
        assert_eq!(tensorboard_tag("replay_size"), "shoal/replay_size");
        let scalars = tensorboard_scalars(&json!({"sps": 5.0, "entropy": null, "time_s": 1}));
        assert_eq!(scalars, vec![("charts/SPS".to_string(), 5.0)]);
    }

    #[test]
    fn prometheus_text_has_types_counters_and_actor_labels() {
        let row = json!({"env_steps": 100, "sps": 12.5, "entropy": null});
        let actors = [(
            3,
            "host-\"1\"".to_string(),
            ActorStats {
                sps: 50.0,
                episodes: 4,
                reconnects: 1,
                inference_secs: 0.001,
                env_steps: 64,
            },
        )];
        let text = prometheus_text(Some(&row), &actors);
        assert!(text.contains("# TYPE shoal_env_steps_total counter\nshoal_env_steps_total 100\n"));
        assert!(text.contains("# TYPE shoal_sps gauge\nshoal_sps 12.5\n"));
        assert!(!text.contains("shoal_entropy"));
        assert!(text.contains("shoal_actor_sps{actor=\"host-\\\"1\\\"\",actor_id=\"3\"} 50\n"));
        assert!(
            text.contains(
                "shoal_actor_reconnects_total{actor=\"host-\\\"1\\\"\",actor_id=\"3\"} 1\n"
            )
        );
        assert!(prometheus_text(None, &[]).is_empty());
    }

    #[test]
    fn bottlenecks_are_named_from_consecutive_rows() {
        let mut b = Bottlenecks::new(64);
        let row =
            |steps: u64, full: u64, depth: u64, busy: f64, lag: f64, stale: u64, used: u64| {
                json!({"env_steps": steps, "queue_full": full, "queue_depth": depth,
                   "learner_busy": busy, "connected_actors": 2, "version_diff_avg": lag,
                   "rollouts_stale": stale, "rollouts_used": used})
            };
        let none: [&str; 0] = [];
        assert_eq!(
            b.detect(&row(0, 0, 0, 0.6, 0.0, 0, 0)),
            none,
            "no previous row"
        );
        assert_eq!(b.detect(&row(100, 0, 3, 0.6, 0.2, 0, 10)), none);
        // The queue filled up, or the learner updated nearly all the time.
        assert_eq!(
            b.detect(&row(200, 5, 60, 0.6, 0.1, 0, 20)),
            ["learner-bound"]
        );
        assert_eq!(
            b.detect(&row(250, 5, 0, 0.95, 0.1, 0, 25)),
            ["learner-bound"]
        );
        // Idle with an empty queue.
        assert_eq!(b.detect(&row(300, 5, 0, 0.1, 0.1, 0, 30)), ["actor-bound"]);
        // 9 of 10 rollouts too old.
        assert_eq!(
            b.detect(&row(400, 5, 1, 0.6, 0.1, 9, 31)),
            ["stale-data-rising"]
        );
        // Lag up three intervals in a row, above one version.
        assert_eq!(b.detect(&row(500, 5, 1, 0.6, 1.5, 9, 40)), none);
        assert_eq!(b.detect(&row(600, 5, 1, 0.6, 2.0, 9, 50)), none);
        assert_eq!(
            b.detect(&row(700, 5, 1, 0.6, 2.5, 9, 60)),
            ["policy-lag-growing"]
        );
    }
}
