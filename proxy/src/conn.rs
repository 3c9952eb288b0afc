//! Per-connection state and the timeouts hyper does not provide in the shape we need.
//!
//! hyper's own HTTP/1 `header_read_timeout` starts as soon as a keep-alive connection waits for
//! its next request, which would make `idle_timeout` meaningless. So the proxy tracks it itself:
//! [`IdleIo`] stamps every read and write, the request pipeline counts requests in flight, and
//! [`watchdog`] closes a connection that has been silent for `idle_timeout`, or that started a
//! request head and has not finished it within `header_read_timeout` (slowloris).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

/// Shared between a connection's IO, its request handler and its watchdog.
#[derive(Debug)]
pub struct ConnState {
    /// Requests whose response has not finished.
    in_flight: AtomicU32,
    /// Last read or write, in ms since the process epoch.
    last_io_ms: AtomicU64,
    /// When the first byte of a not-yet-complete request head arrived; 0 = none pending.
    head_started_ms: AtomicU64,
    /// The client spoke the HTTP/2 preface; head timing does not apply to multiplexed streams.
    h2: AtomicBool,
    /// Whether the first read has been looked at for the HTTP/2 preface.
    sniffed: AtomicBool,
}

impl ConnState {
    pub fn new() -> Arc<ConnState> {
        Arc::new(ConnState {
            in_flight: AtomicU32::new(0),
            last_io_ms: AtomicU64::new(now_ms()),
            head_started_ms: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            sniffed: AtomicBool::new(false),
        })
    }

    /// The handler received a complete request head. The request counts as in flight until the
    /// returned guard is dropped (response finished, or the exchange abandoned).
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_started_ms.store(0, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn on_read(&self, bytes: &[u8]) {
        let now = now_ms();
        self.last_io_ms.store(now, Ordering::Relaxed);
        if !self.sniffed.swap(true, Ordering::Relaxed) && bytes.starts_with(b"PRI * HTTP/2.0") {
            self.h2.store(true, Ordering::Relaxed);
        }
        if self.in_flight.load(Ordering::Relaxed) == 0
            && !self.h2.load(Ordering::Relaxed)
            && self.head_started_ms.load(Ordering::Relaxed) == 0
        {
            self.head_started_ms.store(now, Ordering::Relaxed);
        }
    }

    fn on_write(&self) {
        self.last_io_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// When the connection should be closed if nothing changes, or `None` if it is overdue now.
    fn deadline(&self, idle: Duration, header: Duration) -> Option<u64> {
        let now = now_ms();
        let mut deadline = self.last_io_ms.load(Ordering::Relaxed) + idle.as_millis() as u64;
        let head = self.head_started_ms.load(Ordering::Relaxed);
        if head != 0 && self.in_flight.load(Ordering::Relaxed) == 0 {
            deadline = deadline.min(head + header.as_millis() as u64);
        }
        (deadline > now).then_some(deadline - now)
    }
}

/// One request in flight on a connection; see [`ConnState::request_started`].
#[derive(Debug)]
pub struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.last_io_ms.store(now_ms(), Ordering::Relaxed);
    }
}

/// Resolves when the connection has been idle too long or a request head is overdue.
pub async fn watchdog(state: Arc<ConnState>, idle: Duration, header: Duration) {
    while let Some(wait) = state.deadline(idle, header) {
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
}

pin_project_lite::pin_project! {
    /// A client stream that reports activity to its [`ConnState`].
    #[derive(Debug)]
    pub struct IdleIo<T> {
        #[pin]
        inner: T,
        state: Arc<ConnState>,
    }
}

impl<T> IdleIo<T> {
    pub fn new(inner: T, state: Arc<ConnState>) -> Self {
        IdleIo { inner, state }
    }
}

impl<T: AsyncRead> AsyncRead for IdleIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let res = this.inner.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                this.state.on_read(new);
            }
        }
        res
    }
}

impl<T: AsyncWrite> AsyncWrite for IdleIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let res = this.inner.poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            if n > 0 {
                this.state.on_write();
            }
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let res = this.inner.poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = res {
            if n > 0 {
                this.state.on_write();
            }
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
