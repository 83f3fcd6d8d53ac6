//! Tenant API keys from outside: issuing one through the admin API, and searching the data
//! directory for bytes that must never be written there.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::Api;

/// A key issued by the admin: its id, its text (shown once) and the creation answer.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub id: String,
    pub text: String,
    pub body: Value,
}

/// `POST /v1/api-keys` with `extra` fields laid over `{tenant, name, scopes}`, expecting 201.
pub async fn issue_key(admin: &Api, tenant: &str, scopes: &[&str], extra: Value) -> IssuedKey {
    let mut body = json!({"tenant": tenant, "name": format!("{tenant} key"), "scopes": scopes});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = admin.post("/v1/api-keys", &body).await;
    let v = r.expect(201).clone();
    let id = v["id"].as_str().expect("key without id").to_string();
    let text = v["key"]
        .as_str()
        .expect("created key without its text")
        .to_string();
    IssuedKey { id, text, body: v }
}

/// Every regular file under `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    assert!(!needle.is_empty());
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            {
                hits.push(path);
            }
        }
    }
    hits
}
