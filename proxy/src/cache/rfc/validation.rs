//! Validation: the conditional requests this cache sends (RFC 9111 §4.3.1), the 304s it
//! receives (§4.3.3, §4.3.4, §3.2), and the conditional requests it answers itself (§4.3.2,
//! RFC 9110 §13.1).

use http::header::{
    CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_LOCATION, CONTENT_RANGE, DATE, ETAG,
    EXPIRES, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE,
    LAST_MODIFIED, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::dates::{header_date, http_date};
use super::directives::trim;
use super::response_directives;
use super::storage::{connection_named, never_stored};

/// An entity-tag (RFC 9110 §8.8.3), leniently: `opaque` is what lies between the quotes, or the
/// whole (trimmed) value when it is not quoted, so that an unquoted tag at least equals itself.
#[derive(Debug, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    opaque: &'a [u8],
    /// The value has the syntax of RFC 9110 §8.8.3.
    valid: bool,
}

fn entity_tag(raw: &[u8]) -> EntityTag<'_> {
    let raw = trim(raw);
    let (weak, rest) = match raw.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let quoted = rest
        .strip_prefix(b"\"")
        .and_then(|r| r.strip_suffix(b"\""))
        .filter(|inner| inner.iter().all(|&c| c == 0x21 || c >= 0x23 && c != 0x7f));
    match quoted {
        Some(opaque) => EntityTag {
            weak,
            opaque,
            valid: true,
        },
        None => EntityTag {
            weak: false,
            opaque: raw,
            valid: false,
        },
    }
}

/// Weak comparison (RFC 9110 §8.8.3.2): the opaque tags are equal (so an unquoted tag equals
/// its quoted form, a leniency towards broken origins and clients).
fn weak_eq(a: &EntityTag<'_>, b: &EntityTag<'_>) -> bool {
    a.opaque == b.opaque
}

/// Strong comparison: neither is weak, and the opaque tags are equal.
fn strong_eq(a: &EntityTag<'_>, b: &EntityTag<'_>) -> bool {
    !a.weak && !b.weak && weak_eq(a, b)
}

/// The members of an `If-None-Match` list: `*` or entity-tags. Commas inside a quoted tag do not
/// split (`etagc` allows them).
fn etag_list(value: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < value.len() {
        let start = i;
        let mut quoted = false;
        while i < value.len() && (quoted || value[i] != b',') {
            if value[i] == b'"' {
                quoted = !quoted;
            }
            i += 1;
        }
        let member = trim(&value[start..i]);
        if !member.is_empty() {
            out.push(member);
        }
        i += 1;
    }
    out
}

/// The conditional headers for validating a stored response with the origin (RFC 9111 §4.3.1):
/// `If-None-Match` from its `ETag`, `If-Modified-Since` from its `Last-Modified`. Inserted into
/// `out`, replacing any the client sent. Returns false when the stored response has no validator.
///
/// The client's `If-None-Match`/`If-Modified-Since` are always removed (they describe the
/// client's cache, not ours: a 304 to them could not freshen the stored response). An unquoted
/// `ETag` made only of `etagc` is sent quoted; any other malformed `ETag`, and a `Last-Modified`
/// that is not a valid date, are not sent.
pub fn add_validators(stored: &HeaderMap, out: &mut HeaderMap) -> bool {
    out.remove(IF_NONE_MATCH);
    out.remove(IF_MODIFIED_SINCE);
    let mut any = false;
    if let Some(etag) = stored.get(ETAG) {
        let tag = entity_tag(etag.as_bytes());
        let value = if tag.valid {
            Some(etag.clone())
        } else if !tag.opaque.is_empty()
            && tag
                .opaque
                .iter()
                .all(|&c| c == 0x21 || (0x23..0x7f).contains(&c) && c != b',')
        {
            let mut quoted = Vec::with_capacity(tag.opaque.len() + 2);
            quoted.push(b'"');
            quoted.extend_from_slice(tag.opaque);
            quoted.push(b'"');
            HeaderValue::from_bytes(&quoted).ok()
        } else {
            None
        };
        if let Some(value) = value {
            out.insert(IF_NONE_MATCH, value);
            any = true;
        }
    }
    if let Some(last_modified) = stored.get(LAST_MODIFIED) {
        if http_date(last_modified).is_some() {
            out.insert(IF_MODIFIED_SINCE, last_modified.clone());
            any = true;
        }
    }
    any
}

