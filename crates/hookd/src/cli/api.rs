//! One request to the daemon's API and its answer: hyper-util's client over rustls (the stack
//! the sender already uses), the key in a sensitive `authorization` header, every wait bounded
//! by `--timeout`, and each failure sorted into a [`CliError`] kind.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::Value;

use super::{CliError, Connection};

/// No answer of the API comes near this; a bigger one is not hookd's.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Characters left as they are in a path segment: RFC 3986's unreserved ones.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A client of one daemon.
pub struct Api {
    base: String,
    authorization: HeaderValue,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A 2xx answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body as JSON (`Null` when empty).
    pub body: Value,
    pub raw: Bytes,
}

impl Answer {
    /// The body as received (the API sends UTF-8 JSON).
    pub fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }
}

impl Api {
    /// Checks the URL, the key and the CA file; connects on the first request.
    pub fn new(conn: &Connection) -> Result<Api, CliError> {
        let base = base_url(&conn.url)?;
        let key = conn.api_key.as_ref().ok_or_else(|| {
            CliError::Usage("no API key: set HOOKD_API_KEY (or pass --api-key)".to_owned())
        })?;
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
            .map_err(|_| {
                CliError::Usage("the API key holds characters a header cannot carry".to_owned())
            })?;
        authorization.set_sensitive(true);

        let mut roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &conn.ca_file {
            for cert in read_ca_file(path)? {
                roots
                    .add(cert)
                    .map_err(|e| CliError::Usage(format!("--ca-file {}: {e}", path.display())))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::Usage(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        // `--timeout` bounds the whole exchange, connecting included (see `call`).
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        Ok(Api {
            base,
            authorization,
            client: Client::builder(TokioExecutor::new()).build(https),
            timeout: conn.timeout,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Answer, CliError> {
        self.call(Method::GET, path, None, &[]).await
    }

    pub async fn delete(&self, path: &str) -> Result<Answer, CliError> {
        self.call(Method::DELETE, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: &impl serde::Serialize) -> Result<Answer, CliError> {
        self.post_keyed(path, body, None).await
    }

    /// A POST that carries `Idempotency-Key: key` when one is given: the server answers a
    /// repeat as it answered the first.
    pub async fn post_keyed(
        &self,
        path: &str,
        body: &impl serde::Serialize,
        key: Option<&str>,
    ) -> Result<Answer, CliError> {
        let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
        self.call(Method::POST, path, Some(to_json(body)?), &headers)
            .await
    }

    pub async fn patch(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<Answer, CliError> {
        self.call(Method::PATCH, path, Some(to_json(body)?), &[])
            .await
    }

    /// `method` on `path` (ids encoded with [`seg`]) with a JSON `body` and extra
    /// `headers`. A 2xx answer is `Ok`; any other status is [`CliError::Api`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, CliError> {
        let uri = format!("{}{path}", self.base);
        let mut req = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(USER_AGENT, concat!("hookd-cli/", env!("CARGO_PKG_VERSION")));
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| CliError::Usage(format!("{method} {uri}: {e}")))?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                CliError::Connection(format!("{method} {uri}: {}", error_chain(&e)))
            })?;
            let (head, body) = resp.into_parts();
            let raw = Limited::new(body, MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    CliError::Connection(format!("{method} {uri}: reading the answer: {e}"))
                })?
                .to_bytes();
            Ok::<_, CliError>((head, raw))
        };
        let (head, raw) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                CliError::Connection(format!(
                    "{method} {uri}: no answer within {}",
                    humantime::format_duration(self.timeout)
                ))
            })??;
        let status = head.status.as_u16();
        if !head.status.is_success() {
            return Err(api_error(status, &raw));
        }
        // Only a DELETE is answered without a body (204).
        let body = if raw.is_empty() && method == Method::DELETE {
            Value::Null
        } else {
            serde_json::from_slice(&raw).map_err(|_| {
                CliError::Connection(format!(
                    "{method} {uri}: the answer (HTTP {status}) is not JSON; is {} a hookd API?",
                    self.base
                ))
            })?
        };
        Ok(Answer {
            status,
            headers: head.headers,
            body,
            raw,
        })
    }
}

/// `id` percent-encoded as one path segment: `format!("/v1/endpoints/{}", seg(id))`.
pub fn seg(id: &str) -> String {
    utf8_percent_encode(id, SEGMENT).to_string()
}

/// `?a=1&b=x` from the pairs whose value is set; empty when none is.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if let Some(v) = v {
            ser.append_pair(k, v);
            any = true;
        }
    }
    if any {
        format!("?{}", ser.finish())
    } else {
        String::new()
    }
}

/// The base URL without its trailing slash; http or https, a host, no query.
pub fn base_url(url: &str) -> Result<String, CliError> {
    let bad = |why: &str| CliError::Usage(format!("--url / HOOKD_URL {url:?}: {why}"));
    let uri: Uri = url
        .parse()
        .map_err(|_| bad("not a URL like http://127.0.0.1:8080"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("the scheme must be http or https")),
    }
    if uri.authority().is_none_or(|a| a.host().is_empty()) {
        return Err(bad("no host"));
    }
    if uri.query().is_some() {
        return Err(bad("a base URL takes no query"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn read_ca_file(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, CliError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| CliError::Usage(format!("--ca-file {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(CliError::Usage(format!(
            "--ca-file {}: holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

fn to_json(body: &impl serde::Serialize) -> Result<Vec<u8>, CliError> {
    serde_json::to_vec(body).map_err(|e| CliError::Usage(format!("encoding the request: {e}")))
}

/// The API's `{"error": {"code", "message"}}`, or the status and a line of whatever came.
pub fn api_error(status: u16, raw: &[u8]) -> CliError {
    let parsed: Option<(String, String)> =
        serde_json::from_slice::<Value>(raw).ok().and_then(|v| {
            let e = v.get("error")?;
            Some((
                e.get("code")?.as_str()?.to_owned(),
                e.get("message")?.as_str()?.to_owned(),
            ))
        });
    let (code, message) = parsed.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(raw);
        let line = text
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect::<String>();
        let message = if line.trim().is_empty() {
            "(no body)".to_owned()
        } else {
            line
        };
        (format!("HTTP_{status}"), message)
    });
    CliError::Api {
        status,
        code: super::output::one_line(&code),
        message: super::output::one_line(&message),
    }
}

/// `e: its source: ...`: hyper-util's client error says little without its sources.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = s.source();
    }
    out
}
