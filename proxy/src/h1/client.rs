//! The origin side of HTTP/1.1: one exchange on a pooled connection, and the response body that
//! reads straight from it.
//!
//! The exchange runs in the client connection's own task: the request head (and body) is
//! written, the response head read and parsed, and the body is then pulled by whoever writes it
//! to the client. No task, channel or lock sits between the two sockets. At the end of a body
//! that leaves the connection reusable, [`OriginBody`] puts the connection back into its
//! origin's pool.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWriteExt;

use super::decode::{Decoded, Decoder};
use super::parse::{ResponseHeadError, parse_response, response_framing};
use super::write::{Framing, WriteError, write_message};
use crate::body::RequestBody;
use crate::upstream::Origin;
use crate::upstream::tls::OriginIo;

/// Largest response head accepted from an origin.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Buffer taken for reading a response head.
const HEAD_READ: usize = 8 * 1024;
/// Most body bytes asked of one read.
const BODY_READ: usize = 64 * 1024;

/// An HTTP/1.1 connection to an origin, with bytes read from it and not yet consumed.
#[derive(Debug)]
pub struct H1Conn {
    pub io: OriginIo,
    pub buf: BytesMut,
}

impl H1Conn {
    pub fn new(io: OriginIo) -> Self {
        H1Conn {
            io,
            buf: BytesMut::new(),
        }
    }

    /// Whether an idle pooled connection still looks usable: not closed by the origin, and no
    /// stray bytes. One non-blocking peek; used before sending a request that cannot be
    /// retried.
    pub fn looks_alive(&self) -> bool {
        self.io.looks_idle()
    }
}

