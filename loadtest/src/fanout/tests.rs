//! `fanout` against a fake hookd that fans batches out at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use super::*;
use crate::client::{self, HttpClient, Target};
use crate::receiver::test_receiver;
use crate::report::fanout_json;
use crate::RunCtx;

/// Just enough of hookd for fanout: endpoints in memory, batches fanned out at once.
#[derive(Default)]
struct FakeHookd {
    endpoints: Mutex<Vec<(String, String)>>,
    deleted: AtomicU64,
    next: AtomicU64,
}

async fn fake_hookd(
    req: Request<Incoming>,
    state: Arc<FakeHookd>,
    client: HttpClient,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let reply = |status: u16, body: Value| {
        let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
        Ok(r)
    };
    if req.headers().get("authorization").map(|v| v.as_bytes()) != Some(b"Bearer k") {
        return reply(401, json!({"error": {"code": "UNAUTHORIZED"}}));
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    match (method, path.as_str()) {
        (Method::POST, "/v1/endpoints") => {
            let v: Value = serde_json::from_slice(&body).unwrap();
            let id = format!("ep_{}", state.next.fetch_add(1, Ordering::Relaxed));
            let url = v["url"].as_str().unwrap().to_string();
            state.endpoints.lock().unwrap().push((id.clone(), url));
            reply(201, json!({"id": id}))
        }
        (Method::POST, "/v1/events/batch") => {
            let events: Vec<Value> = serde_json::from_slice(&body).unwrap();
            let urls: Vec<String> = state
                .endpoints
                .lock()
                .unwrap()
                .iter()
                .map(|(_, u)| u.clone())
                .collect();
            for _ in &events {
                let id = format!("evt_{}", state.next.fetch_add(1, Ordering::Relaxed));
                for url in &urls {
                    let req = hyper::Request::builder()
                        .method(Method::POST)
                        .uri(url)
                        .header("webhook-id", id.as_str())
                        .body(Full::new(Bytes::from_static(b"{}")))
                        .unwrap();
                    let client = client.clone();
                    tokio::spawn(async move {
                        let _ = client.request(req).await;
                    });
                }
            }
            reply(202, json!({"data": []}))
        }
        (Method::DELETE, p) if p.starts_with("/v1/endpoints/") => {
            state.deleted.fetch_add(1, Ordering::Relaxed);
            reply(204, Value::Null)
        }
        _ => reply(404, json!({"error": {"code": "NOT_FOUND"}})),
    }
}

/// Starts the fake hookd on the current runtime.
async fn spawn_fake_hookd() -> (Target, Arc<FakeHookd>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(FakeHookd::default());
    let server_state = state.clone();
    tokio::spawn(async move {
        let client = client::new_client(64);
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (state, client) = (server_state.clone(), client.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    fake_hookd(req, state.clone(), client.clone())
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (
        client::parse_target(&format!("http://{addr}")).unwrap(),
        state,
    )
}

fn fanout_args(endpoints: u64, events: u64) -> FanoutArgs {
    FanoutArgs {
        endpoints,
        events,
        post: crate::cli::PostArgs {
            concurrency: 2,
            batch: 100,
            types: vec!["instance.ready".into()],
            event_bytes: 0,
        },
        hookd_pid: None,
        reads: crate::reads::ReadArgs {
            reads: 1,
            read_limit: 10,
        },
    }
}

#[test]
fn fanout_against_fake_hookd() {
    let meter = Arc::new(Meter::default());
    let recv = Receiver::embedded(1, meter.clone()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (r, deleted) = rt.block_on(async {
        let (target, state) = spawn_fake_hookd().await;
        let ctx = RunCtx::for_tests(20.0);
        let pid = Some(std::process::id());
        let r = fanout_mode(&recv, meter, &target, "k", &fanout_args(3, 250), pid, &ctx)
            .await
            .unwrap();
        (r, state.deleted.load(Ordering::Relaxed))
    });
    assert!(r.complete, "{r:?}");
    assert_eq!((r.expected, r.deliveries, r.events_ok), (750, 750, 250));
    assert_eq!((r.deleted, deleted), (3, 3));
    assert!(r.hookd_cpu.is_some());
    assert!(fanout_json(&r).starts_with(r#"{"mode":"fanout","deliveries":750,"#));
    drop(rt);
}

#[test]
fn fanout_reports_bad_key() {
    let recv = test_receiver();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt.block_on(async {
        let (target, _) = spawn_fake_hookd().await;
        let ctx = RunCtx::for_tests(10.0);
        fanout_mode(
            &recv,
            Arc::default(),
            &target,
            "wrong",
            &fanout_args(1, 1),
            None,
            &ctx,
        )
        .await
        .unwrap_err()
    });
    assert!(err.to_string().contains("401"), "{err}");
    drop(rt);
}
