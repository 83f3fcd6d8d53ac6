//! `hookd rekey --new-key-file <path>`: re-seals every endpoint secret under a new master key.
//! The daemon must be stopped (the store's lock refuses a second opener). The new key is read
//! from the file, or created there (random, readable only by its owner) if it does not exist;
//! hookd then starts with that key (`[secrets] master_key_file` or `HOOKD_MASTER_KEY`).

use std::path::Path;

use anyhow::Context;

use hookd_log::SledConfig;

use crate::config::Config;
use crate::keys;

/// What a rekey did.
#[derive(Debug)]
pub struct Rekeyed {
    pub endpoints: usize,
    /// The new key file did not exist and was created.
    pub created_key_file: bool,
}

pub fn rekey(cfg: &Config, new_key_file: &Path) -> anyhow::Result<Rekeyed> {
    let db = cfg.data_dir.join("db");
    if !db.is_dir() {
        anyhow::bail!("no store at {}", db.display());
    }
    let current = keys::current_master_key(&cfg.master_key)?;
    let (new, created_key_file) = match keys::read_key_file(new_key_file)? {
        Some(key) => (key, false),
        None => (keys::create_key_file(new_key_file)?, true),
    };
    if current.as_ref().is_some_and(|c| c.same_as(&new)) {
        anyhow::bail!(
            "{} holds the current master key: give a new one",
            new_key_file.display()
        );
    }
    let endpoints = hookd_log::rekey(
        &SledConfig {
            path: db,
            cache_bytes: cfg.cache_bytes,
        },
        current.as_ref(),
        &new,
    )
    .with_context(|| {
        format!(
            "re-sealing the secrets in {} (is hookd still running on it?)",
            cfg.data_dir.display()
        )
    })?;
    Ok(Rekeyed {
        endpoints,
        created_key_file,
    })
}
