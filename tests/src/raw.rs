//! A byte-level TCP client: for requests no well-behaved HTTP library would send (two Host
//! headers, Content-Length with Transfer-Encoding, half a request head) and for watching whether
//! the proxy keeps or closes a connection.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a read waits before the peer is declared silent.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A response as bytes on the wire, minimally parsed.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    /// Status line and header lines, without the blank line.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One TCP connection spoken to byte by byte.
#[derive(Debug)]
pub struct RawConn {
    stream: TcpStream,
    /// Bytes read but not yet consumed by a response.
    buf: Vec<u8>,
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<RawConn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        Ok(RawConn {
            stream,
            buf: Vec::new(),
        })
    }

    /// Connects from a chosen local address (any `127.x.y.z` works on Linux loopback), e.g. to
    /// appear as a client a test GeoIP database places in some country.
    pub async fn connect_from(
        local: std::net::IpAddr,
        addr: SocketAddr,
    ) -> anyhow::Result<RawConn> {
        let stream = crate::client::connect_from(local, addr).await?;
        Ok(RawConn {
            stream,
            buf: Vec::new(),
        })
    }

    /// Connects, sends `bytes`, reads one response.
    pub async fn exchange(addr: SocketAddr, bytes: &[u8]) -> anyhow::Result<RawResponse> {
        let mut c = RawConn::connect(addr).await?;
        c.write(bytes).await?;
        c.read_response().await
    }

    /// Bytes received and not yet consumed by a response (e.g. after
    /// [`RawConn::closed_within`]).
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    pub async fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream.write_all(bytes).await?;
        Ok(())
    }

    /// Reads more bytes into the buffer; `Ok(0)` when the peer closed.
    async fn fill(&mut self, timeout: Duration) -> anyhow::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(timeout, self.stream.read(&mut chunk))
            .await
            .context("no bytes from the peer")??;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads one response: the head, then a chunked body, a `Content-Length` body, or (with
    /// neither) everything until the peer closes.
    pub async fn read_response(&mut self) -> anyhow::Result<RawResponse> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            if self.fill(READ_TIMEOUT).await? == 0 {
                bail!(
                    "connection closed before a complete response head; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line in {head:?}"))?;
        let mut resp = RawResponse {
            status,
            head,
            body: Vec::new(),
        };
        let no_body = status < 200 || status == 204 || status == 304;
        let len = resp
            .header("content-length")
            .map(|v| v.parse::<usize>())
            .transpose()
            .context("bad Content-Length")?;
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        match (no_body, len) {
            (true, _) => {}
            (false, _) if chunked => resp.body = self.read_chunks().await?,
            (false, Some(len)) => {
                while self.buf.len() < len {
                    if self.fill(READ_TIMEOUT).await? == 0 {
                        bail!(
                            "connection closed {} bytes into a {len}-byte body",
                            self.buf.len()
                        );
                    }
                }
                resp.body = self.buf.drain(..len).collect();
            }
            (false, None) => {
                while self.fill(READ_TIMEOUT).await? != 0 {}
                resp.body = std::mem::take(&mut self.buf);
            }
        }
        Ok(resp)
    }

    /// Same as [`RawConn::read_response`]; says at the call site that the body must be chunked.
    pub async fn read_chunked_response(&mut self) -> anyhow::Result<RawResponse> {
        let resp = self.read_response().await?;
        if !resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            bail!("response is not chunked: {}", resp.head);
        }
        Ok(resp)
    }

    /// One CRLF-terminated line, without the CRLF.
    async fn read_line(&mut self) -> anyhow::Result<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.fill(READ_TIMEOUT).await? == 0 {
                bail!("connection closed inside a chunked body");
            }
        }
    }

    /// A chunked body, strictly: every chunk's CRLF checked, trailers read and dropped.
    async fn read_chunks(&mut self) -> anyhow::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line().await?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .with_context(|| format!("bad chunk size line {line:?}"))?;
            if size == 0 {
                while !self.read_line().await?.is_empty() {}
                return Ok(body);
            }
            while self.buf.len() < size + 2 {
                if self.fill(READ_TIMEOUT).await? == 0 {
                    bail!("connection closed inside a chunk");
                }
            }
            if &self.buf[size..size + 2] != b"\r\n" {
                bail!("chunk data not followed by CRLF");
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
        }
    }

    /// Like [`RawConn::read_response`], but `Ok(None)` when no byte of a response arrives within
    /// `limit` (the connection is open and silent).
    pub async fn read_response_within(
        &mut self,
        limit: Duration,
    ) -> anyhow::Result<Option<RawResponse>> {
        if self.buf.is_empty() {
            match self.fill(limit).await {
                Ok(0) => bail!("connection closed without a response"),
                Ok(_) => {}
                // Not an IO error: the timeout.
                Err(e) if e.downcast_ref::<std::io::Error>().is_none() => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        self.read_response().await.map(Some)
    }

    /// Waits up to `limit` for the peer to close the connection. `Ok(true)` when it closed
    /// (EOF or reset), `Ok(false)` when it was still open at the end. Bytes that arrive meanwhile
    /// are kept for [`RawConn::read_response`].
    pub async fn closed_within(&mut self, limit: Duration) -> anyhow::Result<bool> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            match self.fill(left).await {
                Ok(0) => return Ok(true),
                Ok(_) => {}
                Err(e) => match e.downcast_ref::<std::io::Error>() {
                    Some(io) if io.kind() == std::io::ErrorKind::ConnectionReset => {
                        return Ok(true);
                    }
                    Some(_) => return Err(e),
                    // Timed out: still open.
                    None => return Ok(false),
                },
            }
        }
    }
}
