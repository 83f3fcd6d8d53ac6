//! Attempt outcomes per endpoint, kept only when `[metrics] per_endpoint` asks for them: the one
//! label set that grows (ten series per endpoint attempted since the start), so it is off by
//! default.
//!
//! Off, recording is one relaxed load. On, an endpoint already seen costs a read lock and a
//! relaxed `fetch_add`; the write lock is taken once per endpoint, on its first attempt.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;

use super::Outcome;
use crate::EndpointId;

type Counts = [AtomicU64; Outcome::ALL.len()];

#[derive(Debug)]
pub struct PerEndpoint {
    on: AtomicBool,
    counts: RwLock<BTreeMap<EndpointId, Counts>>,
}

impl PerEndpoint {
    pub const fn new() -> Self {
        Self {
            on: AtomicBool::new(false),
            counts: RwLock::new(BTreeMap::new()),
        }
    }

    /// Starts (or stops) counting; the daemon sets it from its config on start.
    pub fn enable(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    pub fn attempted(&self, endpoint: EndpointId, outcome: Outcome) {
        if !self.on.load(Ordering::Relaxed) {
            return;
        }
        let i = outcome as usize;
        {
            let map = self.counts.read().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = map.get(&endpoint) {
                c[i].fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let mut map = self.counts.write().unwrap_or_else(|p| p.into_inner());
        let c = map
            .entry(endpoint)
            .or_insert_with(|| [const { AtomicU64::new(0) }; Outcome::ALL.len()]);
        c[i].fetch_add(1, Ordering::Relaxed);
    }

    /// `hookd_endpoint_attempt_outcomes_total`, when on.
    pub fn render(&self, out: &mut String) {
        if !self.on.load(Ordering::Relaxed) {
            return;
        }
        let name = "hookd_endpoint_attempt_outcomes_total";
        let _ = writeln!(
            out,
            "# HELP {name} Delivery attempts by endpoint and outcome."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        let map = self.counts.read().unwrap_or_else(|p| p.into_inner());
        for (endpoint, counts) in map.iter() {
            for (o, c) in Outcome::ALL.iter().zip(counts) {
                let _ = writeln!(
                    out,
                    "{name}{{endpoint=\"{endpoint}\",outcome=\"{}\"}} {}",
                    o.as_str(),
                    c.load(Ordering::Relaxed)
                );
            }
        }
    }
}

impl Default for PerEndpoint {
    fn default() -> Self {
        Self::new()
    }
}
