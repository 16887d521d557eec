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
}

impl ActorSummary {
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
        }
        .to_proto()
    }
}
