//! Whether a response may be stored (RFC 9111 §3, §3.5) and what is removed before it is
//! (§3.1).

use http::header::{
    AUTHORIZATION, CONNECTION, DATE, ETAG, EXPIRES, LAST_MODIFIED, PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION, SET_COOKIE, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderName, Method, StatusCode};

use super::dates::header_date;
use super::directives::split_list;
use super::freshness::heuristically_cacheable;
use super::{Delta, Directives, NotStorable, RequestDirectives, ResponseDirectives, Vary, vary};

/// Fields never stored (§3.1): the connection-specific ones (RFC 9110 §7.6.1, with `Trailer`,
/// since no trailers are stored) and those specific to the proxy the cache forwards through.
const NEVER_STORED: [HeaderName; 10] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    TE,
    TRANSFER_ENCODING,
    UPGRADE,
    TRAILER,
    PROXY_AUTHENTICATE,
    HeaderName::from_static("proxy-authentication-info"),
    PROXY_AUTHORIZATION,
];

/// Whether this cache understands a final status code's caching semantics, for
/// `must-understand` (§5.2.2.3): the codes RFC 9110 defines, except 206 (no partial storage
/// here), 304 (an update, never stored) and the unused 305, 306 and 418.
pub fn understood_status(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200..=205 | 300..=303 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505
    )
}

/// Whether a shared cache may store this response to this request (RFC 9111 §3, §3.5, §4.2.2),
/// given the cache's `heuristic_fraction` (0 disables heuristic freshness).
///
/// Checked in this order, the first failure being the reason: GET only; a final status other
/// than 206 and 304; `no-store` in the request, or in the response unless `must-understand`
/// is present with a status this cache understands (§5.2.2.3, which otherwise refuses it);
/// unqualified `private`; `Authorization` (§3.5); `Vary: *` (never matches, §4.1); `Set-Cookie`
/// without explicit freshness or `public`, unless a qualified `no-cache`/`private` names it (our
/// shared-cache rule, see the module doc);
/// and freshness: the response must carry `public`, `max-age`, `s-maxage`, `Expires` (ignored
/// under `CDN-Cache-Control`) or a heuristically cacheable status (§3), and must be of some use
/// (a lifetime that may be positive, a validator, or `stale-while-revalidate`/`stale-if-error`),
/// else [`NotStorable::NoFreshness`].
pub fn storable(
    method: &Method,
    req: &HeaderMap,
    req_dirs: &RequestDirectives,
    status: StatusCode,
    resp: &HeaderMap,
    resp_dirs: &ResponseDirectives,
    heuristic_fraction: f64,
) -> Result<(), NotStorable> {
    let d = &resp_dirs.dirs;
    if method != Method::GET {
        return Err(NotStorable::Method);
    }
    let code = status.as_u16();
    if status.is_informational() || code == 206 || code == 304 {
        return Err(NotStorable::Status);
    }
    if req_dirs.dirs.no_store {
        return Err(NotStorable::NoStore);
    }
    if d.must_understand {
        if !understood_status(status) {
            return Err(NotStorable::MustUnderstand);
        }
    } else if d.no_store {
        return Err(NotStorable::NoStore);
    }
    if d.private {
        return Err(NotStorable::Private);
    }
    if req.contains_key(AUTHORIZATION) && !(d.public || d.s_maxage.is_some() || d.must_revalidate) {
        return Err(NotStorable::Authorization);
    }
    if vary(resp) == Vary::Star {
        return Err(NotStorable::VaryStar);
    }
    let expires = !resp_dirs.targeted && resp.contains_key(EXPIRES);
    let explicit = d.max_age.is_some() || d.s_maxage.is_some() || expires;
    if resp.contains_key(SET_COOKIE) && !strips(d, &SET_COOKIE) && !(explicit || d.public) {
        return Err(NotStorable::SetCookie);
    }
    let heuristic_allowed = heuristically_cacheable(status) || d.public;
    if !explicit && !heuristic_allowed {
        return Err(NotStorable::NoFreshness);
    }
    let may_be_fresh = if explicit {
        explicit_may_be_fresh(resp, d, expires)
    } else {
        heuristic_fraction > 0.0 && heuristic_may_be_fresh(resp)
    };
    let has_validator = resp.contains_key(ETAG) || resp.contains_key(LAST_MODIFIED);
    let positive = |x: Option<Delta>| matches!(x, Some(Delta::Seconds(n)) if n > 0);
    let stale_use = positive(d.stale_while_revalidate) || positive(d.stale_if_error);
    if may_be_fresh || has_validator || stale_use {
        Ok(())
    } else {
        Err(NotStorable::NoFreshness)
    }
}

/// Whether a qualified `no-cache`/`private` names `name` (so it is stripped before storage).
fn strips(d: &Directives, name: &HeaderName) -> bool {
    d.no_cache_fields.contains(name) || d.private_fields.contains(name)
}

/// The explicit lifetime may be positive. Without a clock, an `Expires` without `Date` is given
/// the benefit of the doubt; freshness is computed properly when the response is used.
fn explicit_may_be_fresh(resp: &HeaderMap, d: &Directives, expires: bool) -> bool {
    if let Some(lifetime) = d.s_maxage.or(d.max_age) {
        return lifetime.duration() > std::time::Duration::ZERO;
    }
    if !expires {
        return false;
    }
    match (header_date(resp, &EXPIRES), header_date(resp, &DATE)) {
        (None, _) => false,
        (Some(expires), Some(date)) => expires > date,
        (Some(_), None) => true,
    }
}

fn heuristic_may_be_fresh(resp: &HeaderMap) -> bool {
    match (header_date(resp, &LAST_MODIFIED), header_date(resp, &DATE)) {
        (None, _) => false,
        (Some(lm), Some(date)) => date > lm,
        (Some(_), None) => true,
    }
}

/// The headers removed from a response before it is stored (hop-by-hop, and the fields named by
/// qualified `no-cache`/`private`).
///
/// Precisely (§3.1): `Connection` and every field it names, the other connection-specific
/// fields, `Proxy-Authenticate`, `Proxy-Authentication-Info`, `Proxy-Authorization`, and the
/// fields named by a qualified `no-cache` or `private` (`Set-Cookie` among them when named).
pub fn strip_for_storage(resp: &mut HeaderMap, resp_dirs: &ResponseDirectives) {
    let named = connection_named(resp);
    for name in named
        .iter()
        .chain(NEVER_STORED.iter())
        .chain(resp_dirs.dirs.no_cache_fields.iter())
        .chain(resp_dirs.dirs.private_fields.iter())
    {
        resp.remove(name);
    }
}

/// The field names listed in `Connection` (RFC 9110 §7.6.1).
pub(super) fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| split_list(v.as_bytes()))
        .filter_map(|n| HeaderName::from_bytes(n).ok())
        .collect()
}

/// Fields that are never stored, for [`super::freshen`].
pub(super) fn never_stored(name: &HeaderName) -> bool {
    NEVER_STORED.contains(name)
}
