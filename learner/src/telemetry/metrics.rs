//! The one table of status quantities: the typed [`StatusRow`] and, declared with it, each
//! metric's key (the `metrics.jsonl` key, the CSV column and the Prometheus name), kind, help
//! text and TensorBoard tag ([`METRICS`]). Every sink reads the typed row through this table,
//! so a misspelt quantity is a compile error.
//!
//! Names follow CleanRL and Sample Factory where they have the quantity. A field is `None`
//! where the quantity does not apply to the run's algorithm (an empty CSV cell, `null` in
//! `metrics.jsonl`, no Prometheus sample, no TensorBoard point).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How a quantity behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows over the run (Prometheus: a counter, named `shoal_<key>_total`).
    Counter,
    /// Goes up and down (Prometheus: a gauge, `shoal_<key>`).
    Gauge,
    /// Text (CSV and JSONL only).
    Text,
}

/// Where a quantity goes in TensorBoard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// CleanRL's tag for the quantity.
    Named(&'static str),
    /// Sample Factory's `perf/<key>` (throughput, lag, the learner's load).
    Perf,
    /// `shoal/<key>`.
    Shoal,
    /// Not a TensorBoard scalar.
    None,
}

/// One cell of a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// The quantity does not apply (or is not known yet).
    Empty,
    /// A count.
    Count(u64),
    /// A measurement.
    Number(f64),
    /// Text.
    Text(&'a str),
}

impl Cell<'_> {
    /// The cell as a number, if it is one.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Cell::Count(n) => Some(n as f64),
            Cell::Number(x) => Some(x),
            Cell::Empty | Cell::Text(_) => None,
        }
    }
}

/// Turns a row field into a [`Cell`].
trait ToCell {
    fn cell(&self) -> Cell<'_>;
}

impl ToCell for Option<u64> {
    fn cell(&self) -> Cell<'_> {
        self.map_or(Cell::Empty, Cell::Count)
    }
}

impl ToCell for Option<f64> {
    fn cell(&self) -> Cell<'_> {
        self.map_or(Cell::Empty, Cell::Number)
    }
}

impl ToCell for Option<String> {
    fn cell(&self) -> Cell<'_> {
        self.as_deref().map_or(Cell::Empty, Cell::Text)
    }
}

/// One status quantity.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// The `metrics.jsonl` key and `metrics.csv` column.
    pub key: &'static str,
    /// How it behaves.
    pub kind: Kind,
    /// What it means.
    pub help: &'static str,
    /// Its TensorBoard tag.
    pub tag: Tag,
    value: for<'a> fn(&'a StatusRow) -> Cell<'a>,
}

impl Metric {
    /// This quantity in `row`.
    pub fn value<'a>(&self, row: &'a StatusRow) -> Cell<'a> {
        (self.value)(row)
    }

    /// The TensorBoard tag, if it is a TensorBoard scalar.
    pub fn tensorboard_tag(&self) -> Option<String> {
        match self.tag {
            Tag::Named(tag) => Some(tag.to_string()),
            Tag::Perf => Some(format!("perf/{}", self.key)),
            Tag::Shoal => Some(format!("shoal/{}", self.key)),
            Tag::None => None,
        }
    }

    /// The help text without the doc comment's leading space.
    pub fn help(&self) -> &'static str {
        self.help.trim()
    }
}

/// TensorBoard tag of each finished episode's return, one point per episode at the env steps
/// counted when it arrived (as CleanRL logs it); the status row's `return_mean_100` is the
/// window's mean.
pub const EPISODE_RETURN_TAG: &str = "charts/episodic_return";
/// TensorBoard tag of each finished episode's length.
pub const EPISODE_LENGTH_TAG: &str = "charts/episodic_length";

