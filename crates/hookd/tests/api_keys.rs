//! Tenant-scoped API keys against the real daemon: a key reaches its own tenant only (another
//! tenant's ids are not found, not forbidden), each scope opens its routes and no others, keys
//! never manage keys, revocation and expiry apply to the next request, each key has its own rate
//! limit, and a key outlives a crash while its text is never stored or shown again.

mod common;

use common::keys::{files_containing, issue_key, IssuedKey};
use common::*;
use hyper::Method;
use serde_json::{json, Value};

const ALL_SCOPES: [&str; 6] = [
    "events:write",
    "events:read",
    "endpoints:read",
    "endpoints:write",
    "deliveries:read",
    "deliveries:write",
];

/// One tenant's records: an endpoint, an event and its delivered delivery.
struct Tenant {
    endpoint: String,
    event: String,
    delivery: String,
}

/// Creates `tenant`'s endpoint on the receiver, posts one event and waits for its delivery.
async fn populate(admin: &Api, rx: &Receiver, tenant: &str) -> Tenant {
    let (endpoint, _, _) = admin
        .create_endpoint(json!({
            "name": tenant, "tenant": tenant, "url": rx.url(&format!("/{tenant}")),
            "event_types": ["*"],
        }))
        .await;
    let ev = admin
        .post_event(json!({"type": "job.completed", "tenant": tenant, "data": {}}))
        .await;
    let event = ev["id"].as_str().unwrap().to_string();
    let ds = admin.wait_event_deliveries(&event, 1, PATIENCE).await;
    let delivery = ds[0]["id"].as_str().unwrap().to_string();
    admin
        .wait_delivery_status(&delivery, "delivered", PATIENCE)
        .await;
    Tenant {
        endpoint,
        event,
        delivery,
    }
}

