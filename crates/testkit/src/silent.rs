//! [`Silent`]: a loopback listener that accepts TCP connections and never reads from them nor
//! answers: a receiver that is up at the TCP level and dead above it. Clients see their connect
//! succeed and then wait for their own timeout.
//!
//! It holds up to [`MAX_HELD`] connections; past that it stops accepting, and further
//! connections wait in the listen backlog, unanswered all the same. Dropping it closes them all.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

/// Connections held open at most.
pub const MAX_HELD: usize = 65_536;

/// A listener that accepts and then says nothing. Dropping it closes every connection.
#[derive(Debug)]
pub struct Silent {
    pub addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    _stop: watch::Sender<()>,
}

impl Silent {
    /// Listens on `127.0.0.1:0` on the current tokio runtime.
    pub async fn start() -> io::Result<Silent> {
        Silent::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Listens on `addr` (loopback only) on the current tokio runtime.
    pub async fn bind(addr: SocketAddr) -> io::Result<Silent> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("refusing to listen on {addr}: loopback only"),
            ));
        }
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicU64::new(0));
        let (stop, mut stopped) = watch::channel(());
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while held.len() < MAX_HELD {
                tokio::select! {
                    a = listener.accept() => if let Ok((stream, _)) = a {
                        held.push(stream);
                        count.fetch_add(1, Ordering::SeqCst);
                    },
                    _ = stopped.changed() => return,
                }
            }
            // Full: keep what is held (and the listener, whose backlog answers nothing either).
            let _ = stopped.changed().await;
            drop((held, listener));
        });
        Ok(Silent {
            addr,
            accepted,
            _stop: stop,
        })
    }

    /// `http://ADDR/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn accepts_and_never_answers() {
        let silent = Silent::start().await.unwrap();
        let mut conn = tokio::net::TcpStream::connect(silent.addr).await.unwrap();
        conn.write_all(b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n")
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while silent.accepted() < 1 {
            assert!(tokio::time::Instant::now() < deadline, "never accepted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Closing is the only thing it ever does: everything the client reads up to then is
        // what it sent before.
        drop(silent);
        let mut got = Vec::new();
        // Ok(0) on a close, an error on a reset: either way, no byte of an answer.
        let _ = tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut got))
            .await
            .expect("connection closed when the listener was dropped");
        assert!(
            got.is_empty(),
            "answered: {:?}",
            String::from_utf8_lossy(&got)
        );
    }

    #[tokio::test]
    async fn refuses_addresses_off_the_loopback() {
        assert!(Silent::bind("0.0.0.0:0".parse().unwrap()).await.is_err());
    }
}
