//! Path canonicalisation: the form the proxy forwards, and the stricter form orders match on.
//!
//! **Forwarded form** ([`normalize_path`], the spec's "normalised path"): percent-escapes of
//! unreserved characters (`A-Z a-z 0-9 - . _ ~`) decoded, every other escape kept with uppercase
//! hex, dot-segments removed (RFC 3986 §5.2.4, also when spelled `%2e`), duplicate slashes
//! merged; the query is kept as is. The proxy forwards exactly this, so what was matched is what
//! the origin sees.
//!
//! **Match form** (used by [`CompiledPolicy::decide`](crate::CompiledPolicy::decide)): the
//! forwarded form, then read the way the most lenient origin might read it, so that no spelling
//! of a blocked path reaches it: every escape decoded, repeatedly (double encoding: `%252e` →
//! `%2e` → `.`), `\` and `%2F`/`%5C` taken as `/`, `;parameters` dropped from each segment
//! (`/a;x/..;/b`), then dot-segments and duplicate slashes once more. The query and fragment are
//! ignored. A target that cannot be read this way (not starting with `/`, or still decoding after
//! [`MAX_DECODE_ROUNDS`]) matches every path-scoped order of its host: fail closed. Matching is
//! by byte prefix on segment boundaries and is case-sensitive, as paths are.

use std::borrow::Cow;

/// Full decoding passes before a target is declared unreadable (each pass peels one layer).
pub const MAX_DECODE_ROUNDS: usize = 3;

/// Why a target cannot be forwarded. The proxy answers 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("request target does not start with '/'")]
    NotOriginForm,
    #[error("request target contains whitespace, a control byte or a non-ASCII byte")]
    BadByte,
}

/// The forwarded form of an origin-form target (`/path?query`). Borrows when nothing changes.
pub fn normalize_path(target: &str) -> Result<Cow<'_, str>, PathError> {
    if target.bytes().any(|b| b <= 0x20 || b >= 0x7f || b == b'#') {
        return Err(PathError::BadByte);
    }
    let (path, query) = match target.find('?') {
        Some(i) => target.split_at(i),
        None => (target, ""),
    };
    if !path.starts_with('/') {
        return Err(PathError::NotOriginForm);
    }
    if !needs_work(path.as_bytes()) {
        return Ok(Cow::Borrowed(target));
    }
    let mut buf = path.as_bytes().to_vec();
    let n = decode_in_place(&mut buf, Decode::Unreserved);
    let n = segments_in_place(&mut buf[..n], false);
    buf.truncate(n);
    buf.extend_from_slice(query.as_bytes());
    // Only ASCII went in and decoding unreserved escapes yields ASCII.
    match String::from_utf8(buf) {
        Ok(s) if s == target => Ok(Cow::Borrowed(target)),
        Ok(s) => Ok(Cow::Owned(s)),
        Err(_) => Err(PathError::BadByte),
    }
}

/// Whether a path may change under [`normalize_path`].
fn needs_work(path: &[u8]) -> bool {
    let has = |pat: &[u8]| path.windows(pat.len()).any(|w| w == pat);
    path.contains(&b'%')
        || has(b"//")
        || has(b"/./")
        || has(b"/../")
        || path.ends_with(b"/.")
        || path.ends_with(b"/..")
}

/// The match form of a target (origin-form or absolute-form, query allowed), written into `buf`,
/// which must be at least as long as the target. `None` when the target cannot be read (the
/// caller then treats every path-scoped order as matching).
pub(crate) fn match_form<'b>(target: &[u8], buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let path = path_part(target)?;
    let out = buf.get_mut(..path.len())?;
    out.copy_from_slice(path);
    let n = decode_in_place(out, Decode::Unreserved);
    let mut n = segments_in_place(&mut out[..n], false);
    let mut settled = false;
    for _ in 0..=MAX_DECODE_ROUNDS {
        let m = decode_in_place(&mut out[..n], Decode::All);
        if m == n {
            settled = true;
            break;
        }
        n = m;
    }
    if !settled {
        return None;
    }
    for b in &mut out[..n] {
        if *b == b'\\' {
            *b = b'/';
        }
    }
    let n = segments_in_place(&mut out[..n], true);
    out.get(..n)
}

