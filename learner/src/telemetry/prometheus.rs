//! The Prometheus endpoint (`GET /metrics`, opt-in with `--metrics-listen`): the newest status
//! row through the metric table, and each actor's newest report with its name and id as
//! labels, in the Prometheus text format written by `prometheus-client`.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use shoal_common::security::Token;
use shoal_common::stats::ActorStats;
use tokio_util::sync::CancellationToken;

use super::board::StatusBoard;
use super::edge_counters::{EdgeCounters, bump};
use super::metrics::{Cell, Kind, METRICS, StatusRow};

/// One per-actor metric (`shoal_actor_*`, labelled `actor` and `actor_id`).
struct ActorMetric {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    value: fn(&ActorStats) -> Cell<'static>,
}

const ACTOR_METRICS: [ActorMetric; 6] = [
    ActorMetric {
        name: "actor_sps",
        kind: Kind::Gauge,
        help: "environment steps per second of the actor",
        value: |s| Cell::Number(s.sps),
    },
    ActorMetric {
        name: "actor_env_steps",
        kind: Kind::Counter,
        help: "environment steps the actor took",
        value: |s| Cell::Count(s.env_steps),
    },
    ActorMetric {
        name: "actor_episodes",
        kind: Kind::Counter,
        help: "episodes the actor finished",
        value: |s| Cell::Count(s.episodes),
    },
    ActorMetric {
        name: "actor_reconnects",
        kind: Kind::Counter,
        help: "reconnects of the actor to the learner",
        value: |s| Cell::Count(s.reconnects as u64),
    },
    ActorMetric {
        name: "actor_inference_seconds",
        kind: Kind::Gauge,
        help: "mean seconds per batched policy forward pass in the actor's last collection",
        value: |s| Cell::Number(s.inference_secs),
    },
    ActorMetric {
        name: "actor_idle_fraction",
        kind: Kind::Gauge,
        help: "share of the actor's wall time spent waiting on the learner instead of collecting",
        value: |s| s.idle_fraction.map_or(Cell::Empty, Cell::Number),
    },
];

/// Reads the board at every scrape: `shoal_<key>` for every numeric quantity of the newest row
/// (counters end in `_total`), `shoal_actor_*` per actor.
#[derive(Debug)]
struct StatusCollector(Arc<StatusBoard>);

/// The Prometheus type of a quantity (text has none).
fn metric_type(kind: Kind) -> Option<MetricType> {
    match kind {
        Kind::Counter => Some(MetricType::Counter),
        Kind::Gauge => Some(MetricType::Gauge),
        Kind::Text => None,
    }
}

/// Encodes one sample, if `cell` holds a finite number. Whole numbers are written without a
/// decimal point, as the exposition always wrote them (`50`, not `50.0`).
fn encode_value(
    encoder: prometheus_client::encoding::MetricEncoder,
    kind: Kind,
    cell: Cell,
) -> std::fmt::Result {
    match (kind, cell) {
        (Kind::Counter, Cell::Count(n)) => ConstCounter::new(n).encode(encoder),
        (Kind::Gauge, Cell::Count(n)) => ConstGauge::new(n).encode(encoder),
        (_, Cell::Number(x)) if x.fract() == 0.0 && x.abs() < 9.0e15 => {
            ConstGauge::new(x as i64).encode(encoder)
        }
        (_, Cell::Number(x)) if x.is_finite() => ConstGauge::new(x).encode(encoder),
        _ => Ok(()),
    }
}

impl Collector for StatusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        if let Some(row) = self.0.status() {
            encode_row(&mut encoder, &row)?;
        }
        let actors = self.0.reports();
        if actors.is_empty() {
            return Ok(());
        }
        for m in &ACTOR_METRICS {
            let Some(kind) = metric_type(m.kind) else {
                continue;
            };
            let mut family = encoder.encode_descriptor(m.name, m.help, None, kind)?;
            for (id, name, stats) in &actors {
                let labels = [("actor", name.clone()), ("actor_id", id.to_string())];
                encode_value(family.encode_family(&labels)?, m.kind, (m.value)(stats))?;
            }
        }
        Ok(())
    }
}

/// Every numeric quantity of `row` that has a value.
fn encode_row(encoder: &mut DescriptorEncoder, row: &StatusRow) -> std::fmt::Result {
    for m in METRICS {
        let cell = m.value(row);
        let finite = cell.as_f64().is_some_and(f64::is_finite);
        if let (Some(kind), true) = (metric_type(m.kind), finite) {
            let e = encoder.encode_descriptor(m.key, m.help(), None, kind)?;
            encode_value(e, m.kind, cell)?;
        }
    }
    Ok(())
}

/// The registry of the endpoint: everything under the `shoal_` prefix.
fn registry(board: Arc<StatusBoard>) -> Registry {
    let mut registry = Registry::with_prefix("shoal");
    registry.register_collector(Box::new(StatusCollector(board)));
    registry
}

/// The Prometheus text exposition of what `board` holds.
pub fn exposition(board: Arc<StatusBoard>) -> String {
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry(board))
        .expect("writing to a String cannot fail");
    out
}

/// Serves `GET /metrics` (the exposition of `board`) on `listener` until `shutdown`. With a
/// `token`, a scrape must carry it as `Authorization: Bearer <token>` (Prometheus:
/// `authorization: {credentials_file: ...}`); refusals count in `counters`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    board: Arc<StatusBoard>,
    counters: Arc<EdgeCounters>,
    token: Option<Token>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;
    let scrape = move |headers: HeaderMap| {
        let (board, counters, token) = (board.clone(), counters.clone(), token.clone());
        async move {
            if let Some(token) = &token
                && !headers
                    .get(header::AUTHORIZATION)
                    .is_some_and(|v| token.accepts(v.as_bytes()))
            {
                bump(&counters.refused_unauthenticated);
                return (StatusCode::UNAUTHORIZED, "missing or wrong token\n").into_response();
            }
            let content_type = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
            ([(header::CONTENT_TYPE, content_type)], exposition(board)).into_response()
        }
    };
    let app = axum::Router::new().route("/metrics", axum::routing::get(scrape));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_types_counters_and_actor_labels() {
        let board = Arc::new(StatusBoard::default());
        assert!(exposition(board.clone()).is_empty());
        board.set_status(StatusRow {
            env_steps: Some(100),
            sps: Some(12.5),
            entropy: None,
            ..StatusRow::default()
        });
        board.record_report(
            3,
            "host-\"1\"".to_string(),
            ActorStats {
                sps: 50.0,
                episodes: 4,
                reconnects: 1,
                inference_secs: 0.001,
                env_steps: 64,
                idle_fraction: None,
            },
        );
        let text = exposition(board);
        assert!(text.contains("# TYPE shoal_env_steps_total counter\nshoal_env_steps_total 100\n"));
        assert!(text.contains("# TYPE shoal_sps gauge\nshoal_sps 12.5\n"));
        assert!(!text.contains("shoal_entropy"));
        assert!(text.contains("shoal_actor_sps{actor=\"host-\\\"1\\\"\",actor_id=\"3\"} 50\n"));
        assert!(
            text.contains(
                "shoal_actor_reconnects_total{actor=\"host-\\\"1\\\"\",actor_id=\"3\"} 1\n"
            )
        );
    }
}
