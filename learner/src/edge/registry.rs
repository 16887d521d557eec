//! The actor registry: which actors the learner knows (ids, names), when each last called or
//! pushed, their open parameter subscriptions, and which were told that the run is over.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shoal_common::episodes::EpisodeLedger;
use tracing::{info, warn};

use super::actor_ids::IdKey;
use crate::telemetry::EdgeCounters;
use crate::telemetry::edge_counters::bump;

/// Why a parameter subscription was refused.
#[derive(Debug, thiserror::Error)]
pub enum StreamLimit {
    /// The actor holds as many as `learner.limits.max_subscriptions_per_actor`.
    #[error(
        "actor {actor_id} holds {held} parameter subscriptions already \
         (learner.limits.max_subscriptions_per_actor)"
    )]
    PerActor {
        /// The actor.
        actor_id: u32,
        /// Its open subscriptions.
        held: usize,
    },
    /// `learner.limits.max_subscriptions` are open.
    #[error("{open} parameter subscriptions are open (learner.limits.max_subscriptions)")]
    Total {
        /// Open subscriptions.
        open: usize,
    },
}

#[derive(Debug, Default)]
struct Actors {
    next_id: u32,
    names: HashMap<u32, String>,
    /// Open parameter subscriptions per actor.
    subscribed: HashMap<u32, usize>,
    /// When each pushing actor (one whose acks carry parameters) last pushed.
    last_push: HashMap<u32, Instant>,
    /// When each actor last called.
    last_seen: HashMap<u32, Instant>,
    /// Pushing actors whose ack said the run is over.
    told_finished: HashSet<u32>,
    /// Each actor's account of steps pushed against episodes claimed.
    ledgers: HashMap<u32, EpisodeLedger>,
}

/// See the module docs.
#[derive(Debug)]
pub struct ActorRegistry {
    actors: Mutex<Actors>,
    /// What actor-id secrets are made with.
    key: IdKey,
    told: tokio::sync::Notify,
    /// `learner.actor_timeout_secs`.
    timeout: Duration,
}

