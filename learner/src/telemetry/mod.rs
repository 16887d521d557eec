//! Telemetry: the typed status row and its metric table, the counters behind it, and the sinks
//! that read it (status line, `metrics.jsonl`/CSV and TensorBoard through the run directory,
//! Prometheus, bottleneck warnings).
//!
//! ```text
//! trainer: Progress ──close_interval──▶ StatusRow ◀── algorithm's fields, EdgeCounters, lag
//!                                          │
//!            ┌──────────────┬──────────────┼──────────────┬─────────────────┐
//!        log::status_line  RunDir (JSONL, CSV, TB)  StatusBoard → prometheus  Bottlenecks
//! ```

pub mod board;
pub mod bottleneck;
pub mod counters;
pub mod edge_counters;
pub mod lag;
pub mod log;
pub mod metrics;
pub mod progress;
pub mod prometheus;
pub mod tensorboard;

pub use board::StatusBoard;
pub use counters::{EpisodeWindow, RunCounters};
pub use edge_counters::EdgeCounters;
pub use metrics::{COLUMNS, METRICS, StatusRow};
pub use progress::Progress;
