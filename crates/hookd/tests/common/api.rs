//! A small HTTP/1 client for the daemon's API (`docs/API.md`), and checks of its answers.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::{Method, Request};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::ADMIN_KEY;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A response from the daemon.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body parsed as JSON, `Value::Null` when empty, `Value::String(text)` when not JSON.
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("<non-ascii>").to_string())
    }

    /// Asserts the status and returns the body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(
            self.status, status,
            "expected HTTP {status}, got {} with body {}",
            self.status, self.text
        );
        &self.body
    }

    /// Asserts `{"error": {"code": code, "message": "<non-empty>"}}` with `status`.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status, status,
            "expected HTTP {status} {code}, got {} with body {}",
            self.status, self.text
        );
        assert_error_shape(&self.body, code, &self.text);
    }
}

#[track_caller]
pub fn assert_error_shape(body: &Value, code: &str, text: &str) {
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("error body is not a JSON object: {text:?}"));
    assert_eq!(
        obj.len(),
        1,
        "error body must be exactly {{\"error\": {{...}}}}, got {text}"
    );
    let err = obj
        .get("error")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("error body has no `error` object: {text}"));
    assert_eq!(
        err.get("code").and_then(Value::as_str),
        Some(code),
        "wrong error code in {text}"
    );
    let msg = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("error has no string `message`: {text}"));
    assert!(!msg.is_empty(), "error message is empty: {text}");
    for k in err.keys() {
        assert!(
            k == "code" || k == "message",
            "unexpected key {k:?} in error object: {text}"
        );
    }
}

/// A small HTTP/1 client for the daemon API. Sends `Authorization: Bearer <ADMIN_KEY>` unless
/// told otherwise.
#[derive(Clone)]
pub struct Api {
    base: String,
    authorization: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    pub fn new(base: &str) -> Api {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(5))
            .build_http();
        Api {
            base: base.trim_end_matches('/').to_string(),
            authorization: Some(format!("Bearer {ADMIN_KEY}")),
            client,
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The same client without an `Authorization` header.
    pub fn without_key(&self) -> Api {
        Api {
            authorization: None,
            ..self.clone()
        }
    }

    /// The same client sending `Authorization: <value>` verbatim.
    pub fn with_authorization(&self, value: &str) -> Api {
        Api {
            authorization: Some(value.to_string()),
            ..self.clone()
        }
    }

    /// The same client with bearer `key`.
    pub fn with_key(&self, key: &str) -> Api {
        self.with_authorization(&format!("Bearer {key}"))
    }

    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Result<Resp, String> {
        let uri = format!("{}{}", self.base, path);
        let mut req = Request::builder().method(method.clone()).uri(&uri);
        if let Some(auth) = &self.authorization {
            req = req.header("authorization", auth);
        }
        if body.is_some()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header("content-type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
            .map_err(|e| format!("build request {method} {uri}: {e}"))?;
        let fut = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| format!("{method} {uri}: {e:?}"))?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{method} {uri}: reading body: {e}"))?
                .to_bytes();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let body = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(text.clone()))
            };
            Ok(Resp {
                status,
                headers,
                body,
                text,
            })
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, fut).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "{method} {uri}: no answer within {REQUEST_TIMEOUT:?}"
            )),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Resp {
        match self.try_send(method, path, body, headers).await {
            Ok(r) => r,
            Err(e) => panic!("request failed: {e}"),
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(Method::GET, path, None, &[]).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(Method::DELETE, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        let b = serde_json::to_vec(body).unwrap();
        self.send(Method::POST, path, Some(&b), &[]).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        let b = serde_json::to_vec(body).unwrap();
        self.send(Method::PATCH, path, Some(&b), &[]).await
    }

    /// POST a raw body (sent byte for byte) with extra headers.
    pub async fn post_raw(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> Resp {
        self.send(Method::POST, path, Some(body.as_bytes()), headers)
            .await
    }

    // ----- typed helpers -----

    /// POST /v1/endpoints, expecting 201; returns (endpoint id, secret, body).
    pub async fn create_endpoint(&self, body: Value) -> (String, String, Value) {
        let r = self.post("/v1/endpoints", &body).await;
        let v = r.expect(201).clone();
        let id = v["id"]
            .as_str()
            .unwrap_or_else(|| panic!("endpoint without id: {}", r.text))
            .to_string();
        let secret = v["secret"]
            .as_str()
            .unwrap_or_else(|| panic!("created endpoint without secret: {}", r.text))
            .to_string();
        (id, secret, v)
    }

    /// POST /v1/events, expecting 202; returns the event.
    pub async fn post_event(&self, body: Value) -> Value {
        let r = self.post("/v1/events", &body).await;
        r.expect(202).clone()
    }

    pub async fn event(&self, id: &str) -> Value {
        let r = self.get(&format!("/v1/events/{id}")).await;
        r.expect(200).clone()
    }

    pub async fn delivery(&self, id: &str) -> Value {
        let r = self.get(&format!("/v1/deliveries/{id}")).await;
        r.expect(200).clone()
    }

    /// Polls `GET /v1/events/{event_id}` until it lists `n` deliveries; returns them.
    pub async fn wait_event_deliveries(
        &self,
        event_id: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let ev = self.event(event_id).await;
            let ds = ev["deliveries"].as_array().cloned().unwrap_or_default();
            if ds.len() >= n {
                return ds;
            }
            if Instant::now() >= deadline {
                panic!("event {event_id} has not {n} deliveries after {timeout:?}: {ev}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls `GET /v1/deliveries/{id}` until its status is `status`; returns it.
    pub async fn wait_delivery_status(&self, id: &str, status: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let d = self.delivery(id).await;
            if d["status"] == status {
                return d;
            }
            if Instant::now() >= deadline {
                panic!("delivery {id} is not {status} after {timeout:?}: {d}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
