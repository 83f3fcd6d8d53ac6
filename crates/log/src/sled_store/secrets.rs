//! Endpoint secrets at rest, sealed with [`crate::sealed`].
//!
//! An endpoint whose secrets are sealed is stored under `q` endpoint(16) as a
//! [`SealedEndpoint`]: the endpoint with every secret blanked, and one sealed [`Secrets`] (the
//! current secret and the previous ones still in their overlap window, in order) bound to the
//! endpoint's id. `p` records are endpoints in plain text, written by builds from before secrets
//! were sealed or by a store opened without a master key (unit tests, tools). A write of either
//! kind removes the other, so an endpoint has one record.
//!
//! `m` `secrets_check` holds a known text sealed under the master key: a wrong key is told at
//! open, even before any endpoint exists.
//!
//! # Re-sealing
//! Sealing plain records in place, or re-sealing them under a new key, would leave the old bytes
//! in sled's segment files until sled happens to reclaim them. So both the migration of a plain
//! store and [`rekey`] copy the database into `<path>.rewrite` with every secret sealed under the
//! new key, then swap directories: `path -> path.old`, `path.rewrite -> path`, remove
//! `path.old`. [`finish_rewrite`], run by every open, completes or discards an interrupted swap:
//! a `.rewrite` beside `path` is an unfinished copy (removed); a `.rewrite` without `path` is a
//! finished one (moved into place); a `.old` beside `path` is garbage.

use std::path::{Path, PathBuf};

use super::*;
use crate::sealed::MasterKey;

const SECRETS_CHECK: &[u8] = b"msecrets_check";
const CHECK_AAD: &[u8] = b"hookd master key check";
const CHECK_TEXT: &[u8] = b"hookd";
/// sled's name for the default tree, which `tree_names` lists with the others.
const DEFAULT_TREE: &[u8] = b"__sled__default";

