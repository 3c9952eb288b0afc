//! Canonical host: the single normalisation of the authority a request names.
//!
//! Routing, policy, the cache key and the logs all see the host through [`canonical_host`], so a
//! suspension can never be dodged by spelling the host differently (`SHOP.example.`,
//! `shop.example:443`) and a cache entry can never be reached under a second name.
//!
//! Accepted: an RFC 3986 `reg-name` restricted to DNS-safe characters (ASCII letters, digits, `-`,
//! `_`, dots between non-empty labels), or a bracketed IPv6 literal, optionally followed by
//! `:port`. The result is lowercased, has the port removed and at most one trailing dot stripped.
//! Everything else — userinfo, percent-escapes, non-ASCII, whitespace, control bytes, `/`, `\`,
//! empty labels — is refused, because each of those is a known way to make two components disagree
//! about which host a request is for.

use std::borrow::Cow;

/// Longest host name DNS can carry (RFC 1035 §2.3.4, without the root dot).
const MAX_HOST_LEN: usize = 253;
/// Longest DNS label.
const MAX_LABEL_LEN: usize = 63;

/// Why an authority was refused. Every variant maps to `400 Bad Request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("host is empty")]
    Empty,
    #[error("host carries userinfo ('@')")]
    Userinfo,
    #[error("host contains a percent-escape")]
    PercentEscape,
    #[error("host contains a non-ASCII byte")]
    NonAscii,
    #[error("host contains whitespace or a control byte")]
    Control,
    #[error("host contains a path separator ('/' or '\\')")]
    PathSeparator,
    #[error("host has an empty label")]
    EmptyLabel,
    #[error("host label longer than 63 bytes")]
    LabelTooLong,
    #[error("host longer than 253 bytes")]
    TooLong,
    #[error("host contains a character not allowed in a host name")]
    BadCharacter,
    #[error("port is not a number from 0 to 65535")]
    BadPort,
    #[error("malformed IPv6 literal")]
    BadIpv6,
}

/// Canonicalises the authority of a request (`Host`, `:authority` or an absolute-form target's
/// authority): lowercase, no port, at most one trailing dot removed.
///
/// Borrows from `raw` when it is already lowercase, so the common case does not allocate.
pub fn canonical_host(raw: &str) -> Result<Cow<'_, str>, HostError> {
    let host = strip_authority(raw)?;
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Ok(Cow::Owned(host.to_ascii_lowercase()))
    } else {
        Ok(Cow::Borrowed(host))
    }
}

/// Room for the longest host [`canonical_host_in`] can return: a 253-byte name, or a bracketed
/// IPv6 literal (which is shorter).
pub(crate) const HOST_BUF: usize = MAX_HOST_LEN + 3;

/// [`canonical_host`] without allocating: a host that needs lowercasing is lowered into `buf`.
/// The policy hot path uses this so that a request never allocates to be looked up.
pub(crate) fn canonical_host_in<'a>(
    raw: &'a str,
    buf: &'a mut [u8; HOST_BUF],
) -> Result<&'a str, HostError> {
    let host = strip_authority(raw)?;
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Ok(host);
    }
    let out = buf.get_mut(..host.len()).ok_or(HostError::TooLong)?;
    out.copy_from_slice(host.as_bytes());
    out.make_ascii_lowercase();
    // Only ASCII reaches here (strip_authority refuses every other byte).
    std::str::from_utf8(out).map_err(|_| HostError::NonAscii)
}

/// Checks an authority and returns its host part: no port, at most one trailing dot removed,
/// case untouched.
fn strip_authority(raw: &str) -> Result<&str, HostError> {
    let bytes = raw.as_bytes();
    if bytes.is_empty() {
        return Err(HostError::Empty);
    }
    // Refuse the characters that make parsers disagree before anything else looks at the text,
    // so the error names the real problem rather than a downstream symptom.
    for &b in bytes {
        match b {
            b'@' => return Err(HostError::Userinfo),
            b'%' => return Err(HostError::PercentEscape),
            b'/' | b'\\' => return Err(HostError::PathSeparator),
            0x80..=0xff => return Err(HostError::NonAscii),
            0x00..=0x20 | 0x7f => return Err(HostError::Control),
            _ => {}
        }
    }
    if bytes[0] == b'[' {
        split_ipv6(raw)
    } else {
        let host = match raw.rfind(':') {
            Some(i) => {
                check_port(&raw[i + 1..])?;
                &raw[..i]
            }
            None => raw,
        };
        check_reg_name(host)
    }
}

/// `[v6]` or `[v6]:port` → `[v6]`.
fn split_ipv6(raw: &str) -> Result<&str, HostError> {
    let close = raw.find(']').ok_or(HostError::BadIpv6)?;
    let (literal, rest) = raw.split_at(close + 1);
    match rest.strip_prefix(':') {
        Some(port) => check_port(port)?,
        None if rest.is_empty() => {}
        None => return Err(HostError::BadIpv6),
    }
    let inner = &literal[1..literal.len() - 1];
    let colons = inner.bytes().filter(|&b| b == b':').count();
    let valid = colons >= 2
        && inner
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    if valid {
        Ok(literal)
    } else {
        Err(HostError::BadIpv6)
    }
}

