//! Crash-test additions to the harness: a config with sled's own periodic flush turned off, so
//! a test killing the daemon proves hookd's explicit flushes and not sled's timer, and with a
//! checkpoint every 50 ms, so kills land in the middle of checkpoints (sled flushed and synced,
//! cursors moved, log segments removed) as often as outside them; and what a
//! crash test reads from the requests hookd-testkit's [`Receiver`] recorded: receipts per
//! webhook-id, failed answers, signatures that do not verify.
//!
//! The receiver outlives any number of daemon restarts. A request counts as received once it
//! has arrived and been given a 2xx reply, even when a delayed answer never reaches a daemon
//! killed meanwhile: the receiver has the event, and the daemon sending it again is a
//! duplicate.

use std::collections::HashMap;
use std::path::Path;

use super::{signature_matches, Config, Recorded};

/// [`Config::new`] with `[storage] background_flush = "0"` and `checkpoint_interval = "50ms"`.
pub fn crash_config(dir: &Path) -> Config {
    Config::new(dir)
        .set("storage", "background_flush", "\"0\"")
        .set("storage", "checkpoint_interval", "\"50ms\"")
}

/// webhook-id -> requests to `path` answered with 2xx.
pub fn delivered(reqs: &[Recorded], path: &str) -> HashMap<String, u32> {
    let mut got: HashMap<String, u32> = HashMap::new();
    for r in reqs.iter().filter(|r| r.path == path && r.is_success()) {
        *got.entry(r.webhook_id().to_owned()).or_insert(0) += 1;
    }
    got
}

/// Requests to `path` answered with anything but 2xx (or not answered).
pub fn failed(reqs: &[Recorded], path: &str) -> usize {
    reqs.iter()
        .filter(|r| r.path == path && !r.is_success())
        .count()
}

/// `path webhook-id` of every request to a path in `secrets` (path -> secret) whose Standard
/// Webhooks signature does not verify.
pub fn bad_signatures(reqs: &[Recorded], secrets: &HashMap<&str, String>) -> Vec<String> {
    reqs.iter()
        .filter(|r| {
            secrets
                .get(r.path.as_str())
                .is_some_and(|secret| !signature_matches(r, secret))
        })
        .map(|r| format!("{} {}", r.path, r.webhook_id()))
        .collect()
}
