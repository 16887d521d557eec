//! The `[learner]` section: the learner process's settings and their ranges.

use serde::{Deserialize, Serialize};

use super::limits::LimitsConfig;
use super::range::{Bound, Invalid, Range, Section};

/// Where the learner trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// A real GPU through wgpu when one is found, else flex. Software adapters never win.
    #[default]
    Auto,
    /// burn's pure-Rust CPU backend.
    Flex,
    /// burn's wgpu backend, whatever adapter it finds (including software ones).
    Wgpu,
}

/// The compute engine every network of the run is computed with (learner and actors), chosen
/// once at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// The host's own CPU kernels on the CPU (flex), burn on a GPU.
    #[default]
    Auto,
    /// The host's CPU kernels (refused on a GPU device).
    Host,
    /// burn's autodiff and optimizers on the training device (the GPU path, and the reference
    /// the host engine is tested and benchmarked against).
    Burn,
}

impl EngineChoice {
    /// The name used in configs and on the wire.
    pub fn name(self) -> &'static str {
        match self {
            EngineChoice::Auto => "auto",
            EngineChoice::Host => "host",
            EngineChoice::Burn => "burn",
        }
    }

    /// Parses [`EngineChoice::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        [EngineChoice::Auto, EngineChoice::Host, EngineChoice::Burn]
            .into_iter()
            .find(|e| e.name() == name)
    }
}

/// Learner process settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearnerConfig {
    /// Training device.
    pub device: DeviceChoice,
    /// Capacity of the queue between the gRPC handlers and the trainer thread (rollouts).
    pub queue_capacity: usize,
    /// Seconds between status lines (and `metrics.jsonl` rows).
    pub status_interval_secs: f64,
    /// How long an actor waits for a newer version after a push before it collects with the
    /// parameters it has (milliseconds).
    pub param_wait_ms: u32,
    /// An actor silent this long (no call, no open stream; a dead connection is noticed by
    /// HTTP/2 keepalive pings within this time too) is forgotten. Synchronous PPO waits at most
    /// this long for missing actors' rollouts before it updates on the ones it has.
    pub actor_timeout_secs: f64,
    /// Write a checkpoint every this many seconds (0: not on time).
    pub checkpoint_interval_secs: f64,
    /// Write a checkpoint every this many updates (0: not on updates).
    pub checkpoint_interval_updates: u64,
    /// Periodic checkpoints kept (the oldest are deleted); `final` is kept besides.
    pub keep_checkpoints: usize,
    /// What clients may hold (`[learner.limits]`).
    pub limits: LimitsConfig,
    /// The compute engine for every network of the run, learner and actors: `auto` (the host's
    /// CPU kernels on the CPU, burn on a GPU), `host` or `burn` (burn's autodiff on the
    /// training device; the actors infer through burn on the CPU). The engines give the same
    /// updates to float tolerance.
    pub engine: EngineChoice,
    /// Threads the host engine splits each of the learner's passes over, at most as many as the
    /// process may run at once (one reduction in a fixed order: updates are bit-reproducible for
    /// a fixed count, and differ in rounding between counts). Actors use one.
    pub compute_threads: usize,
}

impl Default for LearnerConfig {
    fn default() -> Self {
        Self {
            device: DeviceChoice::Auto,
            queue_capacity: 64,
            status_interval_secs: 2.0,
            param_wait_ms: 2_000,
            actor_timeout_secs: 10.0,
            checkpoint_interval_secs: 60.0,
            checkpoint_interval_updates: 0,
            keep_checkpoints: 3,
            limits: LimitsConfig::default(),
            engine: EngineChoice::Auto,
            compute_threads: 2,
        }
    }
}

impl LearnerConfig {
    /// Checks every field; the queue must hold `min_queue` items (PPO: one update's rollouts).
    pub fn validate(&self, min_queue: usize) -> Result<(), Invalid> {
        let s = Section("learner");
        s.count(
            "queue_capacity",
            self.queue_capacity as u64,
            Range::at_least(min_queue.max(1) as f64),
        )
        .map_err(|e| match min_queue {
            0 | 1 => e,
            _ => s.invalid(
                "queue_capacity",
                self.queue_capacity,
                format!("must hold at least ppo.rollouts_per_update ({min_queue})"),
            ),
        })?;
        s.check(
            "status_interval_secs",
            self.status_interval_secs,
            Range::POSITIVE,
        )?;
        s.check(
            "actor_timeout_secs",
            self.actor_timeout_secs,
            Range::POSITIVE,
        )?;
        s.check(
            "checkpoint_interval_secs",
            self.checkpoint_interval_secs,
            Range::NON_NEGATIVE,
        )?;
        s.count(
            "keep_checkpoints",
            self.keep_checkpoints as u64,
            Range::AT_LEAST_ONE,
        )?;
        s.count(
            "compute_threads",
            self.compute_threads as u64,
            Range::new(Bound::Closed(1.0), Bound::Closed(64.0)),
        )?;
        self.limits.validate()
    }
}
