//! The client connection's read side and the request body read from it.
//!
//! [`ClientReader`] owns the read half and its buffer. While a request with a body is being
//! forwarded, the reader moves into the [`H1Body`] that streams it; the body sends the reader
//! back to the connection loop the moment its last byte has been decoded. A body abandoned
//! before its end never sends it back, and the loop closes the connection, since where the next
//! request starts is then unknown.
//!
//! The buffer is released while a connection sits idle between requests: a read with an empty
//! buffer goes into a stack array first, and heap is taken only once bytes have arrived.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::oneshot;

use super::decode::{Decoded, Decoder, FramingError};
use crate::conn::ConnState;

/// Bytes read at once with an empty buffer (an idle connection's next request usually fits).
const FIRST_READ: usize = 2048;
/// Buffer taken for a request head.
pub const HEAD_BUFFER: usize = 8192;
/// Most body bytes asked of one read.
const BODY_READ: usize = 64 * 1024;

/// A type-erased client read half (plain TCP now; TLS later).
pub type ReadIo = Box<dyn AsyncRead + Send + Unpin>;

/// The client connection's read half and the bytes read but not yet consumed.
pub struct ClientReader {
    pub io: ReadIo,
    pub buf: BytesMut,
    state: Arc<ConnState>,
}

impl std::fmt::Debug for ClientReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientReader")
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl ClientReader {
    pub fn new(io: ReadIo, buf: BytesMut, state: Arc<ConnState>) -> Self {
        ClientReader { io, buf, state }
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream. At most `hint` bytes are
    /// asked for when the buffer has to grow.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>, hint: usize) -> Poll<io::Result<usize>> {
        let n = if self.buf.is_empty() && self.buf.capacity() == 0 {
            // Idle: no heap until there is something to keep.
            let mut stack = [MaybeUninit::<u8>::uninit(); FIRST_READ];
            let mut rb = ReadBuf::uninit(&mut stack);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
            let got = rb.filled();
            if !got.is_empty() {
                // Exactly what arrived: a small allocation the allocator serves from its
                // thread cache. A head that came in pieces grows the buffer on the next read.
                self.buf = BytesMut::from(got);
            }
            got.len()
        } else {
            // Body reads ask for up to `hint` (64 KiB); a small leftover of the head buffer
            // would otherwise turn a large body into many small reads.
            let want = hint.max(1024);
            if self.buf.capacity() - self.buf.len() < want.min(16 * 1024) {
                self.buf.reserve(want);
            }
            ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut self.io),
                cx,
                &mut self.buf
            ))?
        };
        if n > 0 {
            self.state.touch();
        }
        Poll::Ready(Ok(n))
    }

    /// Drops the buffer's heap when nothing is buffered (between requests).
    pub fn release_idle_buffer(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
    }
}

/// A client's HTTP/1.1 request body, read straight from the connection.
#[derive(Debug)]
pub struct H1Body {
    reader: Option<ClientReader>,
    decoder: Decoder,
    back: Option<oneshot::Sender<ClientReader>>,
}

/// The body broke its framing or the client went away mid-body.
#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    #[error("request body framing")]
    Framing(#[from] FramingError),
    #[error("reading the request body")]
    Io(#[from] io::Error),
}

impl H1Body {
    /// Takes the reader for the body's duration; the receiver gets it back at the body's end.
    pub fn new(
        reader: ClientReader,
        decoder: Decoder,
    ) -> (H1Body, oneshot::Receiver<ClientReader>) {
        let (tx, rx) = oneshot::channel();
        let body = H1Body {
            reader: Some(reader),
            decoder,
            back: Some(tx),
        };
        (body, rx)
    }

    fn give_back(&mut self) {
        if let (Some(r), Some(tx)) = (self.reader.take(), self.back.take()) {
            let _ = tx.send(r);
        }
    }

    pub fn poll_data(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, ClientBodyError>>> {
        loop {
            let Some(reader) = self.reader.as_mut() else {
                return Poll::Ready(None);
            };
            match self.decoder.decode(&mut reader.buf)? {
                Decoded::Data(b) => {
                    if self.decoder.is_done() {
                        self.give_back();
                    }
                    return Poll::Ready(Some(Ok(b)));
                }
                Decoded::Done => {
                    self.give_back();
                    return Poll::Ready(None);
                }
                Decoded::NeedMore => {
                    let hint = self.decoder.read_hint(BODY_READ);
                    if ready!(reader.poll_fill(cx, hint))? == 0 {
                        self.decoder.eof()?;
                    }
                }
            }
        }
    }

    pub fn is_end_stream(&self) -> bool {
        self.reader.is_none() || self.decoder.is_done()
    }

    pub fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// The request body as the pipeline sees it, whichever protocol the client speaks.
#[derive(Debug)]
pub enum ClientBody {
    Empty,
    H1(H1Body),
    H2(hyper::body::Incoming),
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ClientBody::Empty => Poll::Ready(None),
            ClientBody::H1(b) => b
                .poll_data(cx)
                .map(|o| o.map(|r| r.map(Frame::data).map_err(Into::into))),
            ClientBody::H2(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|o| o.map(|r| r.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ClientBody::Empty => true,
            ClientBody::H1(b) => b.is_end_stream(),
            ClientBody::H2(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ClientBody::Empty => SizeHint::with_exact(0),
            ClientBody::H1(b) => b.size_hint(),
            ClientBody::H2(b) => b.size_hint(),
        }
    }
}
