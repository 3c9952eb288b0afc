//! One client's HTTP/1.1 connection: read a head, run the pipeline, write the response, repeat.
//!
//! Requests are handled one at a time in the connection's own task (pipelined requests wait in
//! the buffer). The per-request work is boxed, so a connection idling between requests holds
//! only this loop's small state, its socket and no buffers.
//!
//! Timeouts: `header_read_timeout` runs while a head is incomplete — from the connection's start
//! for its first request, from the first byte for later ones — and its timer is only created
//! when a read would wait. `idle_timeout` is the watchdog's (conn.rs), which every read and
//! write here feeds.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use http::{Request, Response, StatusCode, Version, header};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Sleep;

use super::client::into_tunnel;
use super::io::{ClientBody, ClientReader, H1Body, HEAD_BUFFER};
use super::parse::{RequestHead, parse_request};
use super::write::{Framing, encode_response_head, response_framing, write_message};
use crate::body::ResponseBody;
use crate::error::ProxyError;
use crate::forward::OriginUpgrade;
use crate::pipeline::DropConnection;
use crate::pipeline::{ConnCtx, Shared, handle, refuse};
use crate::policy::cut::websocket_close_1008;

/// How reading the next head ended without one.
enum NoHead {
    /// Clean end: the client closed, went away mid-head, stalled past the head deadline, or the
    /// proxy is draining and the connection was between requests.
    Close,
    /// The client sent something we answer with an error before closing.
    Refuse(ProxyError),
}

/// Serves HTTP/1.1 on a connection until it closes. `reader` may already hold the first bytes.
pub async fn serve<W>(
    mut reader: ClientReader,
    mut writer: W,
    shared: Arc<Shared>,
    ctx: Arc<ConnCtx>,
    mut stop: watch::Receiver<bool>,
) where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let mut first = true;
    let mut head_buf: Vec<u8> = Vec::new();
    loop {
        let head = match read_head(&mut reader, &shared, first, &mut stop).await {
            Ok(head) => head,
            Err(NoHead::Close) => return,
            Err(NoHead::Refuse(err)) => {
                let resp = refuse(&shared, &ctx, err);
                let _ = write_response(
                    &mut writer,
                    &mut head_buf,
                    resp,
                    &http::Method::GET,
                    Version::HTTP_11,
                    false,
                )
                .await;
                let _ = writer.shutdown().await;
                return;
            }
        };
        first = false;
        let RequestHead {
            parts,
            body: decoder,
            keep_alive,
            expect_continue,
        } = head;
        let method = parts.method.clone();
        let version = parts.version;
        let (body, mut back) = if decoder.is_done() {
            (ClientBody::Empty, None)
        } else {
            if expect_continue
                && writer
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                    .await
                    .is_err()
            {
                return;
            }
            let taken = std::mem::replace(
                &mut reader,
                ClientReader::new(
                    Box::new(tokio::io::empty()),
                    Default::default(),
                    ctx.state.clone(),
                ),
            );
            let (body, rx) = H1Body::new(taken, decoder);
            (ClientBody::H1(body), Some(rx))
        };
        let req = Request::from_parts(parts, body);
        let resp = match Box::pin(handle(shared.clone(), ctx.clone(), req)).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
        // The reader is back once the request body has been read to its end; a body left
        // unread means the next request's start is unknown, so the connection ends.
        let body_done = match back.as_mut() {
            None => true,
            Some(rx) => match rx.try_recv() {
                Ok(r) => {
                    reader = r;
                    back = None;
                    true
                }
                Err(_) => false,
            },
        };
        if resp.extensions().get::<DropConnection>().is_some() {
            // A legal order with `action: close`: not a byte more on this connection.
            return;
        }
        let mut keep = keep_alive && body_done && !*stop.borrow() && !says_close(&resp);
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            upgrade(reader, writer, resp, &mut head_buf).await;
            return;
        }
        match write_response(&mut writer, &mut head_buf, resp, &method, version, keep).await {
            Ok(k) => keep = k,
            Err(e) => {
                tracing::debug!(peer = %ctx.peer, error = %e, "response not written whole");
                return;
            }
        }
        if let Some(mut rx) = back {
            match rx.try_recv() {
                Ok(r) => reader = r,
                Err(_) => keep = false,
            }
        }
        if !keep {
            let _ = writer.shutdown().await;
            return;
        }
        reader.release_idle_buffer();
        if head_buf.capacity() > 4096 {
            head_buf = Vec::new();
        }
    }
}

fn says_close<B>(resp: &Response<B>) -> bool {
    super::parse::has_token(resp.headers(), &header::CONNECTION, "close")
}

