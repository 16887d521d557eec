//! Synchronous PPO's gate: which rollouts of the current version have arrived and from whom,
//! so that an ack can tell an actor whether the learner still wants rollouts of this version
//! (nobody else connected owes one) or it should wait for the next. The admission side records
//! pushes; the training side opens each new version before it publishes it.

use std::collections::HashSet;
use std::sync::Mutex;

#[derive(Debug, Default)]
struct Pending {
    version: u64,
    pushed_by: HashSet<u32>,
    count: usize,
}

/// See the module docs.
#[derive(Debug)]
pub struct SyncGate {
    pending: Mutex<Pending>,
    rollouts_per_update: usize,
    /// A deterministic run: one rollout per actor per version, never more.
    one_per_actor: bool,
}

impl SyncGate {
    /// A gate at `version` for updates of `rollouts_per_update` rollouts (`one_per_actor`:
    /// at most one from each actor, as a deterministic run takes them).
    pub fn new(version: u64, rollouts_per_update: usize, one_per_actor: bool) -> Self {
        Self {
            pending: Mutex::new(Pending {
                version,
                ..Pending::default()
            }),
            rollouts_per_update,
            one_per_actor,
        }
    }

    /// Called by the trainer before it publishes `version`: pushes are counted afresh.
    pub fn open(&self, version: u64) {
        *self.pending.lock().expect("gate lock") = Pending {
            version,
            ..Pending::default()
        };
    }

    /// Records a push by `actor_id` made with `version`, while `subscribed` actors are
    /// connected; returns (fresh: made with the current version, wants_more: the update still
    /// needs rollouts that no other connected actor owes).
    pub fn note_push(&self, actor_id: u32, version: u64, subscribed: &[u32]) -> (bool, bool) {
        let mut p = self.pending.lock().expect("gate lock");
        if version != p.version {
            return (false, false);
        }
        let first = p.pushed_by.insert(actor_id);
        if self.one_per_actor {
            p.count += first as usize;
            return (first, false);
        }
        p.count += 1;
        // Other connected actors that have not delivered for this version yet will.
        let others = subscribed
            .iter()
            .filter(|id| !p.pushed_by.contains(id))
            .count();
        (true, p.count + others < self.rollouts_per_update)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_wants_more_until_connected_actors_owe_enough() {
        let gate = SyncGate::new(1, 3, false);
        // Actor 1 pushes while 1 and 2 are connected: 2 owes one, one more is missing.
        assert_eq!(gate.note_push(1, 1, &[1, 2]), (true, true));
        // Actor 2 delivers: two in, nobody else owes one: still one short.
        assert_eq!(gate.note_push(2, 1, &[1, 2]), (true, true));
        assert_eq!(gate.note_push(1, 1, &[1, 2]), (true, false));
        // A push made with an older version is stale.
        assert_eq!(gate.note_push(2, 0, &[1, 2]), (false, false));
        gate.open(2);
        assert_eq!(gate.note_push(1, 1, &[1, 2]), (false, false));
        assert_eq!(gate.note_push(1, 2, &[1]), (true, true));
    }

    #[test]
    fn a_deterministic_gate_takes_one_rollout_per_actor() {
        let gate = SyncGate::new(1, 2, true);
        // Alone so far, actor 1 still waits for the next version.
        assert_eq!(gate.note_push(1, 1, &[1]), (true, false));
        assert_eq!(gate.note_push(1, 1, &[1]), (false, false));
        assert_eq!(gate.note_push(2, 1, &[1, 2]), (true, false));
    }
}