/// How an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The connection failed before the origin could have acted on the request (write failed,
    /// or it closed without a byte of response to a request without a body): retryable on a
    /// fresh connection when this one came from the pool.
    #[error("origin connection closed before the request was taken")]
    Unused(#[source] io::Error),
    #[error("origin connection failed")]
    Io(#[source] io::Error),
    #[error("origin sent an invalid response")]
    Protocol(#[source] ResponseHeadError),
    /// The client's request body failed (too large, malformed, client gone).
    #[error("request body failed")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A response head and how its body is framed.
#[derive(Debug)]
pub struct Exchanged {
    pub parts: http::response::Parts,
    pub decoder: Decoder,
    /// The connection may be reused after the body (origin did not ask to close).
    pub reusable: bool,
}

/// Sends the encoded `head` (and `body`, if any, with `framing`) and reads the response head.
pub async fn exchange(
    conn: &mut H1Conn,
    head: &[u8],
    body: Option<RequestBody>,
    framing: Framing,
    method: &Method,
) -> Result<Exchanged, ExchangeError> {
    let retryable = body.is_none();
    match body {
        None => conn
            .io
            .write_all(head)
            .await
            .map_err(ExchangeError::Unused)?,
        Some(body) => match write_message(&mut conn.io, head, body, framing).await {
            Ok(_) => {}
            Err(WriteError::Io(e)) => return Err(ExchangeError::Io(e)),
            Err(WriteError::Body(e)) => return Err(ExchangeError::Body(e)),
            Err(WriteError::Length) => {
                return Err(ExchangeError::Body(
                    "request body did not match its length".into(),
                ));
            }
        },
    }
    let mut got_bytes = false;
    loop {
        if !conn.buf.is_empty() {
            got_bytes = true;
            if let Some(resp) =
                parse_response(&mut conn.buf, MAX_RESPONSE_HEAD).map_err(ExchangeError::Protocol)?
            {
                let status = resp.parts.status;
                // Interim responses (100 Continue, 103 Early Hints) are dropped; the final
                // one follows on the same connection.
                if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
                    continue;
                }
                let decoder =
                    response_framing(&resp.parts, method).map_err(ExchangeError::Protocol)?;
                return Ok(Exchanged {
                    parts: resp.parts,
                    reusable: resp.keep_alive && !decoder.is_until_close(),
                    decoder,
                });
            }
        }
        if conn.buf.capacity() - conn.buf.len() < 1024 {
            conn.buf.reserve(HEAD_READ);
        }
        let read = tokio::io::AsyncReadExt::read_buf(&mut conn.io, &mut conn.buf).await;
        let failed = match read {
            Ok(0) => io::ErrorKind::UnexpectedEof.into(),
            Ok(_) => continue,
            Err(e) => e,
        };
        return Err(if retryable && !got_bytes {
            ExchangeError::Unused(failed)
        } else {
            ExchangeError::Io(failed)
        });
    }
}

/// An origin's HTTP/1.1 response body, read from its connection as the client takes it.
#[derive(Debug)]
pub struct OriginBody {
    conn: Option<H1Conn>,
    decoder: Decoder,
    /// Where the connection goes at the end of the body, if it can be reused.
    pool: Option<Arc<Origin>>,
}

/// The origin broke the body: closed early, reset, or bad chunk framing.
#[derive(Debug, thiserror::Error)]
pub enum OriginBodyError {
    #[error("origin response body framing")]
    Framing(#[from] super::decode::FramingError),
    #[error("reading the origin response body")]
    Io(#[from] io::Error),
}

impl OriginBody {
    pub fn new(conn: H1Conn, decoder: Decoder, pool: Option<Arc<Origin>>) -> Self {
        let mut body = OriginBody {
            conn: Some(conn),
            decoder,
            pool,
        };
        if body.decoder.is_done() {
            body.finish();
        }
        body
    }

    /// The body is complete: the connection goes back to the pool or is closed.
    fn finish(&mut self) {
        if let (Some(conn), Some(origin)) = (self.conn.take(), self.pool.take()) {
            // Bytes past the body would be a protocol error; such a connection is not reused.
            if conn.buf.is_empty() {
                origin.checkin(conn);
            }
        }
        self.conn = None;
    }

    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, OriginBodyError>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match self.decoder.decode(&mut conn.buf) {
                Err(e) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Ok(Decoded::Data(b)) => {
                    if self.decoder.is_done() {
                        self.finish();
                    }
                    return Poll::Ready(Some(Ok(b)));
                }
                Ok(Decoded::Done) => {
                    self.finish();
                    return Poll::Ready(None);
                }
                Ok(Decoded::NeedMore) => {
                    let want = self.decoder.read_hint(BODY_READ).max(1024);
                    if conn.buf.capacity() - conn.buf.len() < want {
                        conn.buf.reserve(want);
                    }
                    let read = ready!(tokio_util::io::poll_read_buf(
                        Pin::new(&mut conn.io),
                        cx,
                        &mut conn.buf
                    ));
                    match read {
                        Ok(0) => {
                            let end = self.decoder.eof();
                            self.conn = None;
                            if let Err(e) = end {
                                return Poll::Ready(Some(Err(e.into())));
                            }
                            return Poll::Ready(None);
                        }
                        Ok(_) => {}
                        Err(e) => {
                            self.conn = None;
                            return Poll::Ready(Some(Err(e.into())));
                        }
                    }
                }
            }
        }
    }
}

impl Body for OriginBody {
    type Data = Bytes;
    type Error = OriginBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, OriginBodyError>>> {
        self.get_mut()
            .poll_data(cx)
            .map(|o| o.map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// A request body's wire framing towards an origin.
pub fn request_framing(body: &RequestBody) -> Framing {
    if body.is_end_stream() {
        Framing::None
    } else if let Some(n) = body.size_hint().exact() {
        Framing::Length(n)
    } else {
        Framing::Chunked
    }
}

/// Bytes already read from the origin past the 101 head belong to the tunnel.
pub fn into_tunnel(conn: H1Conn) -> (OriginIo, BytesMut) {
    (conn.io, conn.buf)
}
