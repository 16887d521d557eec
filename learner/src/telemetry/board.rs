//! The newest status row and each actor's newest report, where the Prometheus endpoint reads
//! them: the trainer writes the row, the edge writes the reports.

use std::collections::BTreeMap;
use std::sync::{Mutex, RwLock};

use shoal_common::stats::ActorStats;

use super::metrics::{ActorReport, StatusRow};

/// See the module docs.
#[derive(Debug, Default)]
pub struct StatusBoard {
    status: RwLock<Option<StatusRow>>,
    reports: Mutex<BTreeMap<u32, (String, ActorStats)>>,
}

impl StatusBoard {
    /// Keeps `row` as the newest status.
    pub fn set_status(&self, row: StatusRow) {
        *self.status.write().expect("status lock") = Some(row);
    }

    /// The newest status row, if one was written.
    pub fn status(&self) -> Option<StatusRow> {
        self.status.read().expect("status lock").clone()
    }

    /// Keeps `stats` as actor `actor_id`'s (named `name`) newest report.
    pub fn record_report(&self, actor_id: u32, name: String, stats: ActorStats) {
        self.reports
            .lock()
            .expect("reports lock")
            .insert(actor_id, (name, stats));
    }

    /// Drops the report of an actor the learner forgot.
    pub fn forget(&self, actor_id: u32) {
        self.reports.lock().expect("reports lock").remove(&actor_id);
    }

    /// The newest report of every known actor: id, name, report.
    pub fn reports(&self) -> Vec<(u32, String, ActorStats)> {
        self.reports
            .lock()
            .expect("reports lock")
            .iter()
            .map(|(&id, (name, s))| (id, name.clone(), *s))
            .collect()
    }

    /// The reports as a status row lists them, by actor name.
    pub fn per_actor(&self) -> BTreeMap<String, ActorReport> {
        self.reports()
            .into_iter()
            .map(|(actor_id, name, s)| {
                let report = ActorReport {
                    actor_id,
                    sps: s.sps,
                    env_steps: s.env_steps,
                    episodes: s.episodes,
                    reconnects: s.reconnects,
                    inference_secs: s.inference_secs,
                    idle_fraction: s.idle_fraction,
                };
                (name, report)
            })
            .collect()
    }
}