/// Whether a 304 from the origin refers to the stored response (RFC 9111 §4.3.4: strong ETag
/// match; else Last-Modified match; else the stored response has no validator at all).
///
/// A strong `ETag` in the 304 must equal the stored one strongly; a weak one, weakly. Without
/// `ETag`, a `Last-Modified` must be the same date as the stored one. A 304 with no validator
/// selects the stored response only when that has none either (the third bullet of §4.3.4).
pub fn validates(stored: &HeaderMap, not_modified: &HeaderMap) -> bool {
    if let Some(new) = not_modified.get(ETAG) {
        let Some(old) = stored.get(ETAG) else {
            return false;
        };
        let (new, old) = (entity_tag(new.as_bytes()), entity_tag(old.as_bytes()));
        return if new.weak {
            weak_eq(&new, &old)
        } else {
            strong_eq(&new, &old)
        };
    }
    if not_modified.contains_key(LAST_MODIFIED) {
        return match (
            header_date(not_modified, &LAST_MODIFIED),
            header_date(stored, &LAST_MODIFIED),
        ) {
            (Some(new), Some(old)) => new == old,
            _ => false,
        };
    }
    !stored.contains_key(ETAG) && !stored.contains_key(LAST_MODIFIED)
}

/// Freshens stored headers from a 304 or a HEAD response (RFC 9111 §3.2, §4.3.4, §4.3.5):
/// every field of `update` replaces the stored one, except `Content-Length` and the fields
/// §3.2 excepts.
///
/// Not taken from `update`: `Content-Length`, `Content-Range` and `Content-Encoding` (they
/// describe the stored body, which does not change), the fields never stored (§3.1: hop-by-hop,
/// those `Connection` names, proxy authentication). Fields
/// the stored response has and `update` lacks are kept. Afterwards the fields named by a
/// qualified `no-cache`/`private` of the freshened response are removed, as on storage. The
/// caller recomputes [`super::Timing`] from `update` (its `Date`, `Age`) and the freshness from the
/// result.
pub fn freshen(stored: &mut HeaderMap, update: &HeaderMap) {
    let connection = connection_named(update);
    for name in update.keys() {
        if *name == CONTENT_LENGTH
            || *name == CONTENT_RANGE
            || *name == CONTENT_ENCODING
            || never_stored(name)
            || connection.contains(name)
        {
            continue;
        }
        stored.remove(name);
        for value in update.get_all(name) {
            stored.append(name.clone(), value.clone());
        }
    }
    let dirs = response_directives(stored).dirs;
    for name in dirs
        .no_cache_fields
        .iter()
        .chain(dirs.private_fields.iter())
    {
        stored.remove(name);
    }
}

/// Whether a client's conditional GET/HEAD is answered with 304 from this stored response
/// (RFC 9110 §13.1.2 `If-None-Match` with weak comparison; else §13.1.3 `If-Modified-Since`
/// against `Last-Modified`, ignored when invalid). `If-Match`/`If-Unmodified-Since`/`If-Range`
/// requests are not answered from cache: false.
///
/// `If-None-Match: *` matches (a stored response exists). When `If-None-Match` is present,
/// `If-Modified-Since` is not looked at (§13.2.2), and a stored response without `ETag` does not
/// match. Without `Last-Modified`, `If-Modified-Since` is compared with the stored `Date`
/// (RFC 9111 §4.3.2); with neither, false.
pub fn not_modified(method: &Method, req: &HeaderMap, stored: &HeaderMap) -> bool {
    if *method != Method::GET && *method != Method::HEAD {
        return false;
    }
    if req.contains_key(IF_MATCH)
        || req.contains_key(IF_UNMODIFIED_SINCE)
        || req.contains_key(IF_RANGE)
    {
        return false;
    }
    if req.contains_key(IF_NONE_MATCH) {
        let stored_tag = stored.get(ETAG).map(|v| entity_tag(v.as_bytes()));
        return req
            .get_all(IF_NONE_MATCH)
            .iter()
            .flat_map(|v| etag_list(v.as_bytes()))
            .any(|member| {
                member == b"*"
                    || stored_tag
                        .as_ref()
                        .is_some_and(|tag| weak_eq(&entity_tag(member), tag))
            });
    }
    let Some(since) = header_date(req, &IF_MODIFIED_SINCE) else {
        return false;
    };
    header_date(stored, &LAST_MODIFIED)
        .or_else(|| header_date(stored, &DATE))
        .is_some_and(|modified| modified <= since)
}

/// The fields a 304 made from a stored response carries.
const NOT_MODIFIED_FIELDS: [HeaderName; 7] = [
    CACHE_CONTROL,
    CONTENT_LOCATION,
    DATE,
    ETAG,
    EXPIRES,
    VARY,
    LAST_MODIFIED,
];

/// The headers of a 304 made from a stored response (RFC 9110 §15.4.5): those the 200 would
/// have had among `Cache-Control`, `Content-Location`, `Date`, `ETag`, `Expires`, `Vary`, and
/// `Last-Modified`. (The caller adds `Age`.)
pub fn not_modified_headers(stored: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in NOT_MODIFIED_FIELDS {
        for value in stored.get_all(&name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}
