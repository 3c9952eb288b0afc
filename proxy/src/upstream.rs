//! Origins: connection pooling, passive health and the exchange with one origin.
//!
//! The pool is ours rather than hyper-util's generic client so that "could not connect" is
//! known before the request is handed over: a request that never left can be retried on another
//! origin whatever its method or body, and a reused keep-alive connection that turns out to be
//! closed gives the request back (hyper's `try_send_request`) for one more try on a fresh one.
//!
//! HTTP/1.1 connections are kept in a per-origin LIFO of idle senders and returned when the
//! response body has been read to its end ([`PooledBody`]); a body dropped early takes its
//! connection with it. HTTP/2 origins share one multiplexed connection.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::body::RequestBody;
use crate::clock::now_ms;

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
}

#[derive(Debug)]
struct IdleConn {
    sender: http1::SendRequest<RequestBody>,
    since: Instant,
}

/// A connection ready for one request.
#[derive(Debug)]
pub enum Conn {
    H1(http1::SendRequest<RequestBody>),
    H2(http2::SendRequest<RequestBody>),
}

impl Origin {
    pub fn new(url: String, authority: http::uri::Authority) -> Origin {
        Origin {
            url,
            authority,
            down_until_ms: AtomicU64::new(0),
            idle: Mutex::new(Vec::new()),
            h2: Mutex::new(None),
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

    /// A ready connection: a pooled one when there is one, else a new one.
    /// Returns whether the connection was reused.
    pub async fn checkout(
        &self,
        h2: bool,
        connect_timeout: Duration,
    ) -> Result<(Conn, bool), ConnectError> {
        if h2 {
            let cached = self.lock_h2().clone();
            if let Some(sender) = cached {
                if !sender.is_closed() {
                    return Ok((Conn::H2(sender), true));
                }
            }
        } else {
            while let Some(mut idle) = self.pop_idle() {
                if idle.sender.is_closed() || idle.since.elapsed() > POOL_IDLE_TIMEOUT {
                    continue;
                }
                // A connection returned at end of body may not have been polled back to idle
                // yet; waiting is bounded because it either becomes ready or closes.
                if !idle.sender.is_ready() && idle.sender.ready().await.is_err() {
                    continue;
                }
                return Ok((Conn::H1(idle.sender), true));
            }
        }
        let conn = self.connect(h2, connect_timeout).await?;
        self.mark_up();
        Ok((conn, false))
    }

    async fn connect(&self, h2: bool, timeout: Duration) -> Result<Conn, ConnectError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(self.authority.as_str()))
            .await
            .map_err(|_| ConnectError::Timeout(timeout))?
            .map_err(ConnectError::Io)?;
        // Small requests and responses must not wait for Nagle.
        stream.set_nodelay(true).map_err(ConnectError::Io)?;
        let io = TokioIo::new(stream);
        if h2 {
            let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(ConnectError::Handshake)?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "origin h2 connection ended");
                }
            });
            *self.lock_h2() = Some(sender.clone());
            Ok(Conn::H2(sender))
        } else {
            let (sender, conn) = http1::Builder::new()
                .handshake(io)
                .await
                .map_err(ConnectError::Handshake)?;
            tokio::spawn(async move {
                if let Err(e) = conn.with_upgrades().await {
                    tracing::debug!(error = %e, "origin connection ended");
                }
            });
            Ok(Conn::H1(sender))
        }
    }

    fn pop_idle(&self) -> Option<IdleConn> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    fn lock_h2(&self) -> std::sync::MutexGuard<'_, Option<http2::SendRequest<RequestBody>>> {
        self.h2.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns an HTTP/1.1 connection whose response has been fully read.
    fn checkin(&self, sender: http1::SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < POOL_MAX_IDLE {
            idle.push(IdleConn {
                sender,
                since: Instant::now(),
            });
        }
    }
}

/// Where a connection goes back once its response body is done.
#[derive(Debug)]
pub struct Return {
    sender: http1::SendRequest<RequestBody>,
    origin: Arc<Origin>,
}

impl Return {
    pub fn new(sender: http1::SendRequest<RequestBody>, origin: Arc<Origin>) -> Self {
        Return { sender, origin }
    }
}

pin_project_lite::pin_project! {
    /// An origin's response body; hands its connection back to the pool at end of stream.
    #[derive(Debug)]
    pub struct PooledBody {
        #[pin]
        inner: Incoming,
        ret: Option<Return>,
    }
}

impl PooledBody {
    pub fn new(inner: Incoming, ret: Option<Return>) -> Self {
        let mut body = PooledBody { inner, ret };
        if body.inner.is_end_stream() {
            body.give_back();
        }
        body
    }

    fn give_back(&mut self) {
        if let Some(r) = self.ret.take() {
            r.origin.checkin(r.sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        let item = ready!(this.inner.as_mut().poll_frame(cx));
        // Give the connection back as soon as the last byte is known to be in hand: the server
        // side stops polling at Content-Length and may never ask for the final `None`.
        let done = match &item {
            None => true,
            Some(Ok(_)) => this.inner.is_end_stream(),
            Some(Err(_)) => {
                drop(this.ret.take());
                false
            }
        };
        if done {
            if let Some(r) = this.ret.take() {
                r.origin.checkin(r.sender);
            }
        }
        Poll::Ready(item)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
