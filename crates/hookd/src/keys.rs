//! The daemon's own keys, none of which ever reaches a log stream:
//! - the master key that seals endpoint secrets at rest: `HOOKD_MASTER_KEY`, else the key file,
//!   created with a random key (readable only by its owner) on the first start;
//! - the admin key: configured, else the stored hash, else generated once and handed over on a
//!   terminal or in a file readable only by its owner.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::Context;

use hookd_http::auth::sha256;
use hookd_http::AdminKey;
use hookd_log::{MasterKey, Store};

use crate::config::{Config, MasterKeySource};

const ADMIN_KEY_META: &str = "admin_key_sha256";
const ADMIN_KEY_FILE: &str = "admin.key";

/// The master key and, if this start created its file, where.
pub struct Master {
    pub key: MasterKey,
    pub created: Option<std::path::PathBuf>,
}

/// The configured master key; a key file that does not exist yet is created.
pub fn master_key(source: &MasterKeySource) -> anyhow::Result<Master> {
    let path = match source {
        MasterKeySource::Env(key) => {
            return Ok(Master {
                key: MasterKey::clone(key),
                created: None,
            })
        }
        MasterKeySource::File(path) => path,
    };
    if let Some(key) = read_key_file(path)? {
        return Ok(Master { key, created: None });
    }
    let key = create_key_file(path)?;
    tracing::warn!(
        path = %path.display(),
        "created a master key file for the endpoint secrets at rest: keep it, and back it up \
         apart from the data directory"
    );
    Ok(Master {
        key,
        created: Some(path.clone()),
    })
}

/// A new random master key, written to `path` readable only by its owner.
pub fn create_key_file(path: &Path) -> anyhow::Result<MasterKey> {
    let key = MasterKey::generate()?;
    write_owner_only(path, format!("{}\n", key.to_base64()).as_bytes())
        .with_context(|| format!("creating the master key file {}", path.display()))?;
    Ok(key)
}

/// The master key in `path`; `None` if there is no such file.
pub fn read_key_file(path: &Path) -> anyhow::Result<Option<MasterKey>> {
    match std::fs::read_to_string(path) {
        Ok(text) => MasterKey::parse(&text)
            .map(Some)
            .with_context(|| format!("master key file {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!(
            "reading the master key file {}: {e}",
            path.display()
        )),
    }
}

/// The configured current key for `hookd rekey`: like [`master_key`], but a missing file is no
/// key (a store that never had one holds its secrets in plain text) rather than a new one.
pub fn current_master_key(source: &MasterKeySource) -> anyhow::Result<Option<MasterKey>> {
    match source {
        MasterKeySource::Env(key) => Ok(Some(MasterKey::clone(key))),
        MasterKeySource::File(path) => read_key_file(path),
    }
}

/// Writes `contents` to `path` readable and writable by its owner only, atomically (a temporary
/// file beside it, renamed over it).
pub fn write_owner_only(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The configured key, else the stored hash, else a new key handed over once (only its hash
/// kept): printed when stdout is a terminal, else written to `<data_dir>/admin.key`.
pub fn admin_key(cfg: &Config, store: &dyn Store) -> anyhow::Result<AdminKey> {
    if let Some(k) = &cfg.admin_key {
        return Ok(AdminKey::from_hash(sha256(k.as_bytes())));
    }
    if let Some(h) = store.get_meta(ADMIN_KEY_META)? {
        let hash: [u8; 32] = h
            .as_slice()
            .try_into()
            .context("stored admin key hash is corrupt")?;
        return Ok(AdminKey::from_hash(hash));
    }
    let key = format!(
        "hk_{}",
        hookd_sender::sign::generate_secret().trim_start_matches("whsec_")
    )
    .replace(['+', '/', '='], "");
    // Handed over before its hash is stored: a start that fails in between leaves no key
    // nobody has.
    if std::io::stdout().is_terminal() {
        println!("admin key (shown once, only its hash is stored): {key}");
    } else {
        let path = cfg.data_dir.join(ADMIN_KEY_FILE);
        write_owner_only(&path, format!("{key}\n").as_bytes())
            .with_context(|| format!("writing the generated admin key to {}", path.display()))?;
        tracing::warn!(
            path = %path.display(),
            "generated an admin key and wrote it to this file, readable only by its owner \
             (only its hash is stored): delete the file once the key is kept elsewhere"
        );
    }
    store.put_meta(ADMIN_KEY_META, &sha256(key.as_bytes()))?;
    Ok(AdminKey::from_hash(sha256(key.as_bytes())))
}
