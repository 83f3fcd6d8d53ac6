//! The served OpenAPI document against the real daemon: open without a key, OpenAPI 3.1, and
//! every path it lists answers exactly the methods it lists (the router's `Allow` header); and
//! the bugs `scripts/schemathesis` found, each as the request that found it.

mod common;

use std::collections::BTreeSet;

use common::*;
use hyper::Method;
use serde_json::{json, Value};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_document_lists_each_path_with_the_methods_it_answers() {
    let (_dir, _rx, d) = setup(|c| c).await;
    let r = d.api.without_key().get("/openapi.json").await;
    let doc = r.expect(200).clone();
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["paths"]["/openapi.json"]["get"].is_object());
    // The configured event types are what `type` accepts.
    let types = &doc["components"]["schemas"]["EventInput"]["properties"]["type"]["enum"];
    assert!(
        types.as_array().unwrap().contains(&json!("job.completed")),
        "{types}"
    );

    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() > 20, "{} paths", paths.len());
    for (path, item) in paths {
        let documented: BTreeSet<String> = METHODS
            .iter()
            .filter(|m| item.get(**m).is_some())
            .map(|m| m.to_uppercase())
            .collect();
        // A method no route has: the router answers 404 with the route's `Allow`.
        let concrete = path.replace("{id}", "x");
        let probe = d
            .api
            .send(Method::from_bytes(b"PROBE").unwrap(), &concrete, None, &[])
            .await;
        probe.expect_error(404, "NOT_FOUND");
        let allow = probe
            .header("allow")
            .unwrap_or_else(|| panic!("{path}: no Allow header: {}", probe.text));
        let served: BTreeSet<String> = allow
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| m != "HEAD")
            .collect();
        assert_eq!(served, documented, "{path}: served {allow}, documented");
    }
}

/// Every `/v1` operation names the bearer scheme; the open ones name none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_follows_the_routes_access() {
    let (_dir, _rx, d) = setup(|c| c).await;
    let doc = d
        .api
        .without_key()
        .get("/openapi.json")
        .await
        .expect(200)
        .clone();
    let scopes = |path: &str, method: &str| -> Option<Value> {
        doc["paths"][path][method]["security"][0]
            .get("bearer")
            .cloned()
    };
    assert_eq!(scopes("/v1/events", "post"), Some(json!(["events:write"])));
    assert_eq!(scopes("/v1/event-types", "get"), Some(json!([])));
    assert_eq!(scopes("/v1/api-keys", "post"), Some(json!(["admin"])));
    assert_eq!(scopes("/health", "get"), None);
    assert_eq!(scopes("/openapi.json", "get"), None);
    assert!(doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer");
}

/// Found by schemathesis: an `expires_at` of unix milliseconds past year 9999 was stored, and
/// every answer that showed the key (its creation, then every list) panicked formatting it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_expiry_past_year_9999_is_refused() {
    let (_dir, _rx, d) = setup(|c| c).await;
    for expires_at in [
        json!(9_223_372_036_854_775_806u64),
        json!("253402300800000"),
    ] {
        let r = d
            .api
            .post(
                "/v1/api-keys",
                &json!({"tenant": "acme", "name": "ci", "scopes": ["events:write"],
                        "expires_at": expires_at}),
            )
            .await;
        r.expect_error(400, "VALIDATION_ERROR");
    }
    let list = d.api.get("/v1/api-keys").await;
    assert_eq!(list.expect(200)["data"], json!([]));
    // The last representable millisecond is still a valid expiry.
    let r = d
        .api
        .post(
            "/v1/api-keys",
            &json!({"tenant": "acme", "name": "ci", "scopes": ["events:write"],
                    "expires_at": "9999-12-31T23:59:59.999Z"}),
        )
        .await;
    assert_eq!(r.expect(201)["expires_at"], "9999-12-31T23:59:59.999Z");
}
