//! Who takes part in a deterministic run: the first `n` actors to push (PPO:
//! `ppo.rollouts_per_update`, DQN: `dqn.num_actors`). Experience from any other actor is not
//! used, and the first time one shows up the learner says that the run will not repeat (which
//! actors became members depended on timing).

use std::collections::BTreeSet;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Members {
    ids: BTreeSet<u32>,
    n: usize,
    warned: bool,
}

impl Members {
    /// Room for `n` members.
    pub(crate) fn new(n: usize) -> Self {
        Self {
            ids: BTreeSet::new(),
            n,
            warned: false,
        }
    }

    /// Whether `actor_id` takes part (it joins while there is room).
    pub(crate) fn admit(&mut self, actor_id: u32) -> bool {
        if self.ids.contains(&actor_id) {
            return true;
        }
        if self.ids.len() < self.n {
            self.ids.insert(actor_id);
            return true;
        }
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                actor_id,
                members = ?self.ids,
                "more actors than this deterministic run takes: the extra one's experience is \
                 not used, and the run will not repeat bit for bit"
            );
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_n_actors_take_part() {
        let mut m = Members::new(2);
        assert!(m.admit(3));
        assert!(m.admit(1));
        assert!(m.admit(3));
        assert!(!m.admit(2));
        assert!(m.admit(1));
    }
}
