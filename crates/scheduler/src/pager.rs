//! The horizon: shards keep in memory only the deadlines due within it; later ones stay in the
//! store (`s` keys, in time order) and the pager hands them to their shards as time comes near.
//! So a million deliveries waiting days for a retry cost the store's disk, not the daemon's
//! memory, and a restart reads only the deadlines of the next horizon.
//!
//! Every `horizon / 2` the pager moves the horizon from `end` to `now + horizon`, in an order that
//! loses no deadline:
//! 1. every shard takes the new end first (from then on it keeps what is due up to it);
//! 2. the pager waits until the read model reflects every outcome recorded so far, so a job a
//!    shard dropped before step 1 (due beyond the old end) has its durable deadline;
//! 3. it reads the deadlines in `(old end, new end]` and hands them to their shards, which take
//!    each one unless they know its delivery already (waiting, in flight or reserved: newer).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use hookd_log::{AsyncStore, Outcomes};

use crate::shard::{Clock, Job, SchedulerHandle};

/// Runs until `stop` turns true. `end` is the horizon the shards were loaded with.
pub fn spawn(
    reads: Arc<dyn AsyncStore>,
    outcomes: Arc<dyn Outcomes>,
    scheduler: SchedulerHandle,
    clock: Clock,
    horizon: Duration,
    mut end: u64,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let step = (horizon / 2).max(Duration::from_millis(10));
    let horizon_ms = horizon.as_millis() as u64;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = stop.changed() => return,
            }
            let next = clock.now_ms() + horizon_ms;
            scheduler.set_horizon(next).await;
            if let Err(e) = outcomes.caught_up().await {
                tracing::error!(error = %e, "pager: the read model stopped; horizon stays");
                return;
            }
            match reads.deadlines_between(end, next, None).await {
                Ok(entries) => {
                    if !entries.is_empty() {
                        tracing::debug!(deadlines = entries.len(), "pager: paged in");
                    }
                    for e in entries {
                        scheduler.page(Job::from(e));
                    }
                    end = next;
                }
                // The horizon moved in the shards already: reading again next time from the
                // same `end` covers this window too.
                Err(e) => tracing::error!(error = %e, "pager: reading deadlines"),
            }
        }
    })
}
