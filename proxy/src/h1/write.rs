//! Writing HTTP/1.1 messages: the head (status or request line, headers, our own framing
//! headers) and the body, with the head and the first body bytes in one `writev`.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::pin;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Method, StatusCode, Version};
use http_body::Body;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// How a message body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all (HEAD, 1xx, 204, 304; a request without one).
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (HTTP/1.0 clients and bodies of unknown length).
    Close,
}

/// The framing of a response to `method` from a client speaking `client`.
pub fn response_framing(
    status: StatusCode,
    method: &Method,
    exact: Option<u64>,
    client: Version,
) -> Framing {
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Framing::None;
    }
    match exact {
        Some(n) => Framing::Length(n),
        None if client == Version::HTTP_11 => Framing::Chunked,
        None => Framing::Close,
    }
}

/// Writes one header line.
fn line(dst: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    dst.extend_from_slice(name);
    dst.extend_from_slice(b": ");
    dst.extend_from_slice(value);
    dst.extend_from_slice(b"\r\n");
}

/// Headers we write ourselves from the framing decision, never copied from the message.
fn is_framing_header(name: &header::HeaderName, framing: Framing) -> bool {
    name == header::CONNECTION
        || name == header::TRANSFER_ENCODING
        || (name == header::CONTENT_LENGTH && framing != Framing::None)
}

fn headers_and_framing(
    dst: &mut Vec<u8>,
    headers: &HeaderMap,
    framing: Framing,
    connection: Option<&[u8]>,
) {
    for (name, value) in headers {
        if !is_framing_header(name, framing) {
            line(dst, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    match framing {
        Framing::Length(n) => {
            let mut digits = itoa::Buffer::new();
            line(dst, b"content-length", digits.format(n).as_bytes());
        }
        Framing::Chunked => line(dst, b"transfer-encoding", b"chunked"),
        Framing::None | Framing::Close => {}
    }
    if let Some(c) = connection {
        line(dst, b"connection", c);
    }
    dst.extend_from_slice(b"\r\n");
}

/// Encodes a response head. `keep_alive` is what we tell the client; `client` its version.
pub fn encode_response_head(
    dst: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    framing: Framing,
    keep_alive: bool,
    client: Version,
) {
    dst.extend_from_slice(b"HTTP/1.1 ");
    dst.extend_from_slice(status.as_str().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    dst.extend_from_slice(b"\r\n");
    if !headers.contains_key(header::DATE) {
        with_date(|d| line(dst, b"date", d));
    }
    let connection: Option<&[u8]> = if status == StatusCode::SWITCHING_PROTOCOLS {
        Some(b"upgrade")
    } else if !keep_alive {
        Some(b"close")
    } else if client == Version::HTTP_10 {
        Some(b"keep-alive")
    } else {
        None
    };
    headers_and_framing(dst, headers, framing, connection);
}

/// Encodes a request head for an origin: origin-form target, HTTP/1.1.
pub fn encode_request_head(
    dst: &mut Vec<u8>,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    framing: Framing,
    upgrade: bool,
) {
    dst.extend_from_slice(method.as_str().as_bytes());
    dst.push(b' ');
    dst.extend_from_slice(target.as_bytes());
    dst.extend_from_slice(b" HTTP/1.1\r\n");
    let connection: Option<&[u8]> = upgrade.then_some(b"upgrade");
    headers_and_framing(dst, headers, framing, connection);
}

/// The current `Date` header value, formatted once per second per thread.
fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    thread_local! {
        static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((0, [0; 29])) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let text = httpdate::fmt_http_date(now);
            if text.len() == 29 {
                cached.1.copy_from_slice(text.as_bytes());
                cached.0 = secs;
            }
        }
        f(&cached.1)
    })
}

/// Why a message could not be written whole.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("writing to the peer")]
    Io(#[from] io::Error),
    #[error("the body failed")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the body did not match its announced length")]
    Length,
}

/// Writes `head` and then `body` with `framing`; the head goes out with the first body bytes.
/// Returns the body bytes written.
pub async fn write_message<W, B>(
    w: &mut W,
    head: &[u8],
    body: B,
    framing: Framing,
) -> Result<u64, WriteError>
where
    W: AsyncWrite + Unpin,
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut body = pin!(body);
    let mut head: &[u8] = head;
    let mut written: u64 = 0;
    let chunked = framing == Framing::Chunked;
    if framing != Framing::None && !body.is_end_stream() {
        loop {
            let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await else {
                break;
            };
            let frame = frame.map_err(|e| WriteError::Body(e.into()))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers are not forwarded
            };
            if data.is_empty() {
                continue;
            }
            let end = body.is_end_stream();
            written += data.len() as u64;
            if let Framing::Length(n) = framing {
                if written > n {
                    return Err(WriteError::Length);
                }
            }
            let mut size_line = [0u8; 20];
            let size_len = if chunked {
                hex_line(&mut size_line, data.len())
            } else {
                0
            };
            let tail: &[u8] = match (chunked, end) {
                (true, true) => b"\r\n0\r\n\r\n",
                (true, false) => b"\r\n",
                (false, _) => b"",
            };
            let mut slices = [
                IoSlice::new(head),
                IoSlice::new(&size_line[..size_len]),
                IoSlice::new(&data),
                IoSlice::new(tail),
            ];
            write_all_vectored(w, &mut slices).await?;
            head = &[];
            if end {
                w.flush().await?;
                return finish(framing, written);
            }
        }
    }
    let last: &[u8] = if chunked { b"0\r\n\r\n" } else { b"" };
    let mut slices = [IoSlice::new(head), IoSlice::new(last)];
    write_all_vectored(w, &mut slices).await?;
    w.flush().await?;
    finish(framing, written)
}

