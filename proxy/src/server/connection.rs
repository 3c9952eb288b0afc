//! One client connection, from accept to close: plain (h2c preface sniff, else HTTP/1.1) or TLS
//! (handshake, then HTTP/2 or HTTP/1.1 by ALPN), under the idle watchdog and counted in the
//! connection gauges.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use http::Request;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::{Builder, Mode};
use crate::conn::{ConnState, IdleIo, Rewind, SocketWriter, watchdog};
use crate::h1;
use crate::h1::io::{ClientBody, ClientReader};
use crate::metrics::Rejected;
use crate::pipeline::{ConnCtx, DropConnection, Shared, handle};
use crate::protection::{H2Resets, StreamWatch};
use crate::tls::Tls;

pub(super) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    mode: Mode,
    shared: Arc<Shared>,
    builder: &Builder,
    stop: watch::Receiver<bool>,
) {
    shared.metrics.connections_total.inc();
    let _active = ActiveConnection::new(&shared.metrics.connections_active);
    let state = ConnState::new(shared.protection.inflight.clone());
    let idle = watchdog(state.clone(), shared.limits.idle_timeout);
    let serve = async {
        match mode {
            Mode::Plain { redirect_https } => {
                serve_protocol(
                    stream,
                    peer,
                    shared.clone(),
                    state,
                    builder,
                    stop,
                    redirect_https,
                )
                .await
            }
            // Boxed, like the HTTP/2 paths below: a task's size is that of its largest state,
            // and a TLS session or an HTTP/2 connection inline would make every idle plain
            // HTTP/1.1 connection that big.
            Mode::Tls(tls) => {
                Box::pin(serve_tls(
                    stream,
                    peer,
                    shared.clone(),
                    state,
                    builder,
                    stop,
                    &tls,
                ))
                .await
            }
        }
    };
    tokio::select! {
        () = serve => {}
        () = idle => tracing::debug!(%peer, "closing idle or slow connection"),
    }
}

/// The TLS handshake (see tls.rs), then HTTP/2 when ALPN chose `h2`, else HTTP/1.1.
async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    state: Arc<ConnState>,
    builder: &Builder,
    mut stop: watch::Receiver<bool>,
    tls: &Tls,
) {
    let accepted = tokio::select! {
        a = tls.accept(stream, peer) => a,
        _ = stop.changed() => return,
    };
    let Some((stream, info)) = accepted else {
        return;
    };
    let h2 = info.h2;
    let ctx = Arc::new(ConnCtx {
        peer,
        state: state.clone(),
        tls: Some(info),
        redirect_https: None,
    });
    let header_timeout = shared.limits.header_read_timeout;
    if h2 {
        let io = TokioIo::new(IdleIo::new(stream, state, header_timeout));
        serve_h2(io, peer, shared, ctx, builder, stop).await;
    } else {
        let (read, write) = tokio::io::split(stream);
        let reader = ClientReader::new(Box::new(read), BytesMut::new(), state.clone());
        let writer = IdleIo::new(write, state, header_timeout);
        h1::serve::serve(reader, writer, shared, ctx, stop).await;
    }
}

/// Looks at the first bytes: the HTTP/2 preface goes to hyper's HTTP/2 server, anything else to
/// our HTTP/1.1 engine.
async fn serve_protocol(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    state: Arc<ConnState>,
    builder: &Builder,
    mut stop: watch::Receiver<bool>,
    redirect_https: Option<u16>,
) {
    let ctx = Arc::new(ConnCtx {
        peer,
        state: state.clone(),
        tls: None,
        redirect_https,
    });
    let header_timeout = shared.limits.header_read_timeout;
    let (read, write) = stream.into_split();
    let write = SocketWriter::new(write);
    let mut reader = ClientReader::new(Box::new(read), BytesMut::new(), state.clone());
    let sniffed = tokio::select! {
        s = sniff(&mut reader, header_timeout) => s,
        _ = stop.changed() => return,
    };
    match sniffed {
        Sniffed::Closed => {}
        Sniffed::TimedOut => shared.metrics.protection.unsited(Rejected::Slow),
        Sniffed::H1 => {
            h1::serve::serve(
                reader,
                IdleIo::new(write, state, header_timeout),
                shared,
                ctx,
                stop,
            )
            .await
        }
        Sniffed::H2 => {
            let ClientReader { io, buf, .. } = reader;
            let io = Rewind::new(buf.freeze(), tokio::io::join(io, write));
            let io = TokioIo::new(IdleIo::new(io, state, header_timeout));
            Box::pin(serve_h2(io, peer, shared, ctx, builder, stop)).await;
        }
    }
}

