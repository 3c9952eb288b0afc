//! Per-connection state and the timeouts hyper does not provide in the shape we need.
//!
//! hyper's own HTTP/1 `header_read_timeout` starts as soon as a keep-alive connection waits for
//! its next request, which would cap keep-alive idle time at the header timeout. So the proxy
//! keeps the two apart:
//! - `header_read_timeout` (HTTP/1 only): [`IdleIo`] notes when the first byte of a request head
//!   arrives (or the connection opens) and, whenever a read would block while that head is still
//!   incomplete, arms a timer for the rest of it; when the timer fires the read fails and hyper
//!   closes the connection. A head that arrives whole in one read never arms a timer.
//! - `idle_timeout`: [`watchdog`] closes a connection with no read or write for that long
//!   (within an eighth of it), except while a request waits for its origin's response headers
//!   (`response_timeout` covers that wait).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::clock::{instant_at, now_ms};

/// Shared between a connection's IO, its request handler and its watchdog.
#[derive(Debug)]
pub struct ConnState {
    /// Requests whose response has not finished.
    in_flight: AtomicU32,
    /// Requests waiting for their origin's response headers.
    awaiting_origin: AtomicU32,
    /// Set by every read, write and request completion; the watchdog clears it when it looks.
    /// A flag rather than a timestamp keeps clock reads off the I/O path.
    touched: AtomicBool,
    /// A request head has started (first byte read, or the connection just opened) and is not
    /// complete yet.
    head_pending: AtomicBool,
    /// When a pending head was first seen waiting for more bytes, in ms since the process epoch;
    /// 0 = not yet. Read from the clock only when a head arrives in pieces.
    head_started_ms: AtomicU64,
    /// The client spoke the HTTP/2 preface; head timing does not apply to multiplexed streams.
    h2: AtomicBool,
    /// Whether the first read has been looked at for the HTTP/2 preface.
    sniffed: AtomicBool,
    /// Requests in flight on every connection of the proxy (load shedding).
    global_in_flight: Arc<AtomicUsize>,
}

impl ConnState {
    /// `global_in_flight` counts the requests of every connection (see
    /// [`ConnState::request_started`]).
    pub fn new(global_in_flight: Arc<AtomicUsize>) -> Arc<ConnState> {
        Arc::new(ConnState {
            global_in_flight,
            in_flight: AtomicU32::new(0),
            awaiting_origin: AtomicU32::new(0),
            touched: AtomicBool::new(false),
            // A new connection must deliver its first request head in time too.
            head_pending: AtomicBool::new(true),
            head_started_ms: AtomicU64::new(now_ms()),
            h2: AtomicBool::new(false),
            sniffed: AtomicBool::new(false),
        })
    }

    /// The handler received a complete request head. The request counts as in flight (here and
    /// in the proxy-wide count) until the returned guard is dropped (response finished, or the
    /// exchange abandoned). Also returns how many requests were in flight proxy-wide before it.
    pub fn request_started(self: &Arc<Self>) -> (InFlight, usize) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let before = self.global_in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_pending.store(false, Ordering::Relaxed);
        self.head_started_ms.store(0, Ordering::Relaxed);
        (InFlight(self.clone()), before)
    }

    /// The request is waiting for its origin's response headers until the guard drops; the
    /// idle timeout does not apply meanwhile.
    pub fn awaiting_origin(&self) -> AwaitingOrigin<'_> {
        self.awaiting_origin.fetch_add(1, Ordering::Relaxed);
        AwaitingOrigin(self)
    }

    fn on_read(&self, bytes: &[u8]) {
        self.touched.store(true, Ordering::Relaxed);
        // Only this connection's task reads; a load and a store avoid a locked RMW per read.
        if !self.sniffed.load(Ordering::Relaxed) {
            self.sniffed.store(true, Ordering::Relaxed);
            if bytes.starts_with(b"PRI * HTTP/2.0") {
                self.h2.store(true, Ordering::Relaxed);
                self.head_pending.store(false, Ordering::Relaxed);
            }
            return;
        }
        if self.in_flight.load(Ordering::Relaxed) == 0 && !self.h2.load(Ordering::Relaxed) {
            self.head_pending.store(true, Ordering::Relaxed);
        }
    }

    fn on_write(&self) {
        self.touched.store(true, Ordering::Relaxed);
    }

    /// Something was read or written: the connection is not idle.
    pub fn touch(&self) {
        self.touched.store(true, Ordering::Relaxed);
    }

    /// The deadline of a request head still being received, if any. Called when a read would
    /// block; the first such call for a head starts its clock.
    fn head_deadline(&self, header: Duration) -> Option<u64> {
        if !self.head_pending.load(Ordering::Relaxed) || self.in_flight.load(Ordering::Relaxed) > 0
        {
            return None;
        }
        let mut started = self.head_started_ms.load(Ordering::Relaxed);
        if started == 0 {
            started = now_ms();
            self.head_started_ms.store(started, Ordering::Relaxed);
        }
        Some(started + header.as_millis() as u64)
    }

    /// Whether anything happened since the last call (and forget it).
    fn take_touched(&self) -> bool {
        self.touched.swap(false, Ordering::Relaxed)
            || self.awaiting_origin.load(Ordering::Relaxed) > 0
    }
}

/// One request in flight on a connection; see [`ConnState::request_started`].
#[derive(Debug)]
pub struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.global_in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touched.store(true, Ordering::Relaxed);
    }
}