/// Writes a response; returns whether the connection can stay open.
async fn write_response<W: AsyncWrite + Unpin>(
    writer: &mut W,
    head_buf: &mut Vec<u8>,
    resp: Response<ResponseBody>,
    method: &http::Method,
    client: Version,
    keep_alive: bool,
) -> Result<bool, super::write::WriteError> {
    let (parts, body) = resp.into_parts();
    let exact = http_body::Body::size_hint(&body).exact();
    let framing = response_framing(parts.status, method, exact, client);
    let keep_alive = keep_alive && framing != Framing::Close;
    head_buf.clear();
    encode_response_head(
        head_buf,
        parts.status,
        &parts.headers,
        framing,
        keep_alive,
        client,
    );
    super::maps::give(parts.headers);
    write_message(writer, head_buf, body, framing).await?;
    Ok(keep_alive)
}

/// Reads until a whole request head is parsed.
async fn read_head(
    reader: &mut ClientReader,
    shared: &Shared,
    first: bool,
    stop: &mut watch::Receiver<bool>,
) -> Result<RequestHead, NoHead> {
    let max_head = shared.limits.max_header_size;
    let header_timeout = shared.limits.header_read_timeout;
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    loop {
        if !reader.buf.is_empty() {
            match parse_request(&mut reader.buf, max_head) {
                Ok(Some(head)) => return Ok(head),
                Ok(None) => {}
                Err(e) => return Err(NoHead::Refuse(e)),
            }
        }
        let in_head = first || !reader.buf.is_empty();
        if !in_head && *stop.borrow() {
            return Err(NoHead::Close);
        }
        let read = poll_fn(|cx| match reader.poll_fill(cx, HEAD_BUFFER) {
            Poll::Ready(r) => Poll::Ready(Some(r)),
            Poll::Pending => {
                if in_head {
                    let t = timer.get_or_insert_with(|| head_timer(header_timeout));
                    if t.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(None);
                    }
                }
                Poll::Pending
            }
        });
        let got = if in_head {
            read.await
        } else {
            tokio::select! {
                r = read => r,
                _ = stop.changed() => return Err(NoHead::Close),
            }
        };
        match got {
            // Past the head deadline: a slow (slowloris) or silent client.
            None => {
                shared
                    .metrics
                    .protection
                    .unsited(crate::metrics::Rejected::Slow);
                return Err(NoHead::Close);
            }
            Some(Ok(0)) | Some(Err(_)) => return Err(NoHead::Close),
            Some(Ok(_)) => {}
        }
    }
}

fn head_timer(timeout: Duration) -> Pin<Box<Sleep>> {
    Box::pin(tokio::time::sleep(timeout))
}

/// Answers 101 and joins the client connection to the origin's upgraded one.
async fn upgrade<W>(
    reader: ClientReader,
    mut writer: W,
    mut resp: Response<ResponseBody>,
    head_buf: &mut Vec<u8>,
) where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Some(origin) = resp
        .extensions_mut()
        .remove::<OriginUpgrade>()
        .and_then(|u| u.take())
    else {
        return;
    };
    head_buf.clear();
    encode_response_head(
        head_buf,
        resp.status(),
        resp.headers(),
        Framing::None,
        true,
        Version::HTTP_11,
    );
    if writer.write_all(head_buf).await.is_err() {
        return;
    }
    let cut = resp.body_mut().take_cut_guard();
    let websocket = super::parse::has_token(resp.headers(), &header::UPGRADE, "websocket");
    let (mut origin, from_origin) = into_tunnel(origin);
    let ClientReader { io, buf, .. } = reader;
    // Bytes either side sent past the upgrade are the tunnel's first bytes.
    if !from_origin.is_empty() && writer.write_all(&from_origin).await.is_err() {
        return;
    }
    if !buf.is_empty() && origin.write_all(&buf).await.is_err() {
        return;
    }
    let mut client = tokio::io::join(io, writer);
    let tunnel = tokio::io::copy_bidirectional(&mut client, &mut origin);
    let ended = match &cut {
        Some(guard) => tokio::select! {
            r = tunnel => Some(r),
            () = guard.signal.cut() => None,
        },
        None => Some(tunnel.await),
    };
    match ended {
        Some(Err(e)) if e.kind() != io::ErrorKind::NotConnected => {
            tracing::debug!(error = %e, "upgraded tunnel ended with an error");
        }
        Some(_) => {}
        None => {
            // A legal order now blocks the host: tell a WebSocket client why (close 1008,
            // policy violation), then end both sides.
            if websocket {
                let _ = client.writer_mut().write_all(&websocket_close_1008()).await;
            }
            let _ = client.writer_mut().shutdown().await;
            let _ = origin.shutdown().await;
        }
    }
}
