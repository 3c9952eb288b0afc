//! Origins: connection pooling, passive health and the exchange with one origin.
//!
//! The pool is ours rather than hyper-util's generic client so that "could not connect" is
//! known before the request is handed over: a request that never left can be retried on another
//! origin whatever its method or body, and a reused keep-alive connection that turns out to be
//! closed gives the request back (hyper's `try_send_request`) for one more try on a fresh one.
//!
//! HTTP/1.1 connections (our own client, `h1/client.rs`) are kept in a per-origin LIFO of idle
//! connections and returned when the response body has been read to its end
//! ([`crate::h1::client::OriginBody`]); a body dropped early takes its connection with it.
//! HTTP/2 origins share one multiplexed hyper connection.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::body::RequestBody;
use crate::clock::now_ms;
use crate::h1::client::H1Conn;

pub mod tls;

use tls::{OriginIo, OriginTls};

/// Idle origin connections older than this are not reused (origins commonly close at 60–75 s).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per origin; more are closed when returned.
const POOL_MAX_IDLE: usize = 1024;

/// Why no connection to an origin could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
    #[error("connect failed")]
    Io(#[source] std::io::Error),
    #[error("TLS handshake with the origin failed")]
    Tls(#[source] std::io::Error),
    #[error("HTTP handshake with the origin failed")]
    Handshake(#[source] hyper::Error),
}

/// One origin server of a site.
#[derive(Debug)]
pub struct Origin {
    pub url: String,
    pub authority: http::uri::Authority,
    /// `clock::now_ms` time until which the origin is skipped; 0 = up.
    down_until_ms: AtomicU64,
    idle: Mutex<Vec<IdleConn>>,
    h2: Mutex<Option<http2::SendRequest<RequestBody>>>,
    /// Set for `https://` origins.
    tls: Option<OriginTls>,
}

#[derive(Debug)]
struct IdleConn {
    conn: H1Conn,
    since: Instant,
}

impl Origin {
    pub fn new(url: String, authority: http::uri::Authority, tls: Option<OriginTls>) -> Origin {
        Origin {
            url,
            authority,
            down_until_ms: AtomicU64::new(0),
            idle: Mutex::new(Vec::new()),
            h2: Mutex::new(None),
            tls,
        }
    }

    /// Passive health: true while the origin is marked down.
    pub fn is_down(&self) -> bool {
        let until = self.down_until_ms.load(Ordering::Relaxed);
        // The common case reads no clock.
        until != 0 && now_ms() < until
    }

    pub fn mark_down(&self, period: Duration) {
        let until = now_ms() + period.as_millis() as u64;
        self.down_until_ms.store(until, Ordering::Relaxed);
    }

    fn mark_up(&self) {
        if self.down_until_ms.load(Ordering::Relaxed) != 0 {
            self.down_until_ms.store(0, Ordering::Relaxed);
        }
    }

    /// An HTTP/1.1 connection: the most recently pooled one still fresh, else a new one.
    /// Returns whether it was reused. `probe`: check a pooled connection is still open first
    /// (for requests that could not be retried on a fresh one).
    pub async fn checkout_h1(
        &self,
        probe: bool,
        connect_timeout: Duration,
    ) -> Result<(H1Conn, bool), ConnectError> {
        while let Some(idle) = self.pop_idle() {
            if idle.since.elapsed() > POOL_IDLE_TIMEOUT || (probe && !idle.conn.looks_alive()) {
                continue;
            }
            return Ok((idle.conn, true));
        }
        let io = self.connect(connect_timeout, false).await?;
        self.mark_up();
        Ok((H1Conn::new(io), false))
    }

    /// The origin's shared HTTP/2 connection, made on first use or after it closed.
    pub async fn checkout_h2(
        &self,
        connect_timeout: Duration,
    ) -> Result<(http2::SendRequest<RequestBody>, bool), ConnectError> {
        let cached = self.lock_h2().clone();
        if let Some(sender) = cached {
            if !sender.is_closed() {
                return Ok((sender, true));
            }
        }
        let io = self.connect(connect_timeout, true).await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(io))
            .await
            .map_err(ConnectError::Handshake)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "origin h2 connection ended");
            }
        });
        *self.lock_h2() = Some(sender.clone());
        self.mark_up();
        Ok((sender, false))
    }

    /// A new connection, with the TLS handshake for `https://` origins; `connect_timeout`
    /// covers both.
    async fn connect(&self, timeout: Duration, h2: bool) -> Result<OriginIo, ConnectError> {
        let connect = async {
            let stream = TcpStream::connect(self.authority.as_str())
                .await
                .map_err(ConnectError::Io)?;
            // Small requests and responses must not wait for Nagle.
            stream.set_nodelay(true).map_err(ConnectError::Io)?;
            match &self.tls {
                None => Ok(OriginIo::Plain(stream)),
                Some(tls) => {
                    let stream = tls.connect(stream, h2).await.map_err(ConnectError::Tls)?;
                    Ok(OriginIo::Tls(Box::new(stream)))
                }
            }
        };
        tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| ConnectError::Timeout(timeout))?
    }

    fn pop_idle(&self) -> Option<IdleConn> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn lock_h2(&self) -> std::sync::MutexGuard<'_, Option<http2::SendRequest<RequestBody>>> {
        self.h2.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns an HTTP/1.1 connection whose response has been fully read.
    pub(crate) fn checkin(&self, conn: H1Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < POOL_MAX_IDLE {
            idle.push(IdleConn {
                conn,
                since: Instant::now(),
            });
        }
    }
}
