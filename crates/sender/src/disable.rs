//! Endpoints the sender disables by itself: one that answers `410 Gone`, and one that has been
//! failing for `[sender] auto_disable_after` (every attempt since the first failure failed; a
//! 2xx ends the streak). The streak is kept in memory and resumed after a restart from the
//! store's record of it (`EndpointStats::failing_since_ms`, derived from the attempts).
//!
//! Each disabling is announced with an operational event of type [`ENDPOINT_DISABLED`] in the
//! endpoint's tenant, delivered like any event to that tenant's endpoints subscribed to it:
//! `{"endpoint_id","name","url","reason":"gone"|"failing","failing_since"}`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use hookd_log::{EndpointRegistry, LogError};
use hookd_types::time::{now_ms, rfc3339};
use hookd_types::{Endpoint, EndpointId, Event, Signal, Streak};

/// The type of the operational event that announces an endpoint disabled by hookd.
pub const ENDPOINT_DISABLED: &str = "endpoint.disabled";

/// Where operational events go (the ingest path, which makes them durable like any event).
pub trait Announce: Send + Sync + 'static {
    fn announce(&self, event: Event);
}

/// Why an endpoint is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Gone,
    /// Failing since this unix ms.
    Failing(u64),
}

pub(crate) struct Disabler {
    registry: Arc<EndpointRegistry>,
    streaks: Streaks,
    announce: OnceLock<Arc<dyn Announce>>,
}

/// Each endpoint's failing streak: when it started.
#[derive(Default)]
struct Streaks {
    /// Disable after failing this long; `None`: never.
    after: Option<Duration>,
    since: Mutex<HashMap<EndpointId, u64>>,
}

impl Streaks {
    /// Takes in an attempt's signal at `now_ms`; says when the endpoint has failed long enough.
    fn observe(&self, endpoint: EndpointId, signal: Signal, now_ms: u64) -> Option<Reason> {
        let after = self.after?;
        let mut failing = self.since.lock().unwrap_or_else(|e| e.into_inner());
        match signal.streak() {
            Streak::Keeps => None,
            Streak::Ends => {
                failing.remove(&endpoint);
                None
            }
            Streak::Extends => {
                let since = *failing.entry(endpoint).or_insert(now_ms);
                let long = now_ms.saturating_sub(since) >= after.as_millis() as u64;
                if long {
                    failing.remove(&endpoint);
                }
                long.then_some(Reason::Failing(since))
            }
        }
    }
}

impl Disabler {
    pub(crate) fn new(registry: Arc<EndpointRegistry>) -> Self {
        Self {
            registry,
            streaks: Streaks::default(),
            announce: OnceLock::new(),
        }
    }

    pub(crate) fn set_after(&mut self, after: Option<Duration>) {
        self.streaks.after = after.filter(|d| !d.is_zero());
    }

    /// At start: `endpoint` has been failing since `since_ms`.
    pub(crate) fn resume(&self, endpoint: EndpointId, since_ms: u64) {
        if self.streaks.after.is_some() {
            let mut failing = self.streaks.since.lock().unwrap_or_else(|e| e.into_inner());
            failing.insert(endpoint, since_ms);
        }
    }

    pub(crate) fn set_announce(&self, announce: Arc<dyn Announce>) {
        let _ = self.announce.set(announce);
    }

    /// Takes in an attempt's signal at `now_ms`; says when the endpoint has failed long enough.
    pub(crate) fn observe(
        &self,
        endpoint: EndpointId,
        signal: Signal,
        now_ms: u64,
    ) -> Option<Reason> {
        self.streaks.observe(endpoint, signal, now_ms)
    }

    /// Disables `endpoint` (before another request is sent to it, when the caller still holds
    /// its slot) and announces it, once: an endpoint already disabled is left alone.
    pub(crate) async fn disable(&self, endpoint: EndpointId, reason: Reason) {
        let now = now_ms();
        let mut disabled = None;
        let changed = self
            .registry
            .update(endpoint, |current| -> Result<Endpoint, LogError> {
                let mut next = current.clone();
                if next.enabled {
                    next.enabled = false;
                    next.updated_at_ms = now;
                    disabled = Some(next.clone());
                }
                Ok(next)
            })
            .await;
        if let Err(e) = changed {
            tracing::error!(endpoint = %endpoint, error = %e, "disabling an endpoint");
            disabled = None;
        }
        let Some(ep) = disabled else { return };
        tracing::warn!(endpoint = %endpoint, reason = ?reason, "endpoint disabled");
        if let Some(announce) = self.announce.get() {
            announce.announce(notice(&ep, reason, now));
        }
    }
}

/// The `endpoint.disabled` event for `ep`.
pub fn notice(ep: &Endpoint, reason: Reason, now: u64) -> Event {
    let (reason, since) = match reason {
        Reason::Gone => ("gone", None),
        Reason::Failing(since) => ("failing", Some(rfc3339(since))),
    };
    let data = serde_json::json!({
        "endpoint_id": ep.id.to_string(),
        "name": ep.name,
        "url": ep.url,
        "reason": reason,
        "failing_since": since,
    });
    Event {
        id: hookd_types::id::new_event_id(),
        tenant: ep.tenant.clone(),
        event_type: ENDPOINT_DISABLED.to_owned(),
        created_at_ms: now,
        data: data.to_string().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disabler(after: Option<Duration>) -> Streaks {
        Streaks {
            after,
            ..Streaks::default()
        }
    }

    #[test]
    fn a_streak_of_failures_as_long_as_the_period_disables() {
        let d = disabler(Some(Duration::from_secs(10)));
        let ep = EndpointId(1);
        assert_eq!(d.observe(ep, Signal::ServerError, 1_000), None);
        assert_eq!(d.observe(ep, Signal::Answered, 5_000), None);
        // A success ends the streak; nothing sent says nothing.
        assert_eq!(d.observe(ep, Signal::Delivered, 9_000), None);
        assert_eq!(d.observe(ep, Signal::Unreachable, 10_000), None);
        assert_eq!(d.observe(ep, Signal::NotSent, 30_000), None);
        assert_eq!(d.observe(ep, Signal::Unreachable, 19_999), None);
        assert_eq!(
            d.observe(ep, Signal::Unreachable, 20_000),
            Some(Reason::Failing(10_000))
        );
        // Off: never.
        let off = disabler(None);
        assert_eq!(off.observe(ep, Signal::ServerError, 0), None);
        assert_eq!(off.observe(ep, Signal::ServerError, u64::MAX), None);
    }
}
