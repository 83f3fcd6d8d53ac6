//! The HTTP listener: accepts TCP connections under the `[server]` limits and serves the app on
//! each with hyper (HTTP/1.1, or HTTP/2 by prior knowledge).
//!
//! - At most `max_connections` are open at once. One more is accepted, sent a 503 `UNAVAILABLE`
//!   with `Retry-After` (readable by a client that has not sent anything yet; one that has may
//!   see a reset) and closed at once: a flood neither waits in the kernel's queue nor costs a task.
//! - A connection that sends nothing within `header_read_timeout` is closed; after its first byte
//!   hyper gives each request head (and each wait between keep-alive requests) the same time.
//! - A request head over `max_header_bytes` is answered 431 (HTTP/2: its header list is bounded
//!   the same).
//! - With `[tls]`, each connection's handshake runs in its own task after the first byte, bounded
//!   by [`crate::tls::HANDSHAKE_TIMEOUT`], so a stalled handshake holds one permit, not the loop.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

use tokio_rustls::TlsAcceptor;

use crate::config::ServerLimits;
use crate::tls::HANDSHAKE_TIMEOUT;

/// The whole answer to a connection over the limit.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 70\r\n\r\n\
{\"error\":{\"code\":\"UNAVAILABLE\",\"message\":\"too many open connections\"}}";

/// Serves `app` on `listener` until `stop` turns true, then lets open connections finish their
/// requests (the caller bounds how long it waits).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: let the others finish, then retry.
                    tracing::warn!(error = %e, "accepting a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            let _ = stream.try_write(BUSY);
            continue;
        };
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let app = app.clone();
        let first_byte = limits.header_read_timeout;
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if !sends_within(&stream, first_byte).await {
                return;
            }
            let service = TowerToHyperService::new(app);
            let ended = match tls {
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(conn).await
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let stream = match handshake.await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "tls handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("tls handshake timed out");
                            return;
                        }
                    };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    watcher.watch(conn).await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// True once `stream` has a byte to read, false if it closed or nothing came in `limit`.
/// (Readiness alone is no proof: a fresh socket may be reported readable with nothing in it.)
async fn sends_within(stream: &TcpStream, limit: Duration) -> bool {
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout(limit, stream.peek(&mut first)).await;
    matches!(peeked, Ok(Ok(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_answer_is_well_formed() {
        let text = std::str::from_utf8(BUSY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "UNAVAILABLE");
    }
}
