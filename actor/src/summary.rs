//! What an actor did ([`ActorSummary`]), and the report each push carries about it.

use shoal_common::proto;
use shoal_common::stats::ActorStats;

/// What an actor did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActorSummary {
    /// Pushes the learner took (rollouts, gradients or transition batches).
    pub rollouts: u64,
    /// Environment steps taken.
    pub env_steps: u64,
    /// Episodes finished.
    pub episodes: u64,
    /// Sessions opened after the first.
    pub reconnects: u32,
    /// Why the learner ended the run, if it did.
    pub finished: Option<String>,
    /// When the previous report was made, and the steps taken by then.
    last_report: Option<(std::time::Instant, u64)>,
    /// When the first measured collection began, and the seconds spent collecting since
    /// (algorithms that measure it: PPO, IMPALA).
    collecting: Option<(std::time::Instant, f64)>,
}

impl ActorSummary {
    /// Counts a collection that began at `started` and took `secs` seconds of work.
    pub(crate) fn collected(&mut self, started: std::time::Instant, secs: f64) {
        let (_, busy) = self.collecting.get_or_insert((started, 0.0));
        *busy += secs;
    }

    /// Share of the wall time since the first measured collection spent doing something else.
    pub fn idle_fraction(&self) -> Option<f64> {
        self.collecting.map(|(since, busy)| {
            let wall = since.elapsed().as_secs_f64().max(1e-9);
            (1.0 - busy / wall).clamp(0.0, 1.0)
        })
    }

    /// Counts the steps and episodes about to be pushed and makes the report that goes with
    /// them: speed since the previous report, totals, mean inference time.
    pub(crate) fn report(
        &mut self,
        env_steps: u64,
        episodes: u64,
        inference_secs: f64,
    ) -> proto::ActorStats {
        let now = std::time::Instant::now();
        let sps = match self.last_report {
            Some((t, steps)) => {
                (self.env_steps + env_steps - steps) as f64
                    / now.duration_since(t).as_secs_f64().max(1e-6)
            }
            None => 0.0,
        };
        self.env_steps += env_steps;
        self.episodes += episodes;
        self.last_report = Some((now, self.env_steps));
        ActorStats {
            sps,
            episodes: self.episodes,
            reconnects: self.reconnects,
            inference_secs,
            env_steps: self.env_steps,
            idle_fraction: self.idle_fraction(),
        }
        .to_proto()
    }
}
