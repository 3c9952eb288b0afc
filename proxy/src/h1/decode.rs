//! HTTP/1.1 message body framing (RFC 9112 §6 and §7.1): a body is a fixed length, chunked, or
//! (responses only) everything up to the connection's close.
//!
//! The decoder works on the connection's read buffer and hands out data as `Bytes` split off it,
//! so body bytes are never copied in user space. Chunk-size lines are parsed strictly: hex
//! digits, optional extensions, CRLF; anything else is an error, never a guess, because a lenient
//! chunk parser is how request smuggling starts.

use bytes::{Buf, Bytes, BytesMut};

/// Longest chunk-size line (size, extensions, CRLF) accepted.
const MAX_SIZE_LINE: usize = 4096;
/// Most trailer-section bytes accepted (they are read and dropped).
const MAX_TRAILERS: usize = 16 * 1024;

/// A body that breaks its framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("invalid chunk size line")]
    ChunkSize,
    #[error("chunk size line too long")]
    ChunkSizeTooLong,
    #[error("chunk data not followed by CRLF")]
    ChunkEnd,
    #[error("trailer section too large")]
    Trailers,
    #[error("connection closed before the end of the body")]
    Truncated,
}

/// One step of decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes, split off the buffer.
    Data(Bytes),
    /// The buffer holds no more complete body bytes: read more.
    NeedMore,
    /// The body is complete; what follows in the buffer belongs to the next message.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunked {
    /// Reading the hex size (value so far, digits seen).
    Size(u64, u8),
    /// Skipping chunk extensions up to CR.
    Extension(u64),
    /// CR seen after the size line; LF must follow.
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    /// Trailer section: bytes consumed so far, and whether the current line is empty so far.
    Trailer(usize, bool),
    TrailerLf(usize, bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    Chunked(Chunked, usize),
    UntilClose,
    Done,
}

/// Body framing state of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoder {
    state: State,
}

impl Decoder {
    pub fn length(n: u64) -> Decoder {
        Decoder {
            state: if n == 0 {
                State::Done
            } else {
                State::Length(n)
            },
        }
    }

    pub fn chunked() -> Decoder {
        Decoder {
            state: State::Chunked(Chunked::Size(0, 0), 0),
        }
    }

    pub fn until_close() -> Decoder {
        Decoder {
            state: State::UntilClose,
        }
    }

