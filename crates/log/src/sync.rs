//! Group flush for buffered writes. Callers that need their buffered writes (an attempt's
//! outcome, a manual retry) on disk before going on ask the syncer thread; it takes every request
//! queued, makes one flush, and answers them all. Many concurrent attempts thus share one fsync,
//! as concurrent ingests share one in the committer.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use hookd_types::metrics::{inc, METRICS};

use crossbeam_channel::Sender;
use tokio::sync::oneshot;

use crate::error::{LogError, Result};
use crate::store::Store;

type Waiter = oneshot::Sender<Result<(), String>>;

#[derive(Clone)]
pub struct Syncer {
    tx: Sender<Waiter>,
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
                    let result = store.flush().map_err(|e| e.to_string());
                    last = Instant::now();
                    inc(&METRICS.outcome_flushes_total, 1);
                    for w in waiters {
                        let _ = w.send(result.clone());
                    }
                }
            })
            .map_err(|e| LogError::Encode(format!("spawning syncer: {e}")))?;
        Ok(Self { tx })
    }

    /// Returns once every write made before the call is durable.
    pub async fn sync(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        let stopped = || LogError::Encode("syncer stopped".into());
        self.tx.send(tx).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?.map_err(LogError::Encode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SledConfig, SledStore};

    #[tokio::test]
    async fn concurrent_syncs_all_complete() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SledStore::open(&SledConfig {
                path: dir.path().join("db"),
                cache_bytes: 1 << 20,
            })
            .unwrap(),
        );
        let s = Syncer::start(store, Duration::from_millis(2)).unwrap();
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move { s.sync().await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
    }
}
