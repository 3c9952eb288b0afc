//! Parsing HTTP/1.x message heads (httparse) into `http` types, with the framing decision that
//! goes with them (RFC 9112 §6.3).
//!
//! Header values are slices of the frozen head bytes, not copies. The framing rules are strict
//! where leniency would let two parsers disagree about where a message ends: Content-Length
//! together with Transfer-Encoding, differing Content-Lengths, and transfer codings other than
//! `chunked` are refused rather than resolved.

use std::mem::MaybeUninit;

use arrayvec::ArrayVec;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version};

use super::decode::Decoder;
use crate::error::ProxyError;

/// Most header lines in one head.
pub const MAX_HEADERS: usize = 128;

/// A parsed request head.
#[derive(Debug)]
pub struct RequestHead {
    pub parts: http::request::Parts,
    pub body: Decoder,
    /// The client allows the connection to stay open after this exchange.
    pub keep_alive: bool,
    pub expect_continue: bool,
}

/// Positions of one header line inside the head.
#[derive(Clone, Copy)]
struct Span {
    name: (u32, u32),
    value: (u32, u32),
}

/// Header slots tried first for a response head.
const FEW_HEADERS: usize = 32;

/// Where each header line's name and value sit in `base`, so they can be sliced out of the
/// frozen head once the parser's borrow ends.
/// Filled in place: returning the 2 KiB array by value cost a copy per message.
fn spans_of(base: &[u8], lines: &[httparse::Header<'_>], spans: &mut ArrayVec<Span, MAX_HEADERS>) {
    for line in lines {
        spans.push(Span {
            name: span_of(base, line.name.as_bytes()),
            value: span_of(base, line.value),
        });
    }
}

fn span_of(base: &[u8], part: &[u8]) -> (u32, u32) {
    // Heads are bounded by max_header_size, far below 4 GiB.
    let start = part.as_ptr() as usize - base.as_ptr() as usize;
    (start as u32, (start + part.len()) as u32)
}

/// Parses a request head from the front of `buf`. `Ok(None)`: not complete yet (read more).
/// On success the head's bytes are split off `buf`; what follows stays.
pub fn parse_request(
    buf: &mut BytesMut,
    max_head: usize,
) -> Result<Option<RequestHead>, ProxyError> {
    // Uninitialised: zeroing 128 header slots for every request was a fifth of the proxy's
    // instructions.
    let mut lines = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let status = match req.parse_with_uninit_headers(buf, &mut lines) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(ProxyError::HeadTooLarge),
        Err(e) => return Err(ProxyError::MalformedHead(e)),
    };
    let head_len = match status {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => {
            if buf.len() > max_head {
                return Err(ProxyError::HeadTooLarge);
            }
            return Ok(None);
        }
    };
    if head_len > max_head {
        return Err(ProxyError::HeadTooLarge);
    }
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
        .map_err(|_| ProxyError::MalformedHead(httparse::Error::Token))?;
    let version = if req.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let target = span_of(buf, req.path.unwrap_or("").as_bytes());
    let mut spans = ArrayVec::new();
    spans_of(buf, req.headers, &mut spans);
    let head = buf.split_to(head_len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(target.0 as usize..target.1 as usize))
        .map_err(|_| ProxyError::MalformedHead(httparse::Error::Token))?;
    let headers = header_map(&head, &spans, ADDED_HEADERS)?;
    let body = request_framing(&headers, version)?;
    let keep_alive = keep_alive(&headers, version);
    let expect_continue = version == Version::HTTP_11
        && headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(RequestHead {
        parts,
        body,
        keep_alive,
        expect_continue,
    }))
}

/// A parsed response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub parts: http::response::Parts,
    pub keep_alive: bool,
}