    pub fn empty() -> Decoder {
        Decoder { state: State::Done }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the body ends with the connection (so the connection cannot be reused).
    pub fn is_until_close(&self) -> bool {
        self.state == State::UntilClose
    }

    /// Bytes still expected, when the framing says.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            State::Chunked(..) | State::UntilClose => None,
        }
    }

    /// How many bytes a read should ask for, at most `cap`.
    pub fn read_hint(&self, cap: usize) -> usize {
        match self.state {
            State::Length(n) => usize::try_from(n).unwrap_or(cap).min(cap),
            State::Chunked(Chunked::Data(n), _) => {
                usize::try_from(n.saturating_add(2)).unwrap_or(cap).min(cap)
            }
            _ => cap,
        }
    }

    /// The peer closed the connection: the end of an until-close body, else a truncation.
    pub fn eof(&mut self) -> Result<(), FramingError> {
        match self.state {
            State::UntilClose | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            State::Length(_) | State::Chunked(..) => Err(FramingError::Truncated),
        }
    }

    /// Takes the next piece of body out of `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, FramingError> {
        match self.state {
            State::Done => Ok(Decoded::Done),
            State::UntilClose => {
                if buf.is_empty() {
                    Ok(Decoded::NeedMore)
                } else {
                    Ok(Decoded::Data(buf.split().freeze()))
                }
            }
            State::Length(n) => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                let left = n - take as u64;
                self.state = if left == 0 {
                    State::Done
                } else {
                    State::Length(left)
                };
                Ok(Decoded::Data(buf.split_to(take).freeze()))
            }
            State::Chunked(c, line) => self.decode_chunked(c, line, buf),
        }
    }

    fn decode_chunked(
        &mut self,
        mut c: Chunked,
        mut line: usize,
        buf: &mut BytesMut,
    ) -> Result<Decoded, FramingError> {
        loop {
            if let Chunked::Data(n) = c {
                if buf.is_empty() {
                    self.state = State::Chunked(c, 0);
                    return Ok(Decoded::NeedMore);
                }
                let take = usize::try_from(n).unwrap_or(usize::MAX).min(buf.len());
                let left = n - take as u64;
                let next = if left == 0 {
                    Chunked::DataCr
                } else {
                    Chunked::Data(left)
                };
                self.state = State::Chunked(next, 0);
                return Ok(Decoded::Data(buf.split_to(take).freeze()));
            }
            let Some(&b) = buf.first() else {
                self.state = State::Chunked(c, line);
                return Ok(Decoded::NeedMore);
            };
            buf.advance(1);
            line += 1;
            c = match c {
                Chunked::Size(v, digits) => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits >= 16 {
                            return Err(FramingError::ChunkSize);
                        }
                        let d = (b as char).to_digit(16).unwrap_or(0);
                        Chunked::Size(v << 4 | u64::from(d), digits + 1)
                    }
                    b';' | b' ' | b'\t' if digits > 0 => Chunked::Extension(v),
                    b'\r' if digits > 0 => Chunked::SizeLf(v),
                    _ => return Err(FramingError::ChunkSize),
                },
                Chunked::Extension(v) => match b {
                    b'\r' => Chunked::SizeLf(v),
                    b'\n' => return Err(FramingError::ChunkSize),
                    _ => Chunked::Extension(v),
                },
                Chunked::SizeLf(v) => {
                    if b != b'\n' {
                        return Err(FramingError::ChunkSize);
                    }
                    line = 0;
                    if v == 0 {
                        Chunked::Trailer(0, true)
                    } else {
                        Chunked::Data(v)
                    }
                }
                // Handled above, before a byte is taken.
                Chunked::Data(_) => return Err(FramingError::ChunkSize),
                Chunked::DataCr => {
                    if b != b'\r' {
                        return Err(FramingError::ChunkEnd);
                    }
                    Chunked::DataLf
                }
                Chunked::DataLf => {
                    if b != b'\n' {
                        return Err(FramingError::ChunkEnd);
                    }
                    line = 0;
                    Chunked::Size(0, 0)
                }
                Chunked::Trailer(seen, empty) => {
                    if seen + 1 > MAX_TRAILERS {
                        return Err(FramingError::Trailers);
                    }
                    if b == b'\r' {
                        Chunked::TrailerLf(seen + 1, empty)
                    } else {
                        Chunked::Trailer(seen + 1, false)
                    }
                }
                Chunked::TrailerLf(seen, empty) => {
                    if b != b'\n' {
                        return Err(FramingError::Trailers);
                    }
                    if empty {
                        self.state = State::Done;
                        return Ok(Decoded::Done);
                    }
                    Chunked::Trailer(seen + 1, true)
                }
            };
            if line > MAX_SIZE_LINE && !matches!(c, Chunked::Trailer(..) | Chunked::TrailerLf(..)) {
                return Err(FramingError::ChunkSizeTooLong);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `step` bytes; returns the body or the error.
    fn run(mut d: Decoder, input: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>), FramingError> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match d.decode(&mut buf)? {
                Decoded::Data(b) => out.extend_from_slice(&b),
                Decoded::Done => return Ok((out, buf.to_vec())),
                Decoded::NeedMore => {
                    if fed == input.len() {
                        d.eof()?;
                        return Ok((out, buf.to_vec()));
                    }
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_in_any_split() {
        let input = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in 1..input.len() {
            let (body, rest) = run(Decoder::chunked(), input, step).unwrap();
            assert_eq!(body, b"hello world", "step {step}");
            // What follows the body stays for the next message, untouched.
            assert!(b"NEXT".starts_with(&rest), "step {step}: {rest:?}");
        }
    }

    #[test]
    fn malformed_chunks_are_errors() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"-5\r\n",
            b"0x5\r\n",
            b"11111111111111111\r\n",
        ] {
            assert!(run(Decoder::chunked(), bad, 64).is_err(), "{bad:?}");
        }
        let long = format!("5;{}\r\n", "e".repeat(MAX_SIZE_LINE));
        assert_eq!(
            run(Decoder::chunked(), long.as_bytes(), 64),
            Err(FramingError::ChunkSizeTooLong)
        );
    }

    #[test]
    fn truncation_is_an_error_except_until_close() {
        assert_eq!(
            run(Decoder::length(10), b"12345", 2),
            Err(FramingError::Truncated)
        );
        assert_eq!(
            run(Decoder::chunked(), b"5\r\nhel", 2),
            Err(FramingError::Truncated)
        );
        let (body, _) = run(Decoder::until_close(), b"all of it", 3).unwrap();
        assert_eq!(body, b"all of it");
    }

    #[test]
    fn length_stops_at_its_end() {
        let (body, rest) = run(Decoder::length(5), b"helloGET /", 64).unwrap();
        assert_eq!(body, b"hello");
        assert_eq!(rest, b"GET /");
    }
}
