//! HTTP-date (RFC 9110 §5.6.7): IMF-fixdate and the obsolete RFC 850 and asctime forms, parsed
//! by `httpdate` after the case folding RFC 9111 §4.2 asks of caches.

use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue};

/// Parses an HTTP-date in any of the three forms RFC 9110 §5.6.7 requires recipients to accept.
/// Day, month and zone names match case-insensitively (RFC 9111 §4.2: "a cache recipient SHOULD
/// match the field value case-insensitively"). Anything else (`0`, `UTC`, two-digit years in
/// IMF form, missing comma, doubled spaces, dashes in IMF form, a weekday that does not match the
/// date, years before 1970) is invalid: `None`.
pub fn http_date(value: &HeaderValue) -> Option<SystemTime> {
    let s = value.to_str().ok()?;
    // The longest valid form (RFC 850 with "Wednesday") is 37 bytes; refuse to copy junk.
    if s.len() > 40 {
        return None;
    }
    httpdate::parse_http_date(&fold_case(s)).ok()
}

/// The first line of `name` as an HTTP-date; `None` when absent or invalid.
pub(super) fn header_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    headers.get(name).and_then(http_date)
}

/// Rewrites every run of letters as `httpdate` expects it: "GMT" in capitals, any other word
/// (day or month name) capitalised.
fn fold_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.eq_ignore_ascii_case("gmt") {
            out.push_str("GMT");
        } else {
            for (i, c) in word.chars().enumerate() {
                out.push(if i == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                });
            }
        }
        word.clear();
    };
    for c in s.chars() {
        if c.is_ascii_alphabetic() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}