/// Parses a response head from the front of `buf`; see [`parse_request`].
pub fn parse_response(
    buf: &mut BytesMut,
    max_head: usize,
) -> Result<Option<ResponseHead>, ResponseHeadError> {
    // httparse has no uninitialised-slots variant for responses: try a few slots first (most
    // responses fit), and all of them only when that is too few.
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    let mut many;
    let mut resp = httparse::Response::new(&mut few);
    let mut parsed = resp.parse(buf);
    if let Err(httparse::Error::TooManyHeaders) = parsed {
        many = [httparse::EMPTY_HEADER; MAX_HEADERS];
        resp = httparse::Response::new(&mut many);
        parsed = resp.parse(buf);
    }
    let head_len = match parsed.map_err(ResponseHeadError::Parse)? {
        httparse::Status::Complete(n) if n <= max_head => n,
        httparse::Status::Partial if buf.len() <= max_head => return Ok(None),
        _ => return Err(ResponseHeadError::TooLarge),
    };
    let status = StatusCode::from_u16(resp.code.unwrap_or(0))
        .map_err(|_| ResponseHeadError::Parse(httparse::Error::Status))?;
    let version = if resp.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut spans = ArrayVec::new();
    spans_of(buf, resp.headers, &mut spans);
    let head = buf.split_to(head_len).freeze();
    // No room kept for additions: a forwarded response gets none (the cache's Cache-Status at
    // most), and asking for more made every HTTP/2 response regrow the pooled map, which is
    // a client request's (its own headers and ADDED_HEADERS).
    let headers = header_map(&head, &spans, 0).map_err(|_| ResponseHeadError::InvalidHeader)?;
    let keep_alive = keep_alive(&headers, version);
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = status;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(ResponseHead { parts, keep_alive }))
}

/// A response head that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ResponseHeadError {
    #[error("malformed response head")]
    Parse(#[source] httparse::Error),
    #[error("response head too large")]
    TooLarge,
    #[error("invalid response header")]
    InvalidHeader,
    #[error("invalid response framing")]
    Framing,
}

/// Room for the headers the proxy adds to a request (X-Forwarded-*, Via, X-Request-Id), so
/// adding them does not regrow and rehash the map.
const ADDED_HEADERS: usize = 6;

