//! Published parameter versions. Publishing swaps an `Arc`; every reader (unary fetches and
//! subscription streams) shares the same immutable bytes, so serving many actors costs no copy
//! per actor. The edge reads the [`ParamStore`]; the trainer writes through a [`Publisher`].

use std::sync::Arc;

use bytes::Bytes;
use shoal_common::normalize::NormStats;
use tokio::sync::watch;

/// One immutable version.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Version number (1 is the initial parameters).
    pub version: u64,
    /// Little-endian `f32` parameters in layout order.
    pub data: Bytes,
    /// The run's observation and return statistics as of this version.
    pub normalization: Arc<NormStats>,
    /// Set once the run has ended, with the reason.
    pub finished: Option<String>,
}

/// The latest version, observable.
#[derive(Debug, Clone)]
pub struct ParamStore {
    tx: Arc<watch::Sender<Arc<Snapshot>>>,
}

impl ParamStore {
    /// A store holding `initial` parameters and statistics as `version` (1 for a new run).
    pub fn new(initial: Bytes, normalization: NormStats, version: u64) -> Self {
        let (tx, _rx) = watch::channel(Arc::new(Snapshot {
            version,
            data: initial,
            normalization: Arc::new(normalization),
            finished: None,
        }));
        Self { tx: Arc::new(tx) }
    }

    /// The newest snapshot.
    pub fn latest(&self) -> Arc<Snapshot> {
        self.tx.borrow().clone()
    }

    /// Publishes `data` with `normalization` as the next version and returns its number.
    pub fn publish(&self, data: Bytes, normalization: NormStats) -> u64 {
        let mut version = 0;
        let normalization = Arc::new(normalization);
        self.tx.send_modify(|snap| {
            version = snap.version + 1;
            *snap = Arc::new(Snapshot {
                version,
                data,
                normalization,
                finished: None,
            });
        });
        version
    }

    /// Marks the run as finished; subscribers are told and their streams end.
    pub fn finish(&self, reason: String) {
        self.tx.send_modify(|snap| {
            let mut s = (**snap).clone();
            s.finished = Some(reason);
            *snap = Arc::new(s);
        });
    }

    /// A receiver that sees the current snapshot and every later one.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }
}

/// The trainer's narrow handle on the store: publish versions, end the run.
#[derive(Debug, Clone)]
pub struct Publisher(ParamStore);

impl Publisher {
    /// Publishes through `store`.
    pub fn new(store: ParamStore) -> Self {
        Self(store)
    }

    /// Publishes `params` (layout order) with `normalization` as the next version; returns its
    /// number.
    pub fn publish(&self, params: &[f32], normalization: NormStats) -> u64 {
        self.0
            .publish(shoal_common::codec::encode_f32(params), normalization)
    }

    /// Marks the run as finished; subscribers are told and their streams end.
    pub fn finish(&self, reason: String) {
        self.0.finish(reason);
    }

    /// Whether the run was marked finished.
    pub fn finished(&self) -> bool {
        self.0.latest().finished.is_some()
    }
}
