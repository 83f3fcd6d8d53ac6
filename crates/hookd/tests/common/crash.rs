//! Crash-test additions to the harness: a config with sled's own periodic flush turned off, so
//! a test killing the daemon proves hookd's explicit flushes and not sled's timer.

use std::path::Path;

use super::Config;

/// [`Config::new`] with `[storage] background_flush = "0"`.
pub fn crash_config(dir: &Path) -> Config {
    Config::new(dir).set("storage", "background_flush", "\"0\"")
}
