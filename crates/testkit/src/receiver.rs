//! [`Receiver`]: a real hyper server (HTTP/1.1 and HTTP/2, plain or TLS) on a loopback port that
//! records what it gets and answers as each path is scripted.
//!
//! Every request is read to its end, counted ([`Counts`]), recorded ([`Recorded`]) unless the
//! receiver only counts ([`Record::Counts`], for throughput runs where keeping every request
//! would cost memory and time), and only then answered, so a request is visible to the `wait_*`
//! helpers as soon as it has arrived, even when its answer is delayed or never comes.
//!
//! Dropping the receiver stops it: the listener and every open connection are closed.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::record::{describe, Counts, Observer, Record, Recorded};
use crate::reply::Reply;
use crate::serve::{accept_loop, lock, Shared};
use crate::tls::{SelfSigned, TlsError};

/// Pending connections the listener queues.
const BACKLOG: u32 = 4096;

/// How to start a [`Receiver`].
#[derive(Debug, Clone)]
pub struct Builder {
    listen: SocketAddr,
    record: Record,
    default: Reply,
    post_only: bool,
    http1_only: bool,
    observer: Option<Observer>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            record: Record::Requests,
            default: Reply::Status(204),
            post_only: false,
            http1_only: false,
            observer: None,
            tls: None,
        }
    }
}

impl Builder {
    /// The address to listen on: loopback only (default `127.0.0.1:0`).
    pub fn listen(mut self, addr: SocketAddr) -> Builder {
        self.listen = addr;
        self
    }

    pub fn record(mut self, record: Record) -> Builder {
        self.record = record;
        self
    }

    /// The reply of paths without a script (default `Reply::Status(204)`).
    pub fn default_reply(mut self, reply: Reply) -> Builder {
        self.default = reply;
        self
    }

    /// Answers anything but POST with 405, without counting it as a request.
    pub fn post_only(mut self, yes: bool) -> Builder {
        self.post_only = yes;
        self
    }

    /// Speaks HTTP/1.1 only (default: HTTP/1.1 or HTTP/2, told apart by the connection's first
    /// bytes). Saves the sniffing where every request counts, as in load runs.
    pub fn http1_only(mut self, yes: bool) -> Builder {
        self.http1_only = yes;
        self
    }

    /// Calls `observer` with every request counted, before it is answered.
    pub fn observe(mut self, observer: Observer) -> Builder {
        self.observer = Some(observer);
        self
    }

    /// Serves https with `cert` (h2 and http/1.1 by ALPN).
    pub fn tls(mut self, cert: &SelfSigned) -> Result<Builder, TlsError> {
        self.tls = Some(cert.server_config()?);
        Ok(self)
    }

    /// Binds and starts serving on the current tokio runtime.
    pub async fn start(self) -> io::Result<Receiver> {
        if !self.listen.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to listen on {}: loopback only", self.listen),
            ));
        }
        let sock = match self.listen {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        sock.set_reuseaddr(true)?;
        sock.bind(self.listen)?;
        let listener = sock.listen(BACKLOG)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(
            self.record,
            self.default,
            self.post_only,
            self.http1_only,
            self.observer,
        ));
        let (stop, stopped) = watch::channel(());
        let tls = self.tls.map(tokio_rustls::TlsAcceptor::from);
        let https = tls.is_some();
        tokio::spawn(accept_loop(listener, shared.clone(), tls, stopped));
        Ok(Receiver {
            addr,
            https,
            shared,
            _stop: stop,
        })
    }
}

/// A real HTTP receiver on a loopback port. Paths without a script answer 204 (or the
/// builder's default reply).
pub struct Receiver {
    pub addr: SocketAddr,
    https: bool,
    shared: Arc<Shared>,
    /// Dropped with the receiver, which ends the accept loop and every connection.
    _stop: watch::Sender<()>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("addr", &self.addr)
            .field("https", &self.https)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// A recording receiver on `127.0.0.1:0`; panics if it cannot bind.
    pub async fn start() -> Receiver {
        Builder::default()
            .start()
            .await
            .expect("start a receiver on 127.0.0.1:0")
    }

    pub fn builder() -> Builder {
        Builder::default()
    }

    /// `http://ADDR/path` (`https://` when serving TLS).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.addr, path)
    }

    /// Sets how `path` is answered from now on (the per-path request count keeps going).
    pub fn script(&self, path: &str, reply: Reply) {
        lock(&self.shared.paths)
            .entry(path.to_owned())
            .or_default()
            .script = Some(reply);
    }

    /// Every request so far, oldest first (none when only counting).
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// The requests after the first `start` (recorded requests are only ever appended): a
    /// caller polling a long run reads each one once.
    pub fn requests_from(&self, start: usize) -> Vec<Recorded> {
        let reqs = lock(&self.shared.requests);
        reqs.get(start..)
            .map_or_else(Vec::new, <[Recorded]>::to_vec)
    }

    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Requests so far.
    pub fn count(&self) -> usize {
        match self.shared.record {
            Record::Requests => lock(&self.shared.requests).len(),
            Record::Counts => self.shared.requests_n.load(Ordering::Relaxed) as usize,
        }
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Requests being handled right now: arrived (head read) and not yet answered, cut or
    /// dropped. A hanging request stays in flight until its connection closes.
    pub fn in_flight(&self) -> u64 {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    pub fn counts(&self) -> Counts {
        self.shared.counts()
    }

    /// Waits until `pred(all requests)` holds and returns them; panics after `timeout`.
    pub async fn wait_until<F>(&self, what: &str, timeout: Duration, pred: F) -> Vec<Recorded>
    where
        F: Fn(&[Recorded]) -> bool,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let reqs = lock(&self.shared.requests);
                if pred(&reqs) {
                    return reqs.clone();
                }
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                let reqs = self.requests();
                panic!(
                    "receiver: timed out after {timeout:?} waiting for {what}; got {} requests:\n{}",
                    reqs.len(),
                    describe(&reqs)
                );
            }
        }
    }

    /// Waits until `pred(counts)` holds and returns the counts; panics after `timeout`.
    pub async fn wait_counts<F>(&self, what: &str, timeout: Duration, pred: F) -> Counts
    where
        F: Fn(&Counts) -> bool,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let counts = self.counts();
            if pred(&counts) {
                return counts;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("receiver: timed out after {timeout:?} waiting for {what}; {counts:?}");
            }
        }
    }

    /// Waits for at least `n` requests in all.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        self.wait_until(&format!("{n} requests"), timeout, |r| r.len() >= n)
            .await
    }

    /// Waits for at least `n` requests to `path`; returns those.
    pub async fn wait_for_path(&self, path: &str, n: usize, timeout: Duration) -> Vec<Recorded> {
        self.wait_until(&format!("{n} requests to {path}"), timeout, |r| {
            r.iter().filter(|x| x.path == path).count() >= n
        })
        .await;
        self.requests_to(path)
    }
}

#[cfg(test)]
mod tests;