fn finish(framing: Framing, written: u64) -> Result<u64, WriteError> {
    match framing {
        Framing::Length(n) if n != written => Err(WriteError::Length),
        _ => Ok(written),
    }
}

/// `{len:x}\r\n` into `buf`; returns its length.
fn hex_line(buf: &mut [u8; 20], len: usize) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    let d = &digits[i..];
    buf[..d.len()].copy_from_slice(d);
    buf[d.len()..d.len() + 2].copy_from_slice(b"\r\n");
    d.len() + 2
}

/// `write_all` for a list of slices, one `writev` per call to the socket.
pub async fn write_all_vectored<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut slices: &mut [IoSlice<'_>],
) -> io::Result<()> {
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        let n = w.write_vectored(slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    #[test]
    fn hex_lines() {
        let mut b = [0u8; 20];
        let n = hex_line(&mut b, 0x1a2f);
        assert_eq!(&b[..n], b"1a2f\r\n");
        let n = hex_line(&mut b, 0);
        assert_eq!(&b[..n], b"0\r\n");
    }

    #[test]
    fn framing_headers_are_ours() {
        let mut h = HeaderMap::new();
        h.insert("content-length", "99".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("connection", "keep-alive".parse().unwrap());
        h.insert("date", "Thu, 01 Jan 2026 00:00:00 GMT".parse().unwrap());
        h.insert("x-a", "1".parse().unwrap());
        let mut out = Vec::new();
        encode_response_head(
            &mut out,
            StatusCode::OK,
            &h,
            Framing::Length(5),
            false,
            Version::HTTP_11,
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\ndate: Thu, 01 Jan 2026 00:00:00 GMT\r\nx-a: 1\r\n\
             content-length: 5\r\nconnection: close\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn chunked_and_length_bodies_are_framed() {
        let mut out = Vec::new();
        let chunks =
            futures_util::stream::iter(["hello", " world"].map(|s| {
                Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(s)))
            }));
        let n = write_message(
            &mut out,
            b"H\r\n\r\n",
            StreamBody::new(chunks),
            Framing::Chunked,
        )
        .await
        .unwrap();
        assert_eq!(n, 11);
        assert_eq!(out, b"H\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");

        let mut out = Vec::new();
        let body = Full::new(Bytes::from_static(b"abc"));
        write_message(&mut out, b"H\r\n\r\n", body, Framing::Length(3))
            .await
            .unwrap();
        assert_eq!(out, b"H\r\n\r\nabc");

        let short = Full::new(Bytes::from_static(b"ab"));
        let err = write_message(&mut Vec::new(), b"", short, Framing::Length(3)).await;
        assert!(matches!(err, Err(WriteError::Length)));
    }
}