/// Serves HTTP/2 on `io` (h2c after the preface sniff, or TLS after ALPN `h2`) until the
/// connection ends; on drain, GOAWAY and finish the open streams.
async fn serve_h2<I>(
    io: I,
    peer: SocketAddr,
    shared: Arc<Shared>,
    ctx: Arc<ConnCtx>,
    builder: &Builder,
    mut stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let resets = Arc::new(H2Resets::default());
    let metrics = shared.metrics.protection.clone();
    let watched = resets.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let (shared, ctx) = (shared.clone(), ctx.clone());
        // Dropped unanswered: the client reset the stream (or the connection went).
        let watch = StreamWatch::new(watched.clone());
        // `handle` is called inside the block, not before it: a future captured by the block
        // and then awaited is held twice (the capture and the await slot). Boxed: hyper moves
        // the stream future several times between accepting the stream and spawning its task,
        // and a pointer is cheaper to move than the pipeline's state.
        Box::pin(async move {
            let resp = match handle(shared, ctx, req.map(ClientBody::H2)).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            watch.answered();
            // `action: close` on HTTP/2: the stream is reset, other streams (other hosts,
            // coalesced) go on.
            if resp.extensions().get::<DropConnection>().is_some() {
                return Err(StreamDropped);
            }
            Ok(resp)
        })
    });
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut draining = *stop.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    // h2's own defences (pending-accept resets, local error resets, too many
                    // DATA or CONTINUATION frames) end the connection with ENHANCE_YOUR_CALM.
                    let chain = crate::error::Chain(&e).to_string();
                    if chain.contains("excessive load") {
                        metrics.unsited(Rejected::H2Abuse);
                        tracing::info!(%peer, error = %chain, "h2 connection closed for abuse");
                    } else {
                        tracing::debug!(%peer, error = %e, "h2 client connection ended with an error");
                    }
                }
                break;
            }
            () = resets.tripped.notified() => {
                // Rapid reset: GOAWAY, a moment to send it, then the connection goes.
                metrics.unsited(Rejected::H2Abuse);
                tracing::info!(%peer, "h2 connection closed: the client keeps cancelling streams");
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(Duration::from_millis(200), conn.as_mut()).await;
                break;
            }
            r = stop.changed(), if !draining => {
                // GOAWAY: finish the open streams, then close. A closed channel means the
                // proxy is gone: drain as well.
                let _ = r;
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum Sniffed {
    H1,
    H2,
    Closed,
    /// Nothing telling within `header_read_timeout`: a slow (or silent) client.
    TimedOut,
}

/// Reads until the first bytes tell HTTP/1 from the HTTP/2 preface, within the head deadline.
async fn sniff(reader: &mut ClientReader, header_timeout: Duration) -> Sniffed {
    let read = async {
        loop {
            let n = reader.buf.len().min(H2_PREFACE.len());
            if reader.buf[..n] != H2_PREFACE[..n] {
                return Sniffed::H1;
            }
            if n == H2_PREFACE.len() {
                return Sniffed::H2;
            }
            match std::future::poll_fn(|cx| reader.poll_fill(cx, h1::io::HEAD_BUFFER)).await {
                Ok(0) | Err(_) => return Sniffed::Closed,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(header_timeout, read)
        .await
        .unwrap_or(Sniffed::TimedOut)
}

/// Keeps `portcullis_connections_active` right however a connection task ends.
struct ActiveConnection<'a>(&'a prometheus::IntGauge);

impl<'a> ActiveConnection<'a> {
    fn new(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        ActiveConnection(gauge)
    }
}

impl Drop for ActiveConnection<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A stream refused by a legal order with `action: close`.
#[derive(Debug, thiserror::Error)]
#[error("stream dropped by a legal order")]
struct StreamDropped;