#[derive(Serialize, Deserialize)]
struct SealedEndpoint {
    endpoint: Endpoint,
    secrets: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Secrets {
    current: String,
    previous: Vec<String>,
}

pub(super) fn sealed_endpoint_key(id: EndpointId) -> Vec<u8> {
    key(&[Kind::SealedEndpoint.prefix(), &id.to_bytes()])
}

pub(super) fn seal_endpoint(master: &MasterKey, ep: &Endpoint) -> Result<Vec<u8>> {
    let secrets = Secrets {
        current: ep.secret.clone(),
        previous: ep
            .previous_secrets
            .iter()
            .map(|p| p.secret.clone())
            .collect(),
    };
    let sealed = master.seal(&ep.id.to_bytes(), &enc(&secrets)?)?;
    let mut endpoint = ep.clone();
    endpoint.secret.clear();
    for p in &mut endpoint.previous_secrets {
        p.secret.clear();
    }
    enc(&SealedEndpoint {
        endpoint,
        secrets: sealed,
    })
}

pub(super) fn open_endpoint(
    master: Option<&MasterKey>,
    k: &[u8],
    bytes: &[u8],
) -> Result<Endpoint> {
    let stored: SealedEndpoint = dec(k, bytes)?;
    let master = master.ok_or(LogError::NoMasterKey)?;
    let plain = master
        .open(&stored.endpoint.id.to_bytes(), &stored.secrets)
        .ok_or(LogError::WrongMasterKey)?;
    let secrets: Secrets = dec(k, &plain)?;
    let mut ep = stored.endpoint;
    if secrets.previous.len() != ep.previous_secrets.len() {
        return Err(LogError::Corrupt {
            key: String::from_utf8_lossy(k).into_owned(),
            detail: "sealed secrets do not match the endpoint".into(),
        });
    }
    ep.secret = secrets.current;
    for (p, s) in ep.previous_secrets.iter_mut().zip(secrets.previous) {
        p.secret = s;
    }
    Ok(ep)
}

fn check_value(master: &MasterKey) -> Result<Vec<u8>> {
    Ok(master.seal(CHECK_AAD, CHECK_TEXT)?)
}

/// Fails with [`LogError::WrongMasterKey`] unless `master` opens what the store sealed; returns
/// whether the store holds a key check yet.
fn check_key(db: &sled::Db, master: &MasterKey) -> Result<bool> {
    if let Some(v) = db.get(SECRETS_CHECK)? {
        return match master.open(CHECK_AAD, &v) {
            Some(p) if p == CHECK_TEXT => Ok(true),
            _ => Err(LogError::WrongMasterKey),
        };
    }
    if let Some(kv) = db.scan_prefix(Kind::SealedEndpoint.prefix()).next() {
        let (k, v) = kv?;
        open_endpoint(Some(master), &k, &v)?;
    }
    Ok(false)
}

impl SledStore {
    /// Opens the store with endpoint secrets sealed under `master`: hookd's way. Fails with
    /// [`LogError::WrongMasterKey`] if the store was sealed under another key. Endpoints found
    /// in plain text (a store from before secrets were sealed) are sealed first, by a rewrite
    /// that leaves no plain copy behind; returns how many.
    pub fn open_sealed(
        cfg: &SledConfig,
        background_flush: Option<Duration>,
        master: MasterKey,
    ) -> Result<(Self, usize)> {
        let store = Self::open_with_background_flush(cfg, background_flush)?;
        let has_check = check_key(&store.db, &master)?;
        let plain = store.db.scan_prefix(Kind::Endpoint.prefix()).count();
        let mut store = if plain > 0 {
            drop(store);
            reseal(cfg, Some(&master), &master)?;
            Self::open_with_background_flush(cfg, background_flush)?
        } else {
            if !has_check {
                store.db.insert(SECRETS_CHECK, check_value(&master)?)?;
                store.db.flush()?;
            }
            store
        };
        store.master = Some(master);
        Ok((store, plain))
    }
}

/// Re-seals every endpoint secret of the store at `cfg.path` under `to` and returns how many
/// endpoints it holds. Secrets sealed before need their key as `from` (checked first); plain
/// ones need none. The store must not be open: sled's lock refuses a second opener, such as a
/// running daemon.
pub fn rekey(cfg: &SledConfig, from: Option<&MasterKey>, to: &MasterKey) -> Result<usize> {
    {
        let store = SledStore::open_with_background_flush(cfg, None)?;
        if let Some(from) = from {
            check_key(&store.db, from)?;
        }
    }
    reseal(cfg, from, to)
}

fn sibling(path: &Path, ext: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(ext);
    path.with_file_name(name)
}

/// Copies the store into a fresh database with every secret sealed under `to`, then swaps it in.
fn reseal(cfg: &SledConfig, from: Option<&MasterKey>, to: &MasterKey) -> Result<usize> {
    let (tmp, old) = (sibling(&cfg.path, "rewrite"), sibling(&cfg.path, "old"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    let mut endpoints = 0;
    {
        let src = super::open_sled(
            sled::Config::new()
                .path(&cfg.path)
                .cache_capacity(cfg.cache_bytes),
        )?;
        let dst = super::open_sled(
            sled::Config::new()
                .path(&tmp)
                .cache_capacity(cfg.cache_bytes)
                .mode(sled::Mode::HighThroughput)
                .flush_every_ms(None),
        )?;
        for kv in src.iter() {
            let (k, v) = kv?;
            match k.first() {
                Some(b'p') => {
                    let ep = decode_endpoint(&k, &v)?;
                    dst.insert(sealed_endpoint_key(ep.id), seal_endpoint(to, &ep)?)?;
                    endpoints += 1;
                }
                Some(b'q') => {
                    let ep = open_endpoint(from, &k, &v)?;
                    dst.insert(k, seal_endpoint(to, &ep)?)?;
                    endpoints += 1;
                }
                _ if &*k == SECRETS_CHECK => {}
                _ => {
                    dst.insert(k, v)?;
                }
            }
        }
        dst.insert(SECRETS_CHECK, check_value(to)?)?;
        for name in src.tree_names() {
            if &*name == DEFAULT_TREE {
                continue;
            }
            let (s, d) = (src.open_tree(&name)?, dst.open_tree(&name)?);
            for kv in s.iter() {
                let (k, v) = kv?;
                d.insert(k, v)?;
            }
        }
        dst.flush()?;
    }
    std::fs::rename(&cfg.path, &old)?;
    std::fs::rename(&tmp, &cfg.path)?;
    sync_parent(&cfg.path)?;
    std::fs::remove_dir_all(&old)?;
    Ok(endpoints)
}

fn sync_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Completes or discards a rewrite that a crash interrupted (see the module doc).
pub(super) fn finish_rewrite(path: &Path) -> Result<()> {
    let (tmp, old) = (sibling(path, "rewrite"), sibling(path, "old"));
    if tmp.exists() {
        if path.exists() {
            std::fs::remove_dir_all(&tmp)?;
        } else {
            std::fs::rename(&tmp, path)?;
            sync_parent(path)?;
        }
    }
    if old.exists() {
        if path.exists() {
            std::fs::remove_dir_all(&old)?;
        } else {
            std::fs::rename(&old, path)?;
        }
    }
    Ok(())
}
