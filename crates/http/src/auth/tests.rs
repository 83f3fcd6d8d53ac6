use std::sync::Mutex;

use axum::routing::get;
use http_body_util::BodyExt;
use tower::ServiceExt;

use hookd_log::{KeyStore, LogError};
use hookd_types::{ApiKey, Scope, Scopes};

use super::*;

/// Keys in memory: the gate only needs the interface.
#[derive(Default)]
struct MemKeys(Mutex<Vec<ApiKey>>);

impl KeyStore for MemKeys {
    fn put_api_key(&self, key: &ApiKey) -> Result<(), LogError> {
        self.0.lock().unwrap().push(key.clone());
        Ok(())
    }
    fn delete_api_key(&self, id: KeyId) -> Result<(), LogError> {
        self.0.lock().unwrap().retain(|k| k.id != id);
        Ok(())
    }
    fn api_keys(&self) -> Result<Vec<ApiKey>, LogError> {
        Ok(self.0.lock().unwrap().clone())
    }
}

const ADMIN: &str = "admin-key-0123456789";
const TABLE: &[RouteAccess] = &[
    ("GET", "/events", Access::Scope(Scope::EventsRead)),
    ("GET", "/types", Access::AnyKey),
    ("GET", "/keys", Access::Admin),
];

fn registry() -> Arc<KeyRegistry> {
    Arc::new(KeyRegistry::load(Arc::new(MemKeys::default())).unwrap())
}

/// A key of tenant `acme` with `scopes`, stored in `keys`; its text.
fn issue(keys: &KeyRegistry, scopes: &[Scope], expires_at_ms: Option<u64>) -> String {
    let id = KeyId::generate();
    let (text, digest) = new_key(id).unwrap();
    keys.insert(ApiKey {
        id,
        tenant: "acme".into(),
        name: "test".into(),
        scopes: scopes.iter().copied().collect::<Scopes>(),
        key_sha256: digest,
        created_at_ms: 0,
        expires_at_ms,
    })
    .unwrap();
    text.expose().to_owned()
}

fn gate(keys: Arc<KeyRegistry>, rate: u32) -> Gate {
    Gate::new(
        AdminKey::from_hash(sha256(ADMIN.as_bytes())),
        keys,
        rate,
        &[TABLE],
    )
}

fn code(r: Result<Principal, ApiError>) -> &'static str {
    match r {
        Ok(Principal::Admin) => "admin",
        Ok(Principal::Tenant(_)) => "tenant",
        Err(e) => e.code.as_str(),
    }
}

#[test]
fn callers_resolve_to_admin_tenant_or_401() {
    let keys = registry();
    let live = issue(&keys, &[], None);
    let old = issue(&keys, &[], Some(1_000));
    let g = gate(keys, 0);
    assert_eq!(code(g.resolve(Some(ADMIN), 0)), "admin");
    assert_eq!(code(g.resolve(Some(&live), 0)), "tenant");
    assert_eq!(code(g.resolve(Some(&old), 999)), "tenant");
    assert_eq!(code(g.resolve(Some(&old), 1_000)), "UNAUTHORIZED");
    assert_eq!(code(g.resolve(None, 0)), "UNAUTHORIZED");
    // The right id with another secret, a key of no record, garbage: all the same 401.
    let forged = format!(
        "{}{}",
        &live[..live.len() - 1],
        if live.ends_with('0') { '1' } else { '0' }
    );
    let unknown = format_key(KeyId::generate(), &"0".repeat(SECRET_HEX_LEN));
    for bad in [forged.as_str(), unknown.as_str(), "hk_", "nonsense"] {
        let e = g.resolve(Some(bad), 0).err().unwrap();
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("UNAUTHORIZED", "invalid API key")
        );
    }
}

#[test]
fn new_keys_differ_and_only_their_digest_matches() {
    let id = KeyId::generate();
    let (a, da) = new_key(id).unwrap();
    let (b, _) = new_key(id).unwrap();
    assert_ne!(a.expose(), b.expose());
    assert_eq!(split_key(a.expose()), Some(id));
    assert!(digest_matches(a.expose(), &da));
    assert!(!digest_matches(b.expose(), &da));
    assert_eq!(format!("{a:?}"), "KeyText(<redacted>)");
}

async fn call(app: &axum::Router, key: &str, path: &str) -> (u16, String, Option<String>) {
    let req = http::Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {key}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let code = v["error"]["code"].as_str().unwrap_or("ok").to_owned();
    (status, code, retry)
}

fn app(g: Gate) -> axum::Router {
    let who = |p: Principal| async move { axum::Json(serde_json::json!({"tenant": p.tenant()})) };
    axum::Router::new()
        .route("/events", get(who))
        .route("/types", get(who))
        .route("/keys", get(who))
        .route("/unlisted", get(who))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(g),
            authenticate,
        ))
}

#[tokio::test]
async fn the_gate_applies_each_routes_access_to_keys_only() {
    let keys = registry();
    let reader = issue(&keys, &[Scope::EventsRead], None);
    let writer = issue(&keys, &[Scope::EventsWrite], None);
    let app = app(gate(keys, 0));
    for path in ["/events", "/types", "/keys", "/unlisted"] {
        assert_eq!(call(&app, ADMIN, path).await.0, 200, "{path}");
    }
    assert_eq!(call(&app, &reader, "/events").await.0, 200);
    assert_eq!(call(&app, &writer, "/events").await.1, "FORBIDDEN");
    assert_eq!(call(&app, &writer, "/types").await.0, 200);
    assert_eq!(call(&app, &reader, "/keys").await.1, "FORBIDDEN");
    assert_eq!(call(&app, &reader, "/unlisted").await.1, "NOT_FOUND");
    assert_eq!(call(&app, "wrong", "/types").await.1, "UNAUTHORIZED");
}

#[tokio::test]
async fn each_key_has_its_own_rate_limit_and_the_admin_none() {
    let keys = registry();
    let a = issue(&keys, &[], None);
    let b = issue(&keys, &[], None);
    let app = app(gate(keys, 2));
    // A burst of one second's worth passes, then the bucket refills a token per half second:
    // 50 calls pass only if each comes half a second after the one before.
    let mut refused = None;
    for _ in 0..50 {
        let (status, code, retry) = call(&app, &a, "/types").await;
        if status == 429 {
            refused = Some((code, retry));
            break;
        }
    }
    let (code, retry) = refused.expect("key a was never limited");
    assert_eq!(code, "RATE_LIMIT_EXCEEDED");
    assert!(retry.unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(
        call(&app, &b, "/types").await.0,
        200,
        "key b has its own bucket"
    );
    for _ in 0..10 {
        assert_eq!(call(&app, ADMIN, "/types").await.0, 200);
    }
}