impl ActorRegistry {
    /// A registry that hands out ids from `first_id` (above those of the run before a resume)
    /// with secrets made with `key`, and forgets actors silent for `timeout`.
    pub fn new(first_id: u32, key: IdKey, timeout: Duration) -> Self {
        Self {
            actors: Mutex::new(Actors {
                next_id: first_id.max(1),
                ..Actors::default()
            }),
            key,
            told: tokio::sync::Notify::new(),
            timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Actors> {
        self.actors.lock().expect("actors lock")
    }

    /// The actor timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Registers an actor named `name`; returns its id and the secret that proves it. A
    /// reconnecting actor that shows the secret of an id this run issued keeps that id (so its
    /// seed, environments and exploration schedule carry on), also across a learner resume;
    /// any other gets a new id. `None` when every id has been issued.
    pub fn register(&self, name: &str, previous: Option<(u32, &[u8])>) -> Option<(u32, Vec<u8>)> {
        let mut actors = self.lock();
        let proven = previous
            .filter(|&(id, secret)| id > 0 && id < actors.next_id && self.key.verify(id, secret))
            .map(|(id, _)| id);
        let id = match proven {
            Some(id) => id,
            None => {
                let id = actors.next_id;
                // u32::MAX itself is never issued: next_id stays above every issued id.
                actors.next_id = id.checked_add(1)?;
                id
            }
        };
        actors.names.insert(id, name.to_string());
        actors.last_seen.insert(id, Instant::now());
        Some((id, self.key.secret(id)))
    }

    /// The id key (saved with checkpoints, so that a resumed learner recognises its actors).
    pub fn key(&self) -> &IdKey {
        &self.key
    }

    /// Whether `actor_id` is known; records that it was seen.
    pub fn seen(&self, actor_id: u32) -> bool {
        let mut actors = self.lock();
        if !actors.names.contains_key(&actor_id) {
            return false;
        }
        actors.last_seen.insert(actor_id, Instant::now());
        true
    }

    /// The name `actor_id` registered with (empty when unknown).
    pub fn name(&self, actor_id: u32) -> String {
        self.lock()
            .names
            .get(&actor_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Books a push of `steps` whose finished episodes span `claimed` steps on `actor_id`'s
    /// account (opened with `open` at its first push): whether they count.
    pub fn book_episodes(
        &self,
        actor_id: u32,
        steps: u64,
        claimed: u64,
        open: impl FnOnce() -> EpisodeLedger,
    ) -> bool {
        self.lock()
            .ledgers
            .entry(actor_id)
            .or_insert_with(open)
            .book(steps, claimed)
    }

    /// Undoes a booking whose push was not taken.
    pub fn refund_episodes(&self, actor_id: u32, steps: u64, spent: u64) {
        if let Some(ledger) = self.lock().ledgers.get_mut(&actor_id) {
            ledger.refund(steps, spent);
        }
    }

    /// Records a push from an actor that does not subscribe (its acks carry parameters).
    pub fn pushed(&self, actor_id: u32) {
        self.lock().last_push.insert(actor_id, Instant::now());
    }

    /// Actors with an open parameter subscription, or that pushed within the actor timeout.
    pub fn connected(&self) -> usize {
        let actors = self.lock();
        let recent = actors
            .last_push
            .iter()
            .filter(|(id, t)| t.elapsed() < self.timeout && !actors.subscribed.contains_key(id))
            .count();
        actors.subscribed.len() + recent
    }

    /// The actors with an open parameter subscription.
    pub fn subscribed(&self) -> Vec<u32> {
        self.lock().subscribed.keys().copied().collect()
    }

    /// The next actor id to hand out (saved with checkpoints so that a resumed learner does
    /// not reuse ids).
    pub fn next_id(&self) -> u32 {
        self.lock().next_id
    }

    /// Forgets actors that have no open stream and made no call for the actor timeout: they
    /// stop counting as connected and as owing rollouts; a later call from one gets NOT_FOUND
    /// and it registers again. Returns their ids (counted in `counters`).
    pub fn expire_silent(&self, counters: &EdgeCounters) -> Vec<u32> {
        let mut actors = self.lock();
        let silent: Vec<u32> = actors
            .last_seen
            .iter()
            .filter(|(id, t)| t.elapsed() >= self.timeout && !actors.subscribed.contains_key(id))
            .map(|(&id, _)| id)
            .collect();
        for id in &silent {
            let name = actors.names.remove(id).unwrap_or_default();
            actors.last_seen.remove(id);
            actors.last_push.remove(id);
            actors.ledgers.remove(id);
            bump(&counters.actors_timed_out);
            warn!(
                actor_id = id,
                name,
                silent_secs = self.timeout.as_secs_f64(),
                "actor timed out; forgotten"
            );
        }
        silent
    }

    /// Opens a parameter subscription of `actor_id`, unless it holds `per_actor` already or
    /// `total` are open (then: why not).
    pub fn subscription_opened(
        &self,
        actor_id: u32,
        per_actor: usize,
        total: usize,
    ) -> Result<(), StreamLimit> {
        let mut actors = self.lock();
        let held = actors.subscribed.get(&actor_id).copied().unwrap_or(0);
        if held >= per_actor {
            return Err(StreamLimit::PerActor { actor_id, held });
        }
        let open: usize = actors.subscribed.values().sum();
        if open >= total {
            return Err(StreamLimit::Total { open });
        }
        *actors.subscribed.entry(actor_id).or_default() += 1;
        let name = actors.names.get(&actor_id).cloned().unwrap_or_default();
        info!(
            actor_id,
            name,
            connected = actors.subscribed.len(),
            "actor connected"
        );
        Ok(())
    }

    /// A parameter subscription of `actor_id` closed, however it ended.
    pub fn subscription_closed(&self, actor_id: u32) {
        let mut actors = self.lock();
        if let Some(n) = actors.subscribed.get_mut(&actor_id) {
            *n -= 1;
            if *n == 0 {
                actors.subscribed.remove(&actor_id);
            }
        }
        // The actor timeout counts from the stream's end.
        if actors.names.contains_key(&actor_id) {
            actors.last_seen.insert(actor_id, Instant::now());
        }
        info!(
            actor_id,
            connected = actors.subscribed.len(),
            "actor disconnected"
        );
    }

    /// Records that `actor_id`'s ack said the run is over.
    pub fn told_finished(&self, actor_id: u32) {
        self.lock().told_finished.insert(actor_id);
        self.told.notify_one();
    }

    /// Once the run is over: waits (at most `within`) until every actor that pushed within
    /// the actor timeout has been told so by an ack. Pushing actors do not subscribe to the
    /// parameter stream; the ack to their next push is how they learn that the run ended, so
    /// the server must still be up to give it.
    pub async fn wait_until_pushers_told(&self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let all_told = {
                let actors = self.lock();
                actors
                    .last_push
                    .iter()
                    .all(|(id, t)| actors.told_finished.contains(id) || t.elapsed() >= self.timeout)
            };
            if all_told {
                return;
            }
            tokio::select! {
                _ = self.told.notified() => {}
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }
}
