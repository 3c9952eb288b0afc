//! Bodies for tests: a boxed body type every harness client and origin speaks, a generated
//! body of any length that never exists in memory as a whole, and a counter that consumes a
//! body without keeping it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty, Full};

/// Errors carried by test bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of harness requests and origin responses.
pub type TestBody = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// A complete body from bytes or text.
pub fn full(data: impl Into<Bytes>) -> TestBody {
    Full::new(data.into()).map_err(|e| match e {}).boxed()
}

/// An empty body.
pub fn empty() -> TestBody {
    Empty::new().map_err(|e| match e {}).boxed()
}

/// `total` bytes of a repeating pattern, produced one chunk at a time. Every chunk is a clone of
/// the same `Bytes`, so a gigabyte costs one chunk of memory.
#[derive(Debug, Clone)]
pub struct RepeatBody {
    chunk: Bytes,
    remaining: u64,
    announce_length: bool,
}

impl RepeatBody {
    /// `total` bytes in chunks of `chunk_size`, with its length known up front (so HTTP/1.1
    /// sends `Content-Length`).
    pub fn new(total: u64, chunk_size: usize) -> RepeatBody {
        let pattern: Vec<u8> = (0..chunk_size.max(1))
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        RepeatBody {
            chunk: Bytes::from(pattern),
            remaining: total,
            announce_length: true,
        }
    }

    /// Hides the length, so HTTP/1.1 sends the body chunked.
    pub fn chunked(mut self) -> RepeatBody {
        self.announce_length = false;
        self
    }

    pub fn boxed(self) -> TestBody {
        BodyExt::map_err(self, |e: std::convert::Infallible| match e {}).boxed()
    }
}

impl Body for RepeatBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(self.chunk.len() as u64);
        self.remaining -= n;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n as usize)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.announce_length {
            SizeHint::with_exact(self.remaining)
        } else {
            SizeHint::default()
        }
    }
}

/// Reads a body to its end, counting data bytes and keeping none of them.
///
/// On error returns the count so far with the error, so a test can show how much of a cut
/// transfer arrived.
pub async fn count<B>(body: B) -> Result<u64, (u64, B::Error)>
where
    B: Body + Unpin,
{
    let mut body = body;
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    n += bytes::Buf::remaining(d) as u64;
                }
            }
            Err(e) => return Err((n, e)),
        }
    }
    Ok(n)
}
