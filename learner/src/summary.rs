//! What a finished run reports ([`RunSummary`]): why it stopped, and its counters.

use std::ops::Deref;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::telemetry::RunCounters;

/// What a finished run reports. It reads as its counters (`summary.env_steps`), which the JSON
/// form lists beside the rest. The run directory keeps it as `summary.json` (`shoal runs` reads
/// it back).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Why it stopped.
    pub reason: String,
    /// The run reached `target_return`.
    pub solved: bool,
    /// The run's counters, as the final checkpoint saved them.
    #[serde(flatten)]
    pub counters: RunCounters,
    /// Mean return of the last 100 episodes.
    pub return_mean_100: Option<f64>,
    /// Seconds of training (summed over resumes).
    pub wall_secs: f64,
    /// Seconds the trainer spent updating and publishing (the rest it waited for experience).
    pub update_secs: f64,
    /// Mean over the actors known at the end of the share of their wall time they spent
    /// waiting on the learner instead of collecting (PPO, IMPALA).
    #[serde(default)]
    pub actor_idle_fraction: Option<f64>,
    /// The run directory.
    pub run_dir: PathBuf,
}

impl Deref for RunSummary {
    type Target = RunCounters;

    fn deref(&self) -> &RunCounters {
        &self.counters
    }
}
