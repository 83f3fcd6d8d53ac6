//! Group flush for buffered writes. Callers that need their buffered writes (an attempt's
//! outcome, a manual retry) on disk before going on ask the syncer thread; it takes every request
//! queued, makes one flush, and answers them all. Many concurrent attempts thus share one fsync,
//! as concurrent ingests share one in the committer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use hookd_types::metrics::{inc, METRICS};

use crossbeam_channel::Sender;
use tokio::sync::oneshot;

use crate::error::{LogError, Result};
use crate::store::Store;

type Waiter = oneshot::Sender<Result<(), Arc<LogError>>>;

#[derive(Clone)]
pub struct Syncer {
    tx: Sender<Waiter>,
    /// Flushes made by this syncer (the process-wide metric adds up every syncer's).
    flushes: Arc<AtomicU64>,
}

impl std::fmt::Debug for Syncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syncer").finish_non_exhaustive()
    }
}

impl Syncer {
    /// Starts the syncer thread; it stops when the last handle is dropped. Flushes are at least
    /// `window` apart: a request arriving sooner waits for the window to pass, gathering the
    /// requests behind it into the same flush.
    pub fn start(store: Arc<dyn Store>, window: Duration) -> Result<Self> {
        let (tx, rx) = crossbeam_channel::unbounded::<Waiter>();
        let flushes = Arc::new(AtomicU64::new(0));
        let counted = flushes.clone();
        thread::Builder::new()
            .name("hookd-syncer".into())
            .spawn(move || {
                let mut last = Instant::now() - window;
                while let Ok(first) = rx.recv() {
                    let next = last + window;
                    let now = Instant::now();
                    if next > now {
                        thread::sleep(next - now);
                    }
                    let mut waiters = vec![first];
                    waiters.extend(rx.try_iter());
                    let result = store.flush().map_err(Arc::new);
                    last = Instant::now();
                    counted.fetch_add(1, Ordering::Relaxed);
                    inc(&METRICS.outcome_flushes_total, 1);
                    for w in waiters {
                        let _ = w.send(result.clone());
                    }
                }
            })
            .map_err(|source| LogError::Spawn {
                thread: "syncer",
                source,
            })?;
        Ok(Self { tx, flushes })
    }

    /// Returns once every write made before the call is durable.
    pub async fn sync(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(tx).map_err(|_| LogError::SyncerStopped)?;
        rx.await
            .map_err(|_| LogError::SyncerStopped)?
            .map_err(|source| LogError::Group {
                op: "flush",
                source,
            })
    }

    /// Flushes made so far.
    pub fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Requests waiting for the next flush to start.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{temp_store, GatedStore};

    #[tokio::test]
    async fn concurrent_syncs_share_flushes() {
        let (_dir, store) = temp_store();
        let store = Arc::new(GatedStore::closed(store));
        let s = Syncer::start(store.clone(), Duration::ZERO).unwrap();
        // The first request's flush is held at the gate...
        let first = tokio::spawn({
            let s = s.clone();
            async move { s.sync().await }
        });
        tokio::task::spawn_blocking({
            let store = store.clone();
            move || store.wait_arrived(1)
        })
        .await
        .unwrap();
        // ...while 49 more queue up behind it.
        let rest: Vec<_> = (0..49)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.sync().await })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while s.queued() < 49 {
            assert!(Instant::now() < deadline, "only {} queued", s.queued());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(s.flushes(), 0);
        store.open();
        first.await.unwrap().unwrap();
        for t in rest {
            t.await.unwrap().unwrap();
        }
        // One flush for the first request, one for all that queued behind it.
        assert_eq!(s.flushes(), 2);
    }

    #[tokio::test]
    async fn a_lone_request_gets_its_own_flush() {
        let (_dir, store) = temp_store();
        let s = Syncer::start(Arc::new(store), Duration::ZERO).unwrap();
        s.sync().await.unwrap();
        assert_eq!(s.flushes(), 1);
        s.sync().await.unwrap();
        assert_eq!(s.flushes(), 2);
    }
}