/// Sends `method path` with an optional JSON body.
async fn call(api: &Api, method: &Method, path: &str, body: Option<&Value>) -> Resp {
    let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
    api.send(method.clone(), path, bytes.as_deref(), &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_tenants_ids_are_not_found_and_its_lists_are_out_of_reach() {
    let (_dir, rx, d) = setup(|c| c).await;
    let admin = &d.api;
    let acme = populate(admin, &rx, "acme").await;
    let globex = populate(admin, &rx, "globex").await;
    let key = issue_key(admin, "acme", &ALL_SCOPES, json!({})).await;
    let api = admin.with_key(&key.text);

    // Its own records answer.
    api.get(&format!("/v1/endpoints/{}", acme.endpoint))
        .await
        .expect(200);
    api.get(&format!("/v1/deliveries/{}", acme.delivery))
        .await
        .expect(200);
    api.get(&format!("/v1/events/{}", acme.event))
        .await
        .expect(200);

    // Globex's answer exactly as ids that never existed: 404 with the same message.
    let absent = Tenant {
        endpoint: "ep_01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
        event: "evt_never_posted".into(),
        delivery: "dlv_01ARZ3NDEKTSV4RRFFQ69G5FAV".into(),
    };
    let calls = |t: &Tenant| {
        vec![
            (Method::GET, format!("/v1/endpoints/{}", t.endpoint), None),
            (
                Method::PATCH,
                format!("/v1/endpoints/{}", t.endpoint),
                Some(json!({"description": "taken over"})),
            ),
            (
                Method::POST,
                format!("/v1/endpoints/{}/rotate-secret", t.endpoint),
                None,
            ),
            (
                Method::POST,
                format!("/v1/endpoints/{}/test", t.endpoint),
                Some(json!({"event_type": "job.completed"})),
            ),
            (
                Method::GET,
                format!("/v1/endpoints/{}/deliveries", t.endpoint),
                None,
            ),
            (Method::GET, format!("/v1/deliveries/{}", t.delivery), None),
            (
                Method::POST,
                format!("/v1/deliveries/{}/retry", t.delivery),
                None,
            ),
            (Method::GET, format!("/v1/events/{}", t.event), None),
            (
                Method::DELETE,
                format!("/v1/endpoints/{}", t.endpoint),
                None,
            ),
        ]
    };
    for ((method, path, body), (_, absent_path, _)) in
        calls(&globex).into_iter().zip(calls(&absent))
    {
        let theirs = call(&api, &method, &path, body.as_ref()).await;
        theirs.expect_error(404, "NOT_FOUND");
        let nothing = call(&api, &method, &absent_path, body.as_ref()).await;
        assert_eq!(
            theirs.body, nothing.body,
            "{method} {path}: another tenant's id must read as a missing one"
        );
    }
    // None of it touched globex: its endpoint is there, unchanged, still delivering.
    let ep = admin
        .get(&format!("/v1/endpoints/{}", globex.endpoint))
        .await;
    assert_eq!(ep.expect(200)["description"], "", "{}", ep.text);
    populate_event_delivered(admin, "globex").await;

    // Lists hold acme's records only; asking for globex's is refused outright.
    let list = api.get("/v1/endpoints").await;
    let tenants: Vec<_> = list.expect(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["tenant"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tenants, ["acme"], "{}", list.text);
    api.get("/v1/endpoints?tenant=globex")
        .await
        .expect_error(403, "FORBIDDEN");
    let all = admin.get("/v1/endpoints").await;
    assert_eq!(all.expect(200)["data"].as_array().unwrap().len(), 2);
}

/// Posts an event for `tenant` and waits for it to be delivered (its endpoint still works).
async fn populate_event_delivered(admin: &Api, tenant: &str) {
    let ev = admin
        .post_event(json!({"type": "job.completed", "tenant": tenant, "data": {}}))
        .await;
    let ds = admin
        .wait_event_deliveries(ev["id"].as_str().unwrap(), 1, PATIENCE)
        .await;
    admin
        .wait_delivery_status(ds[0]["id"].as_str().unwrap(), "delivered", PATIENCE)
        .await;
}

/// What a route needs that every key has.
const ANY_KEY: &str = "any key";

/// A call a key may or may not make: the scope it needs, and its status when allowed.
struct Route {
    method: Method,
    path: String,
    body: Option<Value>,
    needs: &'static str,
    allowed: u16,
}

impl Route {
    fn new(method: Method, path: &str, needs: &'static str, allowed: u16) -> Route {
        Route {
            method,
            path: path.to_string(),
            body: None,
            needs,
            allowed,
        }
    }

    fn body(mut self, body: Value) -> Route {
        self.body = Some(body);
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_scope_opens_its_routes_and_no_others() {
    let (_dir, rx, d) = setup(|c| c).await;
    let admin = &d.api;
    let acme = populate(admin, &rx, "acme").await;
    let ep = |p: &str| format!("/v1/endpoints/{}{p}", acme.endpoint);
    let new_endpoint = json!({"name": "n", "url": rx.url("/acme"), "event_types": ["*"]});
    for scope in ALL_SCOPES {
        let key = issue_key(admin, "acme", &[scope], json!({})).await;
        assert_eq!(key.body["scopes"], json!([scope]));
        let api = admin.with_key(&key.text);
        // A throwaway endpoint, so the delete below has something to remove.
        let (doomed, _, _) = admin
            .create_endpoint(json!({"name": "doomed", "tenant": "acme", "url": rx.url("/acme"), "event_types": ["*"]}))
            .await;
        let routes = [
            Route::new(Method::POST, "/v1/events", "events:write", 202)
                .body(json!({"type": "job.created", "data": {}})),
            Route::new(Method::POST, "/v1/events/batch", "events:write", 202)
                .body(json!([{"type": "job.created", "data": {}}])),
            Route::new(
                Method::GET,
                &format!("/v1/events/{}", acme.event),
                "events:read",
                200,
            ),
            Route::new(Method::GET, "/v1/event-types", ANY_KEY, 200),
            Route::new(Method::POST, "/v1/endpoints", "endpoints:write", 201)
                .body(new_endpoint.clone()),
            Route::new(Method::GET, "/v1/endpoints", "endpoints:read", 200),
            Route::new(Method::GET, &ep(""), "endpoints:read", 200),
            Route::new(Method::PATCH, &ep(""), "endpoints:write", 200)
                .body(json!({"description": scope})),
            Route::new(Method::POST, &ep("/rotate-secret"), "endpoints:write", 200),
            Route::new(Method::POST, &ep("/test"), "endpoints:write", 200)
                .body(json!({"event_type": "job.completed"})),
            Route::new(
                Method::DELETE,
                &format!("/v1/endpoints/{doomed}"),
                "endpoints:write",
                204,
            ),
            Route::new(Method::GET, &ep("/deliveries"), "deliveries:read", 200),
            Route::new(
                Method::GET,
                &format!("/v1/deliveries/{}", acme.delivery),
                "deliveries:read",
                200,
            ),
            // Delivered, so not retryable: 409 proves the request got past the gate.
            Route::new(
                Method::POST,
                &format!("/v1/deliveries/{}/retry", acme.delivery),
                "deliveries:write",
                409,
            ),
        ];
        for Route {
            method,
            path,
            body,
            needs,
            allowed,
        } in routes
        {
            let r = call(&api, &method, &path, body.as_ref()).await;
            if needs == ANY_KEY || needs == scope {
                assert_eq!(
                    r.status, allowed,
                    "{scope}: {method} {path} should pass: {}",
                    r.text
                );
            } else {
                r.expect_error(403, "FORBIDDEN");
            }
        }
    }

    // gpu.ai's `webhooks: write` creates endpoints: it is `endpoints:write` by another name.
    let key = issue_key(admin, "acme", &["webhooks: write"], json!({})).await;
    assert_eq!(key.body["scopes"], json!(["endpoints:write"]));
    let api = admin.with_key(&key.text);
    let (_, _, created) = api.create_endpoint(new_endpoint.clone()).await;
    assert_eq!(created["tenant"], "acme");
    api.get("/v1/endpoints")
        .await
        .expect_error(403, "FORBIDDEN");
    admin
        .post(
            "/v1/api-keys",
            &json!({"tenant": "acme", "name": "n", "scopes": ["events:delete"]}),
        )
        .await
        .expect_error(400, "VALIDATION_ERROR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_acts_for_its_own_tenant_only() {
    let (_dir, rx, d) = setup(|c| c).await;
    let admin = &d.api;
    let key = issue_key(admin, "acme", &ALL_SCOPES, json!({})).await;
    let api = admin.with_key(&key.text);

    // An event without a tenant is the key's; naming its own tenant is fine.
    let ev = api
        .post_event(json!({"type": "job.created", "id": "mine-1", "data": {}}))
        .await;
    assert_eq!(ev["tenant"], "acme");
    let ev = api
        .post_event(json!({"type": "job.created", "tenant": "acme", "data": {}}))
        .await;
    assert_eq!(ev["tenant"], "acme");

    // Another tenant's name is refused and nothing is stored.
    api.post(
        "/v1/events",
        &json!({"type": "job.created", "tenant": "globex", "id": "theirs-1", "data": {}}),
    )
    .await
    .expect_error(403, "FORBIDDEN");
    let batch = json!([
        {"type": "job.created", "id": "batch-0", "data": {}},
        {"type": "job.created", "tenant": "globex", "id": "batch-1", "data": {}},
    ]);
    let r = api.post("/v1/events/batch", &batch).await;
    r.expect_error(403, "FORBIDDEN");
    assert!(r.text.contains("events[1]"), "{}", r.text);
    for id in ["theirs-1", "batch-0", "batch-1"] {
        admin
            .get(&format!("/v1/events/{id}"))
            .await
            .expect_error(404, "NOT_FOUND");
    }
    assert_eq!(admin.event("mine-1").await["tenant"], "acme");

    // Endpoints likewise: its own tenant by default, another's refused.
    let (_, _, ep) = api
        .create_endpoint(json!({"name": "n", "url": rx.url("/x"), "event_types": ["*"]}))
        .await;
    assert_eq!(ep["tenant"], "acme");
    api.post(
        "/v1/endpoints",
        &json!({"name": "n", "tenant": "globex", "url": rx.url("/x"), "event_types": ["*"]}),
    )
    .await
    .expect_error(403, "FORBIDDEN");
    let globex = admin.get("/v1/endpoints?tenant=globex").await;
    assert_eq!(globex.expect(200)["data"], json!([]), "{}", globex.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revocation_applies_to_the_next_request_and_keys_never_manage_keys() {
    let (_dir, _rx, d) = setup(|c| c).await;
    let admin = &d.api;
    let key = issue_key(admin, "acme", &ALL_SCOPES, json!({})).await;
    let other = issue_key(admin, "acme", &["events:read"], json!({})).await;
    let api = admin.with_key(&key.text);

    // Not even a key with every scope reaches the key routes, for any key.
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/api-keys".to_string(),
            Some(json!({"tenant": "acme", "name": "n", "scopes": ["events:write"]})),
        ),
        (Method::GET, "/v1/api-keys".into(), None),
        (Method::GET, format!("/v1/api-keys/{}", other.id), None),
        (Method::DELETE, format!("/v1/api-keys/{}", other.id), None),
        (Method::DELETE, format!("/v1/api-keys/{}", key.id), None),
    ] {
        call(&api, &method, &path, body.as_ref())
            .await
            .expect_error(403, "FORBIDDEN");
    }
    let listed = admin.get("/v1/api-keys?tenant=acme").await;
    assert_eq!(
        listed.expect(200)["data"].as_array().unwrap().len(),
        2,
        "keys created or revoked by a key: {}",
        listed.text
    );
    admin
        .with_key(&other.text)
        .get("/v1/event-types")
        .await
        .expect(200);

    // Revoked: the very next request is refused.
    api.get("/v1/event-types").await.expect(200);
    admin
        .delete(&format!("/v1/api-keys/{}", key.id))
        .await
        .expect(204);
    api.get("/v1/event-types")
        .await
        .expect_error(401, "UNAUTHORIZED");
    admin
        .get(&format!("/v1/api-keys/{}", key.id))
        .await
        .expect_error(404, "NOT_FOUND");
    admin
        .delete(&format!("/v1/api-keys/{}", key.id))
        .await
        .expect_error(404, "NOT_FOUND");
    admin
        .with_key(&other.text)
        .get("/v1/event-types")
        .await
        .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_key_is_401() {
    let (_dir, _rx, d) = setup(|c| c).await;
    let admin = &d.api;
    admin
        .post(
            "/v1/api-keys",
            &json!({"tenant": "acme", "name": "n", "scopes": ["events:read"], "expires_at": "2020-01-01T00:00:00Z"}),
        )
        .await
        .expect_error(400, "VALIDATION_ERROR");
    let expires_ms = unix_now() * 1000 + 2_000;
    let key = issue_key(
        admin,
        "acme",
        &["events:read"],
        json!({"expires_at": expires_ms}),
    )
    .await;
    assert_eq!(unix_ms(&key.body["expires_at"]), expires_ms);
    let api = admin.with_key(&key.text);
    let r = wait_for(
        || async {
            let r = api.get("/v1/event-types").await;
            match r.status {
                401 => Ok(r),
                200 => Err("still accepted".to_string()),
                s => panic!("unexpected {s}: {}", r.text),
            }
        },
        "the key to expire",
        PATIENCE,
    )
    .await;
    assert!(
        unix_now() * 1000 >= expires_ms,
        "refused before its expiry: {}",
        r.text
    );
    r.expect_error(401, "UNAUTHORIZED");
    assert!(r.text.contains("expired"), "{}", r.text);
    // Expired is not revoked: the admin still sees it.
    admin
        .get(&format!("/v1/api-keys/{}", key.id))
        .await
        .expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_key_is_rate_limited_on_its_own() {
    let (_dir, _rx, d) = setup(|c| c.set("auth", "key_rate_limit", "2")).await;
    let admin = &d.api;
    let a = admin.with_key(
        &issue_key(admin, "acme", &["events:read"], json!({}))
            .await
            .text,
    );
    let b = admin.with_key(
        &issue_key(admin, "acme", &["events:read"], json!({}))
            .await
            .text,
    );
    // Two requests a second with a burst of two: 50 requests all pass only if each comes half
    // a second after the one before.
    let mut refused = None;
    for _ in 0..50 {
        let r = a.get("/v1/event-types").await;
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        r.expect(200);
    }
    let r = refused.expect("50 requests at 2/s were never limited");
    r.expect_error(429, "RATE_LIMIT_EXCEEDED");
    let wait: u64 = r
        .header("retry-after")
        .expect("429 without Retry-After")
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(wait >= 1, "Retry-After {wait}");
    b.get("/v1/event-types").await.expect(200);
    for _ in 0..5 {
        admin.get("/v1/event-types").await.expect(200);
    }
    wait_for(
        || async {
            match a.get("/v1/event-types").await.status {
                200 => Ok(()),
                s => Err(format!("still {s}")),
            }
        },
        "key a's bucket to refill",
        PATIENCE,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_survives_a_crash_and_its_text_is_never_stored_or_shown_again() {
    let (dir, _rx, mut d) = setup(|c| c).await;
    let tenant = "tenant-marker-7f3a9c";
    let IssuedKey { id, text, body } = issue_key(&d.api, tenant, &["events:read"], json!({})).await;
    let secret = text.rsplit('_').next().unwrap().to_string();
    assert_eq!(secret.len(), 64, "{text}");
    assert!(text.starts_with("hk_"), "{text}");
    assert_eq!(body["id"], id.as_str());
    d.api
        .with_key(&text)
        .get("/v1/event-types")
        .await
        .expect(200);

    // Shown once: reading or listing never returns it.
    let one = d.api.get(&format!("/v1/api-keys/{id}")).await;
    let all = d.api.get("/v1/api-keys").await;
    for r in [&one, &all] {
        r.expect(200);
        assert!(!r.text.contains(&secret), "key text in {}", r.text);
    }
    assert!(one.body.get("key").is_none(), "{}", one.text);
    assert_eq!(one.body["tenant"], tenant);

    // Created means durable: a kill -9 right after does not lose it.
    d.proc.kill9();
    let mut printed = [d.proc.stdout_lines(), d.proc.stderr_lines()].concat();
    let mut d = Daemon::start_path(&d.config_path, &[]).await;
    let api = d.api.with_key(&text);
    api.get("/v1/event-types").await.expect(200);
    d.proc.sigterm();
    d.proc.expect_exit(PATIENCE).await;

    // Nothing either daemon printed holds the key.
    printed.extend([d.proc.stdout_lines(), d.proc.stderr_lines()].concat());
    assert!(printed.iter().any(|l| l.contains("listening on")));
    for line in printed {
        assert!(
            !line.contains(&secret),
            "key in the daemon's output: {line}"
        );
    }
    // The data directory holds the key's record (its tenant is there) but not its text, in
    // either spelling of the secret.
    let data = dir.path().join("data");
    assert!(
        !files_containing(&data, tenant.as_bytes()).is_empty(),
        "the search cannot find even the key's tenant in {}",
        data.display()
    );
    let raw: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&secret[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    for needle in [text.as_bytes(), secret.as_bytes(), &raw] {
        let hits = files_containing(&data, needle);
        assert!(hits.is_empty(), "key material found in {hits:?}");
    }
}