/// The head's headers, in a map with `room` more.
fn header_map(head: &Bytes, spans: &[Span], room: usize) -> Result<HeaderMap, ProxyError> {
    let mut headers = super::maps::take(spans.len() + room);
    for s in spans {
        let name = HeaderName::from_bytes(&head[s.name.0 as usize..s.name.1 as usize])
            .map_err(|_| ProxyError::MalformedHead(httparse::Error::HeaderName))?;
        let value =
            HeaderValue::from_maybe_shared(head.slice(s.value.0 as usize..s.value.1 as usize))
                .map_err(|_| ProxyError::MalformedHead(httparse::Error::HeaderValue))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Whether a comma-separated header (every line of it) contains `token`.
pub fn has_token(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

fn keep_alive(headers: &HeaderMap, version: Version) -> bool {
    if !headers.contains_key(header::CONNECTION) {
        return version == Version::HTTP_11;
    }
    if has_token(headers, &header::CONNECTION, "close") {
        return false;
    }
    version == Version::HTTP_11 || has_token(headers, &header::CONNECTION, "keep-alive")
}

/// Content-Length lines that disagree, or one that is not a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadLength;

/// The one Content-Length all lines agree on.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, BadLength> {
    let mut found = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        // "5, 5" on one line is the same as two lines (RFC 9110 §8.6).
        for part in v.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) || part.len() > 19 {
                return Err(BadLength);
            }
            let n: u64 = std::str::from_utf8(part)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(BadLength)?;
            match found {
                Some(prev) if prev != n => return Err(BadLength),
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

/// Whether Transfer-Encoding is exactly `chunked`; `Err` for any other coding list.
fn chunked_only(headers: &HeaderMap) -> Result<bool, ()> {
    let mut codings = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii);
    match (codings.next(), codings.next()) {
        (None, _) => Ok(false),
        (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => Ok(true),
        _ => Err(()),
    }
}

fn request_framing(headers: &HeaderMap, version: Version) -> Result<Decoder, ProxyError> {
    let te = headers.contains_key(header::TRANSFER_ENCODING);
    if te {
        // RFC 9112 §6.1: both headers is how smuggling is done; refuse, and close.
        if headers.contains_key(header::CONTENT_LENGTH) || version == Version::HTTP_10 {
            return Err(ProxyError::AmbiguousLength);
        }
        return match chunked_only(headers) {
            Ok(_) => Ok(Decoder::chunked()),
            Err(()) => Err(ProxyError::UnsupportedTransferCoding),
        };
    }
    match content_length(headers) {
        Ok(Some(n)) => Ok(Decoder::length(n)),
        Ok(None) => Ok(Decoder::empty()),
        Err(BadLength) => Err(ProxyError::AmbiguousLength),
    }
}

/// How an origin's response body is framed (RFC 9112 §6.3), given the request it answers.
pub fn response_framing(
    parts: &http::response::Parts,
    request_method: &Method,
) -> Result<Decoder, ResponseHeadError> {
    let status = parts.status;
    if request_method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Decoder::empty());
    }
    if parts.headers.contains_key(header::TRANSFER_ENCODING) {
        return match chunked_only(&parts.headers) {
            Ok(_) if parts.version == Version::HTTP_11 => Ok(Decoder::chunked()),
            // Any other coding, or chunked on HTTP/1.0: the body runs to the close.
            _ => Ok(Decoder::until_close()),
        };
    }
    match content_length(&parts.headers) {
        Ok(Some(n)) => Ok(Decoder::length(n)),
        Ok(None) => Ok(Decoder::until_close()),
        Err(BadLength) => Err(ResponseHeadError::Framing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Option<RequestHead>, ProxyError> {
        let mut buf = BytesMut::from(raw.as_bytes());
        parse_request(&mut buf, 8192)
    }

    #[test]
    fn a_request_head_parses_into_parts() {
        let mut buf = BytesMut::from(
            &b"POST /p?q=1 HTTP/1.1\r\nHost: a.example\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 5\r\n\r\nhelloGET"[..],
        );
        let head = parse_request(&mut buf, 8192).unwrap().unwrap();
        assert_eq!(head.parts.method, Method::POST);
        assert_eq!(head.parts.uri, "/p?q=1");
        assert_eq!(head.parts.headers["host"], "a.example");
        assert_eq!(head.parts.headers.get_all("x-a").iter().count(), 2);
        assert_eq!(head.body.remaining(), Some(5));
        assert!(head.keep_alive);
        assert_eq!(&buf[..], b"helloGET");
    }

    #[test]
    fn partial_heads_wait_and_oversized_ones_fail() {
        assert!(parse("GET / HTTP/1.1\r\nHost: a").unwrap().is_none());
        let big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(9000));
        assert!(matches!(parse(&big), Err(ProxyError::HeadTooLarge)));
        let lines: String = (0..200).map(|i| format!("X-{i}: 1\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{lines}\r\n");
        assert!(matches!(
            parse_request(&mut BytesMut::from(many.as_bytes()), 1 << 20),
            Err(ProxyError::HeadTooLarge)
        ));
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for raw in [
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(
                matches!(parse(raw), Err(ProxyError::AmbiguousLength)),
                "{raw:?}"
            );
        }
        for raw in [
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(
                matches!(parse(raw), Err(ProxyError::UnsupportedTransferCoding)),
                "{raw:?}"
            );
        }
        let same = parse("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(same.unwrap().unwrap().body.remaining(), Some(3));
        for raw in [
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            "GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
        ] {
            assert!(
                matches!(parse(raw), Err(ProxyError::MalformedHead(_))),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn responses_with_many_headers_parse() {
        let lines: String = (0..100).map(|i| format!("X-{i}: {i}\r\n")).collect();
        let raw = format!("HTTP/1.1 200 OK\r\n{lines}Content-Length: 2\r\n\r\nok");
        let mut buf = BytesMut::from(raw.as_bytes());
        let head = parse_response(&mut buf, 1 << 20).unwrap().unwrap();
        assert_eq!(head.parts.headers.len(), 101);
        assert_eq!(head.parts.headers["x-99"], "99");
        assert_eq!(&buf[..], b"ok");
        let too_many: String = (0..200).map(|i| format!("X-{i}: {i}\r\n")).collect();
        let raw = format!("HTTP/1.1 200 OK\r\n{too_many}\r\n");
        assert!(parse_response(&mut BytesMut::from(raw.as_bytes()), 1 << 20).is_err());
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        let ka = |raw: &str| parse(raw).unwrap().unwrap().keep_alive;
        assert!(ka("GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
        assert!(!ka("GET / HTTP/1.0\r\n\r\n"));
        assert!(ka("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    }
}