/// See [`ConnState::awaiting_origin`].
#[derive(Debug)]
pub struct AwaitingOrigin<'a>(&'a ConnState);

impl Drop for AwaitingOrigin<'_> {
    fn drop(&mut self) {
        self.0.awaiting_origin.fetch_sub(1, Ordering::Relaxed);
        self.0.touched.store(true, Ordering::Relaxed);
    }
}

/// How many looks the watchdog takes per idle period: a connection is closed between
/// `idle` and `idle * (1 + 1/IDLE_CHECKS)` after its last activity.
const IDLE_CHECKS: u32 = 8;

/// Resolves when the connection has had no I/O for `idle` (and no request was waiting on its
/// origin). It looks at the activity flag a few times per period instead of having the I/O path
/// read the clock.
pub async fn watchdog(state: Arc<ConnState>, idle: Duration) {
    let step = (idle / IDLE_CHECKS).max(Duration::from_millis(1));
    let mut quiet = Duration::ZERO;
    loop {
        tokio::time::sleep(step).await;
        if state.take_touched() {
            quiet = Duration::ZERO;
        } else {
            quiet += step;
            if quiet >= idle {
                return;
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A client stream that reports activity to its [`ConnState`] and enforces the request
    /// head deadline.
    #[derive(Debug)]
    pub struct IdleIo<T> {
        #[pin]
        inner: T,
        state: Arc<ConnState>,
        header_timeout: Duration,
        // Allocated the first time a head arrives in pieces; most connections never need it.
        head_timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<T> IdleIo<T> {
    pub fn new(inner: T, state: Arc<ConnState>, header_timeout: Duration) -> Self {
        IdleIo {
            inner,
            state,
            header_timeout,
            head_timer: None,
        }
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
        match res {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if !new.is_empty() {
                    this.state.on_read(new);
                }
            }
            Poll::Pending => {
                if let Some(at) = this.state.head_deadline(*this.header_timeout) {
                    let at = instant_at(at);
                    let timer = this
                        .head_timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                    if timer.deadline() != at {
                        timer.as_mut().reset(at);
                    }
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "request head not complete within header_read_timeout",
                        )));
                    }
                }
            }
            Poll::Ready(Err(_)) => {}
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

pin_project_lite::pin_project! {
    /// A stream whose first reads return bytes already read from it (the sniffed start of an
    /// HTTP/2 connection), then continue with the stream itself.
    #[derive(Debug)]
    pub struct Rewind<T> {
        prefix: bytes::Bytes,
        #[pin]
        inner: T,
    }
}

impl<T> Rewind<T> {
    pub fn new(prefix: bytes::Bytes, inner: T) -> Self {
        Rewind { prefix, inner }
    }
}

impl<T: AsyncRead> AsyncRead for Rewind<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        this.inner.poll_read(cx, buf)
    }
}

impl<T: AsyncWrite> AsyncWrite for Rewind<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
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

/// A peer gone mid-write is an `EPIPE` error, never a `SIGPIPE` (std's `send` passes the same).
#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const SEND_FLAGS: libc::c_int = 0;

/// The write half of a plain client connection. Its vectored writes (a response head with its
/// first body bytes) go out with `sendmsg` on the socket, where tokio's (std's) `writev` goes
/// through the VFS layer first: the kernel does measurably less per call (bench/README.md).
/// Everything else is the owned write half's.
#[derive(Debug)]
pub struct SocketWriter(tokio::net::tcp::OwnedWriteHalf);

impl SocketWriter {
    pub fn new(half: tokio::net::tcp::OwnedWriteHalf) -> Self {
        SocketWriter(half)
    }
}

impl AsyncWrite for SocketWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // One buffer: std's `write` on a socket is already `send`.
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let tcp: &tokio::net::TcpStream = self.0.as_ref();
        loop {
            std::task::ready!(tcp.poll_write_ready(cx))?;
            // `try_io` clears the readiness on WouldBlock, so the next poll waits for epoll.
            match tcp.try_io(tokio::io::Interest::WRITABLE, || {
                socket2::SockRef::from(tcp).send_vectored_with_flags(bufs, SEND_FLAGS)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::io::IoSlice;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::SocketWriter;

    /// Vectored writes arrive whole and in order, also when the socket buffer fills and the
    /// writer has to wait for the reader (`sendmsg` taking part of the slices, then WouldBlock).
    #[tokio::test]
    async fn socket_writer_sends_every_slice_in_order() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let mut client = client.unwrap();
        let (_read, write) = accepted.unwrap().0.into_split();
        let mut writer = SocketWriter::new(write);
        assert!(tokio::io::AsyncWrite::is_write_vectored(&writer));

        // Far more than the socket buffers hold, so the writer blocks midway.
        let head: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let body: Vec<u8> = (0..8_000_000u32).map(|i| (i % 253) as u8).collect();
        let tail = b"\r\n0\r\n\r\n".to_vec();
        let expected: Vec<u8> = [&head[..], &body[..], &tail[..]].concat();

        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut slices = [
            IoSlice::new(&head),
            IoSlice::new(&body),
            IoSlice::new(&tail),
        ];
        let mut slices = &mut slices[..];
        while !slices.is_empty() {
            let n = writer.write_vectored(slices).await.unwrap();
            assert!(n > 0);
            IoSlice::advance_slices(&mut slices, n);
        }
        writer.shutdown().await.unwrap();
        drop(writer);
        drop(_read);
        let got = reader.await.unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "bytes differ");
    }
}
