//! Endpoints a run creates in hookd (each under the run's own tenant) and deletes at its end.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hyper::Method;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::client::{self, HttpClient, Outcome, Target};

/// A fresh tenant name, `lt-<ms>-<pid>`: endpoints from earlier runs get none of its events.
pub fn fresh_tenant() -> String {
    format!(
        "lt-{}-{}",
        crate::meter::unix_us() / 1000,
        std::process::id()
    )
}

/// An endpoint for `tenant` subscribed to every type, `extra` fields merged in
/// (`retry_schedule`, ...).
pub fn endpoint_body(tenant: &str, name: &str, url: &str, extra: &Value) -> Value {
    let mut body = json!({
        "name": name,
        "url": url,
        "event_types": ["*"],
        "tenant": tenant,
        "description": "hookd-loadtest; deleted at the end of the run",
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    body
}

/// `n` endpoint bodies for `tenant` at `http://ADDR/<prefix><i>`, named `loadtest <prefix><i>`.
pub fn numbered(
    tenant: &str,
    prefix: &str,
    addr: std::net::SocketAddr,
    n: u64,
    extra: &Value,
) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let url = format!("http://{addr}/{prefix}{i}");
            endpoint_body(tenant, &format!("loadtest {prefix}{i}"), &url, extra)
        })
        .collect()
}

/// Creates the endpoints in order and returns their ids; on a failure deletes those made.
pub async fn create(
    client: &HttpClient,
    target: &Target,
    key: &str,
    bodies: &[Value],
    deadline: Instant,
) -> Result<Vec<String>> {
    let mut ids = Vec::with_capacity(bodies.len());
    let mut error = None;
    for (i, body) in bodies.iter().enumerate() {
        let req = client::request(
            Method::POST,
            &target.base,
            "/v1/endpoints",
            Some(key),
            Bytes::from(serde_json::to_vec(body)?),
        );
        match client::send(client, req, deadline).await {
            Outcome::Response(201, b) => {
                let v: Value = serde_json::from_slice(&b).context("endpoint response")?;
                match v["id"].as_str() {
                    Some(id) => ids.push(id.to_string()),
                    None => {
                        error = Some(format!("201 without an id: {v}"));
                        break;
                    }
                }
            }
            Outcome::Response(status, b) => {
                let mut msg = format!(
                    "creating endpoint {i}: {status} {}",
                    String::from_utf8_lossy(&b)
                );
                if status == 403 {
                    msg.push_str(" (start hookd with HOOKD_ALLOW_PRIVATE_TARGETS=true)");
                }
                error = Some(msg);
                break;
            }
            Outcome::Failed(kind) => {
                error = Some(format!(
                    "creating endpoint {i}: {kind} (is hookd at {}?)",
                    target.base
                ));
                break;
            }
        }
    }
    if let Some(e) = error {
        delete(client, target, key, &ids, deadline).await;
        bail!("{e}");
    }
    Ok(ids)
}

/// Deletes the endpoints (a few at a time), returns how many went.
pub async fn delete(
    client: &HttpClient,
    target: &Target,
    key: &str,
    ids: &[String],
    deadline: Instant,
) -> u64 {
    let mut deleted = 0;
    for chunk in ids.chunks(8) {
        let mut set = tokio::task::JoinSet::new();
        for id in chunk {
            let req = client::request(
                Method::DELETE,
                &target.base,
                &format!("/v1/endpoints/{id}"),
                Some(key),
                Bytes::new(),
            );
            let client = client.clone();
            set.spawn(async move { client::send(&client, req, deadline).await });
        }
        while let Some(r) = set.join_next().await {
            match r {
                Ok(Outcome::Response(204 | 404, _)) => deleted += 1,
                Ok(Outcome::Response(s, b)) => {
                    eprintln!("deleting an endpoint: {s} {}", String::from_utf8_lossy(&b))
                }
                Ok(Outcome::Failed(kind)) => eprintln!("deleting an endpoint: {kind}"),
                Err(e) => eprintln!("deleting an endpoint: {e}"),
            }
        }
    }
    if deleted < ids.len() as u64 {
        eprintln!(
            "warning: {} of {} endpoints left in hookd",
            ids.len() as u64 - deleted,
            ids.len()
        );
    }
    deleted
}

/// GETs `path` and parses the JSON answer; errors name the status.
pub async fn get_json(
    client: &HttpClient,
    target: &Target,
    key: &str,
    path: &str,
    deadline: Instant,
) -> Result<Value> {
    let req = client::request(Method::GET, &target.base, path, Some(key), Bytes::new());
    match client::send(client, req, deadline).await {
        Outcome::Response(200, b) => serde_json::from_slice(&b).context("JSON answer"),
        Outcome::Response(s, b) => bail!("GET {path}: {s} {}", String::from_utf8_lossy(&b)),
        Outcome::Failed(kind) => bail!("GET {path}: {kind}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_fields_are_merged() {
        let b = endpoint_body(
            "t",
            "n",
            "http://127.0.0.1:1/x",
            &json!({"retry_schedule": [60]}),
        );
        assert_eq!(b["retry_schedule"], json!([60]));
        assert_eq!(
            (b["tenant"].as_str(), b["event_types"][0].as_str()),
            (Some("t"), Some("*"))
        );
        assert!(fresh_tenant().starts_with("lt-"));
    }
}
