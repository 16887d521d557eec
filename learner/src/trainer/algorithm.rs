//! What the trainer loop asks of an algorithm's training side ([`Algorithm`]), what it gives
//! it on every call ([`Cx`]), and why a run ends ([`Stop`]).

use std::path::Path;

use crossbeam_channel::Receiver;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shoal_common::config::RunConfig;
use shoal_common::normalize::NormStats;

use crate::checkpoint::CheckpointError;
use crate::params::Publisher;
use crate::telemetry::{Progress, RunCounters, StatusRow};

/// Why a run ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    /// Said in logs, to actors and in the summary.
    pub reason: String,
    /// The run reached its target.
    pub solved: bool,
}

impl Stop {
    /// A stop for `reason`.
    pub fn new(reason: impl Into<String>, solved: bool) -> Self {
        Self {
            reason: reason.into(),
            solved,
        }
    }

    /// The run ends when the mean return of the last 100 training episodes reaches
    /// `target_return`, or after `total_steps`.
    pub fn on_training_return(config: &RunConfig, counters: &RunCounters) -> Option<Stop> {
        if let (Some(target), Some(mean)) = (config.target_return, counters.recent.full_mean())
            && mean >= target
        {
            return Some(Stop::new(
                format!(
                    "target_return {target} reached: mean return {mean:.1} over the last 100 \
                     episodes"
                ),
                true,
            ));
        }
        Self::on_budget(config, counters)
    }

    /// The run ends after `total_steps`.
    pub fn on_budget(config: &RunConfig, counters: &RunCounters) -> Option<Stop> {
        (counters.env_steps >= config.total_steps)
            .then(|| Stop::new(format!("total_steps {} reached", config.total_steps), false))
    }
}

/// What an algorithm's training side gets on every call: the run's counters and lag, and the
/// publisher of new versions.
pub struct Cx<'a> {
    /// Counters and the interval's lag.
    pub progress: &'a mut Progress,
    /// Publishes versions.
    pub publisher: &'a Publisher,
}

/// The training side of an algorithm: the one owner of the model and optimizer, on the
/// trainer thread.
pub trait Algorithm {
    /// What its admission queues for it.
    type Item: Send + 'static;
    /// What it saves in a checkpoint beside the parameters (its own files aside).
    type State: Serialize + DeserializeOwned;

    /// Learns from `first` (and from whatever else it takes from `rx` in the same burst),
    /// publishes new versions, and says whether the run is over.
    fn handle(&mut self, first: Self::Item, rx: &Receiver<Self::Item>, cx: &mut Cx)
    -> Option<Stop>;

    /// Called on every turn of the loop, also when nothing arrived (PPO: stop waiting for
    /// missing actors).
    fn poll(&mut self, _cx: &mut Cx) -> Option<Stop> {
        None
    }

    /// Its quantities of the status interval that closes (`interval_secs` long).
    fn status(&mut self, row: &mut StatusRow, counters: &RunCounters, interval_secs: f64);

    /// Brings `counters` up to date with what it counts elsewhere (A3C: gradients refused at
    /// the door as stale), before they are reported or saved.
    fn count(&self, _counters: &mut RunCounters) {}

    /// The current parameters in layout order.
    fn params(&self) -> Vec<f32>;

    /// The normalisation statistics of the current version.
    fn normalization(&self) -> NormStats;

    /// Writes its own files (optimizer, ...) into a checkpoint directory; returns its state.
    fn save(&self, dir: &Path) -> Result<Self::State, CheckpointError>;

    /// Restores what [`Algorithm::save`] wrote.
    fn restore(&mut self, dir: &Path, state: Self::State) -> Result<(), CheckpointError>;
}
