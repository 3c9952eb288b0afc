//! Helpers for the attack-protection tests: the config reload endpoint, an HTTP/2 client that
//! opens and resets streams in a loop (raw frames: no library does that on purpose), a
//! pipelining HTTP/1.1 flood that names a different client per request through
//! X-Forwarded-For, and a request body that stalls.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{H1, connect_from, request};
use crate::policy::AdminJson;
use crate::{TestBody, body};

/// `POST /admin/config/reload` with `Authorization: Bearer {token}`.
pub async fn config_reload(admin: SocketAddr, token: &str) -> anyhow::Result<AdminJson> {
    let req = request("POST", "admin", "/admin/config/reload")
        .header("authorization", format!("Bearer {token}"))
        .body(body::empty())?;
    let reply = H1::connect(admin).await?.request(req).await?;
    let json = serde_json::from_slice(&reply.body)
        .with_context(|| format!("{} with non-JSON: {}", reply.status, reply.text()))?;
    Ok(AdminJson {
        status: reply.status,
        json,
    })
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// An HPACK block for `GET /` on `host` (static-table indices, a literal `:authority`).
fn get_block(host: &str) -> Vec<u8> {
    // :method GET, :scheme http, :path /
    let mut b = vec![0x82, 0x86, 0x84];
    // Literal without indexing, name = static index 1 (:authority), raw string.
    b.push(0x01);
    b.push(host.len() as u8);
    b.extend_from_slice(host.as_bytes());
    b
}

/// Opens `streams` requests for `host` on one h2c connection from `local`, resetting each one
/// (RST_STREAM CANCEL) right after its HEADERS: the rapid-reset pattern. With `pause`, each
/// stream is reset that long after its HEADERS, one at a time (so the server has accepted it
/// and its handler runs); without, in batches of ten back to back. Returns whether the proxy
/// closed the connection within `bound` after the last frame was written (a write failing
/// because it already did counts as closed).
pub async fn rapid_reset(
    local: IpAddr,
    addr: SocketAddr,
    host: &str,
    streams: u32,
    pause: Option<Duration>,
    bound: Duration,
) -> anyhow::Result<bool> {
    let mut conn = connect_from(local, addr).await?;
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    frame(&mut out, 0x4, 0, 0, &[]);
    if conn.write_all(&out).await.is_err() {
        return Ok(true);
    }
    let block = get_block(host);
    if let Some(pause) = pause {
        for n in 0..streams {
            let id = 2 * n + 1;
            out.clear();
            frame(&mut out, 0x1, 0x5, id, &block);
            if conn.write_all(&out).await.is_err() {
                return Ok(true);
            }
            tokio::time::sleep(pause).await;
            out.clear();
            frame(&mut out, 0x3, 0, id, &8u32.to_be_bytes());
            if conn.write_all(&out).await.is_err() {
                return Ok(true);
            }
        }
    }
    // In batches, with a pause, so the server accepts (and its handlers start) in between.
    let batches = if pause.is_some() {
        0
    } else {
        streams.div_ceil(10)
    };
    for batch in 0..batches {
        out.clear();
        for i in 0..10 {
            let n = batch * 10 + i;
            if n >= streams {
                break;
            }
            let id = 2 * n + 1;
            // HEADERS, END_STREAM | END_HEADERS.
            frame(&mut out, 0x1, 0x5, id, &block);
            // RST_STREAM CANCEL.
            frame(&mut out, 0x3, 0, id, &8u32.to_be_bytes());
        }
        if conn.write_all(&out).await.is_err() {
            return Ok(true);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Read (and throw away) until the proxy closes, or the bound passes.
    let mut buf = vec![0u8; 16 * 1024];
    let read_to_end = async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    Ok(tokio::time::timeout(bound, read_to_end).await.is_ok())
}

/// Sends `count` pipelined `GET /` requests for `host` over one connection from `local`, the
/// i-th naming client `10.x.y.z` (from `first + i`) in X-Forwarded-For, and reads responses
/// until `count` status lines have arrived. Returns the number of responses per status.
pub async fn forwarded_flood(
    local: IpAddr,
    addr: SocketAddr,
    host: &str,
    first: u32,
    count: u32,
) -> anyhow::Result<std::collections::BTreeMap<u16, u32>> {
    let conn = connect_from(local, addr).await?;
    let (mut rd, mut wr) = conn.into_split();
    let host = host.to_owned();
    let writer = tokio::spawn(async move {
        let mut out = Vec::with_capacity(64 * 1024);
        for i in 0..count {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 | ((first + i) & 0x00ff_ffff));
            out.extend_from_slice(
                format!("GET / HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-For: {ip}\r\n\r\n")
                    .as_bytes(),
            );
            if out.len() > 32 * 1024 {
                wr.write_all(&out).await?;
                out.clear();
            }
        }
        wr.write_all(&out).await?;
        anyhow::Ok(wr)
    });
    let mut seen = std::collections::BTreeMap::new();
    let mut got = 0u32;
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    let marker = b"HTTP/1.1 ";
    while got < count {
        let n = tokio::time::timeout(Duration::from_secs(30), rd.read(&mut buf))
            .await
            .context("no response for 30 s")??;
        anyhow::ensure!(n > 0, "the proxy closed after {got} of {count} responses");
        carry.extend_from_slice(&buf[..n]);
        let mut i = 0;
        while i + marker.len() + 3 <= carry.len() {
            if carry[i..].starts_with(marker) {
                let code = std::str::from_utf8(&carry[i + marker.len()..i + marker.len() + 3])?
                    .parse::<u16>()?;
                *seen.entry(code).or_insert(0) += 1;
                got += 1;
                i += marker.len() + 3;
            } else {
                i += 1;
            }
        }
        carry.drain(..i);
    }
    let _wr = writer.await??;
    Ok(seen)
}

/// A request body that sends `first` and then never another byte (nor its end).
pub fn stalled_body(first: &'static [u8]) -> TestBody {
    use http_body_util::BodyExt as _;
    Stall {
        first: Some(Bytes::from_static(first)),
    }
    .boxed()
}

#[derive(Debug)]
struct Stall {
    first: Option<Bytes>,
}

impl http_body::Body for Stall {
    type Data = Bytes;
    type Error = body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.first.take() {
            Some(b) => std::task::Poll::Ready(Some(Ok(http_body::Frame::data(b)))),
            None => std::task::Poll::Pending,
        }
    }
}