/// The match form of a configured prefix (validated to start with `/`).
pub(crate) fn prefix_match_form(prefix: &str) -> Option<Box<[u8]>> {
    let mut buf = vec![0; prefix.len().max(1)];
    match_form(prefix.as_bytes(), &mut buf).map(Box::from)
}

/// Whether `path` (match form) is under `prefix` (match form) on a segment boundary: `/a/b` is
/// under `/`, `/a`, `/a/`, `/a/b` and `/a/b/`, not under `/a/bc` or `/a/b/c`.
pub(crate) fn under(path: &[u8], prefix: &[u8]) -> bool {
    match path.strip_prefix(prefix) {
        None => {
            // `/a/b` is under `/a/b/`: the prefix names the directory, the path its index.
            prefix.strip_suffix(b"/") == Some(path) && !path.is_empty()
        }
        Some(rest) => prefix.ends_with(b"/") || rest.is_empty() || rest.starts_with(b"/"),
    }
}

/// The path of a request target: query and fragment cut, absolute-form reduced to its path.
fn path_part(target: &[u8]) -> Option<&[u8]> {
    let end = target
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(target.len());
    let mut path = &target[..end];
    let lower_starts =
        |p: &[u8], s: &[u8]| p.len() >= s.len() && p[..s.len()].eq_ignore_ascii_case(s);
    for scheme in [&b"http://"[..], b"https://"] {
        if lower_starts(path, scheme) {
            let rest = &path[scheme.len()..];
            path = match rest.iter().position(|&b| b == b'/') {
                Some(i) => &rest[i..],
                None => b"/",
            };
            break;
        }
    }
    path.starts_with(b"/").then_some(path)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Decode {
    /// Decode escapes of unreserved characters; uppercase the hex of the others.
    Unreserved,
    /// Decode every valid escape.
    All,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes escapes in place; returns the new length. The write index never passes the read
/// index, so one buffer serves both.
fn decode_in_place(buf: &mut [u8], mode: Decode) -> usize {
    let (mut r, mut w) = (0, 0);
    while r < buf.len() {
        let b = buf[r];
        let escape = match (b, buf.get(r + 1), buf.get(r + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match escape {
            Some(c) if mode == Decode::All || unreserved(c) => {
                buf[w] = c;
                w += 1;
                r += 3;
            }
            Some(_) => {
                buf[w] = b'%';
                buf[w + 1] = buf[r + 1].to_ascii_uppercase();
                buf[w + 2] = buf[r + 2].to_ascii_uppercase();
                w += 3;
                r += 3;
            }
            None => {
                buf[w] = b;
                w += 1;
                r += 1;
            }
        }
    }
    w
}

/// Removes dot-segments and empty segments of a `/`-rooted path in place (dropping `;params`
/// from each segment first when `strip_params`); returns the new length. A path that named a
/// directory (trailing `/`, `.` or `..`) keeps its trailing slash.
fn segments_in_place(buf: &mut [u8], strip_params: bool) -> usize {
    let len = buf.len();
    let mut w = 0;
    let mut r = 0;
    let mut dir = true;
    // Invariant: w <= r, so a segment is always copied to or below where it was read.
    while r < len {
        if buf[r] == b'/' {
            r += 1;
            dir = true;
            continue;
        }
        let start = r;
        let end = buf[start..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(len, |i| start + i);
        r = end;
        let mut seg_end = end;
        if strip_params {
            if let Some(i) = buf[start..end].iter().position(|&b| b == b';') {
                seg_end = start + i;
            }
        }
        match &buf[start..seg_end] {
            b"" | b"." => dir = true,
            b".." => {
                w = buf[..w].iter().rposition(|&b| b == b'/').unwrap_or(0);
                dir = true;
            }
            _ => {
                buf[w] = b'/';
                buf.copy_within(start..seg_end, w + 1);
                w += 1 + seg_end - start;
                dir = false;
            }
        }
    }
    if dir || w == 0 {
        buf[w] = b'/';
        w += 1;
    }
    w
}

#[cfg(test)]
#[path = "path_tests.rs"]
mod tests;