fn check_port(port: &str) -> Result<(), HostError> {
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::BadPort);
    }
    match port.parse::<u32>() {
        Ok(n) if n <= 65535 => Ok(()),
        _ => Err(HostError::BadPort),
    }
}

/// Validates a reg-name and strips one trailing dot.
pub(crate) fn check_reg_name(host: &str) -> Result<&str, HostError> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Err(HostError::Empty);
    }
    if host.len() > MAX_HOST_LEN {
        return Err(HostError::TooLong);
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err(HostError::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(HostError::LabelTooLong);
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(HostError::BadCharacter);
        }
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(raw: &str) -> String {
        match canonical_host(raw) {
            Ok(h) => h.into_owned(),
            Err(e) => panic!("{raw:?} refused: {e}"),
        }
    }

    #[test]
    fn normalises() {
        assert_eq!(ok("shop.example"), "shop.example");
        assert_eq!(ok("SHOP.Example"), "shop.example");
        assert_eq!(ok("shop.example:8080"), "shop.example");
        assert_eq!(ok("shop.example."), "shop.example");
        assert_eq!(ok("Shop.Example.:443"), "shop.example");
        assert_eq!(ok("127.0.0.1:80"), "127.0.0.1");
        assert_eq!(ok("[::1]:8080"), "[::1]");
        assert_eq!(ok("[2001:DB8::1]"), "[2001:db8::1]");
        assert_eq!(ok("localhost"), "localhost");
        assert_eq!(ok("_dmarc.example"), "_dmarc.example");
    }

    #[test]
    fn borrows_when_already_canonical() {
        assert!(matches!(
            canonical_host("a.example:1"),
            Ok(Cow::Borrowed("a.example"))
        ));
        assert!(matches!(canonical_host("A.example"), Ok(Cow::Owned(_))));
    }

    #[test]
    fn refuses_each_malformed_shape() {
        let cases: &[(&str, HostError)] = &[
            ("", HostError::Empty),
            (".", HostError::Empty),
            (":80", HostError::Empty),
            ("user@shop.example", HostError::Userinfo),
            ("shop%2eexample", HostError::PercentEscape),
            ("shöp.example", HostError::NonAscii),
            ("shop .example", HostError::Control),
            ("shop.example\t", HostError::Control),
            ("shop\0.example", HostError::Control),
            ("shop.example/x", HostError::PathSeparator),
            ("shop.example\\x", HostError::PathSeparator),
            ("shop..example", HostError::EmptyLabel),
            (".shop.example", HostError::EmptyLabel),
            ("shop.example..", HostError::EmptyLabel),
            ("shop.example:", HostError::BadPort),
            ("shop.example:65536", HostError::BadPort),
            ("shop.example:8o", HostError::BadPort),
            ("shop.example:80:80", HostError::BadCharacter),
            ("shop!.example", HostError::BadCharacter),
            ("[::1", HostError::BadIpv6),
            ("[::1]x", HostError::BadIpv6),
            ("[zz::1]", HostError::BadIpv6),
            ("[]", HostError::BadIpv6),
        ];
        for (raw, want) in cases {
            assert_eq!(canonical_host(raw), Err(*want), "{raw:?}");
        }
        let long_label = format!("{}.example", "a".repeat(64));
        assert_eq!(canonical_host(&long_label), Err(HostError::LabelTooLong));
        let long_host = format!("{}a", "abcdefghi.".repeat(26));
        assert_eq!(canonical_host(&long_host), Err(HostError::TooLong));
    }

    /// A deliberately naive reference: what the function must agree with on DNS-shaped input.
    fn reference(raw: &str) -> Option<String> {
        let (host, port) = match raw.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (raw, None),
        };
        if let Some(p) = port {
            if p.is_empty() || p.len() > 5 || p.parse::<u32>().ok()? > 65535 {
                return None;
            }
            if !p.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
        }
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        let labels: Vec<&str> = host.split('.').collect();
        let valid = !host.is_empty()
            && host.len() <= 253
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        valid.then_some(host)
    }

    proptest! {
        #[test]
        fn agrees_with_reference(raw in "[a-zA-Z0-9._:-]{0,40}") {
            prop_assert_eq!(canonical_host(&raw).ok().map(Cow::into_owned), reference(&raw));
        }

        #[test]
        fn idempotent(raw in "[a-zA-Z0-9.-]{1,30}(:[0-9]{1,5})?") {
            if let Ok(once) = canonical_host(&raw) {
                let twice = canonical_host(&once).map(Cow::into_owned);
                prop_assert_eq!(twice, Ok(once.into_owned()));
            }
        }

        #[test]
        fn never_panics(raw in "\\PC{0,64}") {
            let _ = canonical_host(&raw);
        }

        #[test]
        fn in_buffer_agrees(raw in "[a-zA-Z0-9._:@%\\[\\]-]{0,40}") {
            let mut buf = [0u8; HOST_BUF];
            let in_buf = canonical_host_in(&raw, &mut buf).map(str::to_owned);
            prop_assert_eq!(in_buf, canonical_host(&raw).map(Cow::into_owned));
        }
    }
}