/// Declares [`StatusRow`] (one `Option` field per quantity), [`METRICS`] and [`COLUMNS`] from
/// one list, in CSV column order.
macro_rules! status_table {
    ($( #[doc = $help:literal] $key:ident : $ty:ty, $kind:ident, $tag:expr; )+) => {
        /// One status interval: every quantity of the status line and of one `metrics.jsonl`
        /// row (`None`: does not apply to the run's algorithm, or not known yet).
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct StatusRow {
            $( #[doc = $help] pub $key: Option<$ty>, )+
            /// The newest report of each actor, by name (`metrics.jsonl` only).
            pub per_actor: BTreeMap<String, ActorReport>,
        }

        /// Every quantity, in `metrics.csv` column order.
        pub const METRICS: &[Metric] = &[$(
            Metric {
                key: stringify!($key),
                kind: Kind::$kind,
                help: $help,
                tag: $tag,
                value: |row| row.$key.cell(),
            },
        )+];

        /// The `metrics.csv` columns (the keys of [`METRICS`]).
        pub const COLUMNS: &[&str] = &[$( stringify!($key) ),+];
    };
}

status_table! {
    /// Seconds since the run started (summed over resumes).
    time_s: f64, Gauge, Tag::None;
    /// Environment steps of the experience the learner admitted.
    env_steps: u64, Counter, Tag::Shoal;
    /// Environment steps per second in the interval.
    sps: f64, Gauge, Tag::Named("charts/SPS");
    /// Updates done.
    updates: u64, Counter, Tag::Shoal;
    /// The current parameter version (1 = initial).
    version: u64, Gauge, Tag::Shoal;
    /// Finished episodes.
    episodes: u64, Counter, Tag::Shoal;
    /// Mean return of the last 100 finished episodes.
    return_mean_100: f64, Gauge, Tag::Shoal;
    /// Best return of the last 100 finished episodes.
    return_max_100: f64, Gauge, Tag::Shoal;
    /// Mean length of the last 100 finished episodes.
    length_mean_100: f64, Gauge, Tag::Shoal;
    /// Mean return of the last greedy evaluation (DQN).
    eval_return_mean: f64, Gauge, Tag::Named("eval/episodic_return");
    /// Policy loss of the last update (A3C: mean over the interval's gradients).
    policy_loss: f64, Gauge, Tag::Named("losses/policy_loss");
    /// Value loss of the last update (A3C: mean over the interval's gradients).
    value_loss: f64, Gauge, Tag::Named("losses/value_loss");
    /// Mean policy entropy of the last update (A3C: of the interval's gradients).
    entropy: f64, Gauge, Tag::Named("losses/entropy");
    /// Approximate KL between the behaviour and the updated policy (PPO).
    approx_kl: f64, Gauge, Tag::Named("losses/approx_kl");
    /// Fraction of clipped probability ratios (PPO).
    clipfrac: f64, Gauge, Tag::Named("losses/clipfrac");
    /// How much of the return variance the value function explains (PPO).
    explained_variance: f64, Gauge, Tag::Named("losses/explained_variance");
    /// Global gradient norm before clipping.
    grad_norm: f64, Gauge, Tag::Shoal;
    /// Learning rate of the last update.
    learning_rate: f64, Gauge, Tag::Named("charts/learning_rate");
    /// Smallest policy lag (versions behind) of the interval's experience.
    version_diff_min: u64, Gauge, Tag::Perf;
    /// Mean policy lag of the interval's experience.
    version_diff_avg: f64, Gauge, Tag::Perf;
    /// Median policy lag of the interval's experience.
    version_diff_p50: u64, Gauge, Tag::Perf;
    /// 90th percentile of the policy lag of the interval's experience.
    version_diff_p90: u64, Gauge, Tag::Perf;
    /// Largest policy lag of the interval's experience.
    version_diff_max: u64, Gauge, Tag::Perf;
    /// Actors with an open parameter subscription, or that pushed within the actor timeout.
    connected_actors: u64, Gauge, Tag::Shoal;
    /// Items waiting for the trainer.
    queue_depth: u64, Gauge, Tag::Perf;
    /// Fraction of the interval the trainer spent learning (not waiting).
    learner_busy: f64, Gauge, Tag::Perf;
    /// Rollouts trained on (PPO).
    rollouts_used: u64, Counter, Tag::Shoal;
    /// Rollouts dropped as made with an older version (PPO) or masked for their lag (IMPALA).
    rollouts_stale: u64, Counter, Tag::Shoal;
    /// Samples left out of the loss as more than `max_policy_lag` versions old (IMPALA).
    samples_masked: u64, Counter, Tag::Shoal;
    /// Share of the interval's samples left out of the loss for their policy lag (IMPALA).
    masked_fraction: f64, Gauge, Tag::Perf;
    /// Pushes refused because the trainer's queue was full.
    queue_full: u64, Counter, Tag::Shoal;
    /// Pushes taken without their episode statistics (more episode steps than pushed).
    episode_claims_dropped: u64, Counter, Tag::Shoal;
    /// Longest wait of the trainer for a batch to fill in the interval, seconds (PPO).
    longest_wait_s: f64, Gauge, Tag::Shoal;
    /// Longest wait for missing actors' rollouts over the run, seconds (PPO).
    longest_stall_s: f64, Gauge, Tag::Shoal;
    /// Updates on fewer rollouts than asked (or deterministic DQN rounds) for missing actors.
    partial_updates: u64, Counter, Tag::Shoal;
    /// Updates undone because a parameter would have become non-finite.
    nonfinite_updates: u64, Counter, Tag::Shoal;
    /// Actors forgotten after the actor timeout.
    actors_timed_out: u64, Counter, Tag::Shoal;
    /// Gradients applied (A3C).
    gradients_applied: u64, Counter, Tag::Shoal;
    /// Gradients applied per second in the interval (A3C).
    gradients_applied_per_s: f64, Gauge, Tag::Perf;
    /// Gradients dropped as more than `a3c.max_staleness` versions old (A3C).
    gradients_stale: u64, Counter, Tag::Shoal;
    /// Gradients dropped as stale per second in the interval (A3C).
    gradients_stale_per_s: f64, Gauge, Tag::Shoal;
    /// Transitions in the replay buffer (DQN).
    replay_size: u64, Gauge, Tag::Shoal;
    /// Updates per transition inserted since learning started (DQN).
    replay_ratio: f64, Gauge, Tag::Shoal;
    /// Smallest ε of the actors' exploration schedule (DQN).
    epsilon_min: f64, Gauge, Tag::Shoal;
    /// Largest ε of the actors' exploration schedule (DQN).
    epsilon_max: f64, Gauge, Tag::Shoal;
    /// Mean Q(s, a) of the last update's batch (DQN).
    q_mean: f64, Gauge, Tag::Named("losses/q_values");
    /// Mean absolute TD error of the last update's batch (DQN).
    td_error: f64, Gauge, Tag::Shoal;
    /// Huber loss of the last update (DQN).
    dqn_loss: f64, Gauge, Tag::Named("losses/td_loss");
    /// Requests refused so far, for any reason.
    refused: u64, Counter, Tag::Shoal;
    /// Rollouts refused as malformed.
    rollouts_rejected: u64, Counter, Tag::Shoal;
    /// Gradients refused as malformed.
    gradients_rejected: u64, Counter, Tag::Shoal;
    /// Transition batches refused as malformed.
    transitions_rejected: u64, Counter, Tag::Shoal;
    /// Requests refused for a missing or wrong token.
    refused_unauthenticated: u64, Counter, Tag::Shoal;
    /// Calls naming an actor id the learner does not know.
    refused_unknown_actor: u64, Counter, Tag::Shoal;
    /// Calls from a client that builds another model.
    refused_fingerprint: u64, Counter, Tag::Shoal;
    /// Pushes claiming a parameter version the learner never published.
    refused_future_version: u64, Counter, Tag::Shoal;
    /// Registrations speaking another protocol version.
    refused_protocol: u64, Counter, Tag::Shoal;
    /// Pushes of another algorithm's experience.
    refused_wrong_algorithm: u64, Counter, Tag::Shoal;
    /// Registrations stating another environment, environment count or model.
    refused_environment: u64, Counter, Tag::Shoal;
    /// Connections closed at the connection limit (new, or unauthenticated and displaced).
    refused_connections: u64, Counter, Tag::Shoal;
    /// Parameter subscriptions refused by a stream limit.
    refused_streams: u64, Counter, Tag::Shoal;
    /// Messages over the run's size limit.
    refused_oversized: u64, Counter, Tag::Shoal;
    /// Messages that are not valid protobuf.
    refused_undecodable: u64, Counter, Tag::Shoal;
    /// Sampled KL to the reference policy, nats per step of the last batch (PPO with a KL leash).
    kl_ref: f64, Gauge, Tag::Named("objective/kl");
    /// β of the KL leash applied to the last batch (PPO with a KL leash).
    kl_ref_coef: f64, Gauge, Tag::Named("objective/kl_coef");
    /// The bottlenecks named in the interval, comma-separated.
    bottleneck: String, Text, Tag::None;
}

/// An actor's newest report, as `metrics.jsonl` lists it under `per_actor`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ActorReport {
    /// The actor's id.
    pub actor_id: u32,
    /// Environment steps per second since its previous push.
    pub sps: f64,
    /// Environment steps it took.
    pub env_steps: u64,
    /// Episodes it finished.
    pub episodes: u64,
    /// Its reconnects to the learner.
    pub reconnects: u32,
    /// Mean seconds per batched forward pass in its last collection.
    pub inference_secs: f64,
    /// Share of its wall time it spent waiting on the learner (PPO, IMPALA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_fraction: Option<f64>,
}

/// `metrics.csv`'s header line.
pub fn csv_header() -> String {
    COLUMNS.join(",")
}

/// One `metrics.csv` line: counts as integers, measurements as JSON writes them, empty cells
/// where a quantity does not apply (or is not finite), text quoted.
pub fn csv_line(row: &StatusRow) -> String {
    METRICS
        .iter()
        .map(|m| match m.value(row) {
            Cell::Empty => String::new(),
            Cell::Count(n) => n.to_string(),
            Cell::Number(x) if x.is_finite() => serde_json::Value::from(x).to_string(),
            Cell::Number(_) => String::new(),
            Cell::Text(s) => format!("\"{}\"", s.replace('"', "\"\"")),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The row's quantities as TensorBoard scalars (finite numbers only).
pub fn tensorboard_scalars(row: &StatusRow) -> Vec<(String, f32)> {
    METRICS
        .iter()
        .filter_map(|m| Some((m.tensorboard_tag()?, m.value(row).as_f64()? as f32)))
        .filter(|(_, v)| v.is_finite())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_follow_the_columns_and_quote_strings() {
        let row = StatusRow {
            time_s: Some(1.5),
            env_steps: Some(10),
            bottleneck: Some("learner-bound, \"x\"".into()),
            ..StatusRow::default()
        };
        let line = csv_line(&row);
        assert_eq!(line.split(',').count(), COLUMNS.len() + 1); // the string holds a comma
        assert!(line.starts_with("1.5,10,,"));
        assert!(line.ends_with("\"learner-bound, \"\"x\"\"\""));
        assert_eq!(csv_header().split(',').count(), COLUMNS.len());
    }

    #[test]
    fn tags_follow_cleanrl_where_it_names_the_quantity() {
        let tag = |key: &str| {
            METRICS
                .iter()
                .find(|m| m.key == key)
                .and_then(Metric::tensorboard_tag)
                .unwrap()
        };
        assert_eq!(tag("return_mean_100"), "shoal/return_mean_100");
        assert_eq!(tag("approx_kl"), "losses/approx_kl");
        assert_eq!(tag("version_diff_avg"), "perf/version_diff_avg");
        assert_eq!(tag("replay_size"), "shoal/replay_size");
        let row = StatusRow {
            sps: Some(5.0),
            time_s: Some(1.0),
            ..StatusRow::default()
        };
        assert_eq!(
            tensorboard_scalars(&row),
            vec![("charts/SPS".to_string(), 5.0)]
        );
    }

    /// The names users' dashboards and scripts rely on: CSV columns (also the `metrics.jsonl`
    /// keys), Prometheus names and TensorBoard tags, compared with the committed list.
    #[test]
    fn names_match_the_committed_list() {
        let listed: Vec<String> = METRICS
            .iter()
            .map(|m| {
                let prometheus = match m.kind {
                    Kind::Counter => format!("shoal_{}_total", m.key),
                    Kind::Gauge => format!("shoal_{}", m.key),
                    Kind::Text => "-".into(),
                };
                let tag = m.tensorboard_tag().unwrap_or_else(|| "-".into());
                format!("{} {prometheus} {tag}", m.key)
            })
            .collect();
        let committed = include_str!("metric_names.txt");
        let committed: Vec<&str> = committed
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert_eq!(listed, committed);
    }

    #[test]
    fn rows_round_trip_through_json_with_nulls_for_what_does_not_apply() {
        let row = StatusRow {
            env_steps: Some(7),
            entropy: None,
            ..StatusRow::default()
        };
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(json["env_steps"], 7);
        assert!(json["entropy"].is_null());
        assert_eq!(serde_json::from_value::<StatusRow>(json).unwrap(), row);
        // Rows written before a quantity existed read back with it empty.
        let old: StatusRow = serde_json::from_str(r#"{"env_steps": 3, "gone": 1}"#).unwrap();
        assert_eq!(old.env_steps, Some(3));
    }
}
