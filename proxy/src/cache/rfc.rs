//! RFC 9111 (HTTP caching) as a shared cache, RFC 9213 (`CDN-Cache-Control`) and the
//! conditional-request rules of RFC 9110 §13 that a cache applies: pure functions over header
//! maps and times, no I/O, no clock of their own. The store and the request path (`cache.rs`)
//! decide *when* to ask; this module decides *what the RFCs say*.
//!
//! SKELETON: the signatures below are the contract between the store/pipeline and this module.
//! Bodies are filled in by the semantics work.

#![allow(dead_code, unused_variables)]

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

/// One parsed `Cache-Control` (or `CDN-Cache-Control`) field, RFC 9111 §5.2. Directive names are
/// case-insensitive; unknown directives are ignored; a directive whose argument is invalid is
/// handled as the RFC says for that directive (e.g. an invalid `max-age` makes a response stale).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    pub max_age: Option<Delta>,
    pub s_maxage: Option<Delta>,
    pub no_store: bool,
    /// Unqualified `no-cache`, or the qualified form (see `no_cache_fields`).
    pub no_cache: bool,
    /// Field names of a qualified `no-cache="a, b"` (empty when unqualified or absent).
    pub no_cache_fields: Vec<HeaderName>,
    pub private: bool,
    /// Field names of a qualified `private="a, b"`.
    pub private_fields: Vec<HeaderName>,
    pub public: bool,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub must_understand: bool,
    pub no_transform: bool,
    pub immutable: bool,
    /// RFC 5861.
    pub stale_while_revalidate: Option<Delta>,
    /// RFC 5861.
    pub stale_if_error: Option<Delta>,
    /// Request only: `Some(None)` is `max-stale` without a value (any staleness).
    pub max_stale: Option<Option<Delta>>,
    /// Request only.
    pub min_fresh: Option<Delta>,
    /// Request only.
    pub only_if_cached: bool,
}

/// A delta-seconds argument (RFC 9111 §1.2.2): saturates at 2^31; `Invalid` when the argument
/// is not a non-negative integer (quoted-string forms as the RFC allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delta {
    Seconds(u64),
    Invalid,
}

impl Directives {
    /// Parses every line of one field (`get_all`), in order.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Directives {
        unimplemented!()
    }
}

/// The directives this cache obeys for a response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseDirectives {
    pub dirs: Directives,
    /// `CDN-Cache-Control` was present and used instead of `Cache-Control` (RFC 9213); then
    /// `Expires` and `Cache-Control` are ignored for freshness.
    pub targeted: bool,
}

/// `CDN-Cache-Control` when present (RFC 9213 §2.1), else `Cache-Control`.
pub fn response_directives(headers: &HeaderMap) -> ResponseDirectives {
    unimplemented!()
}

/// The directives of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestDirectives {
    pub dirs: Directives,
    /// `Pragma: no-cache` counts as `Cache-Control: no-cache` (only when the request has no
    /// `Cache-Control`; RFC 9111 §5.4 / RFC 7234 §5.4).
    pub pragma_no_cache: bool,
}

impl RequestDirectives {
    /// The client forbids a stored response without validation (`no-cache`, or the pragma).
    pub fn no_cache(&self) -> bool {
        self.dirs.no_cache || self.pragma_no_cache
    }
}

pub fn request_directives(headers: &HeaderMap) -> RequestDirectives {
    unimplemented!()
}

/// Why a response may not be stored (RFC 9111 §3), for `Cache-Status` `detail=` and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStorable {
    /// Only GET (and HEAD, which updates a stored GET) responses are stored.
    Method,
    /// A status this cache does not understand or store (e.g. 206, 1xx, 304 without a stored
    /// entry).
    Status,
    /// `no-store` in the request or the response.
    NoStore,
    /// `private` (unqualified) in the response.
    Private,
    /// The request carried `Authorization` and the response lacks `public`, `s-maxage` and
    /// `must-revalidate` (§3.5).
    Authorization,
    /// `Vary: *`.
    VaryStar,
    /// No explicit freshness, no heuristic allowed, and no validator worth keeping.
    NoFreshness,
    /// `Set-Cookie` on a response not explicitly shareable (see [`storable`]).
    SetCookie,
    /// `must-understand` with a status code this cache does not understand.
    MustUnderstand,
}

impl NotStorable {
    /// A short token for `Cache-Status: ...; detail=` and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            NotStorable::Method => "method",
            NotStorable::Status => "status",
            NotStorable::NoStore => "no-store",
            NotStorable::Private => "private",
            NotStorable::Authorization => "authorization",
            NotStorable::VaryStar => "vary-star",
            NotStorable::NoFreshness => "no-freshness",
            NotStorable::SetCookie => "set-cookie",
            NotStorable::MustUnderstand => "must-understand",
        }
    }
}

/// Whether a shared cache may store this response to this request (RFC 9111 §3, §3.5, §4.2.2),
/// given the cache's `heuristic_fraction` (0 disables heuristic freshness).
pub fn storable(
    method: &Method,
    req: &HeaderMap,
    req_dirs: &RequestDirectives,
    status: StatusCode,
    resp: &HeaderMap,
    resp_dirs: &ResponseDirectives,
    heuristic_fraction: f64,
) -> Result<(), NotStorable> {
    unimplemented!()
}

/// The headers removed from a response before it is stored (hop-by-hop, and the fields named by
/// qualified `no-cache`/`private`, and `Set-Cookie` when [`storable`] accepted it only without).
pub fn strip_for_storage(resp: &mut HeaderMap, resp_dirs: &ResponseDirectives) {
    unimplemented!()
}

/// The timing facts of a stored response (RFC 9111 §4.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The cache's clock when it sent the request that got this response.
    pub request_time: SystemTime,
    /// The cache's clock when the response arrived.
    pub response_time: SystemTime,
    pub corrected_initial_age: Duration,
}

impl Timing {
    /// From the response's `Date` and `Age` (§4.2.3: apparent age, corrected age value).
    pub fn new(request_time: SystemTime, response_time: SystemTime, resp: &HeaderMap) -> Timing {
        unimplemented!()
    }

    /// `current_age` at `now` (§4.2.3).
    pub fn current_age(&self, now: SystemTime) -> Duration {
        unimplemented!()
    }
}

/// The freshness lifetime (RFC 9111 §4.2.1): `s-maxage` > `max-age` > `Expires` − `Date` >
/// heuristic (§4.2.2: `heuristic_fraction` of `Date` − `Last-Modified`, only for statuses
/// heuristically cacheable or with `public`). Zero when nothing gives one; an invalid
/// `max-age`/`Expires` gives zero (stale).
pub fn freshness_lifetime(
    status: StatusCode,
    resp: &HeaderMap,
    resp_dirs: &ResponseDirectives,
    response_time: SystemTime,
    heuristic_fraction: f64,
) -> Duration {
    unimplemented!()
}

/// What a request may do with a stored response of `age` whose lifetime is `lifetime`
/// (RFC 9111 §4, §4.2.4, RFC 5861).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Serve it without contacting the origin: fresh (and fresh enough for `min-fresh`), or
    /// stale within the client's `max-stale` when the response allows stale use.
    Serve,
    /// Stale, but within `stale-while-revalidate`: serve it now, refresh in the background.
    ServeWhileRevalidate,
    /// Validate with the origin before use: stale, `no-cache` in the response, `no-cache` or
    /// `max-age` in the request, ...
    Validate,
}

pub fn reuse(
    req: &RequestDirectives,
    resp: &ResponseDirectives,
    age: Duration,
    lifetime: Duration,
) -> Reuse {
    unimplemented!()
}

/// Whether a stale stored response may be served after the origin failed (5xx or no answer)
/// under `stale-if-error` of the response or the request, `staleness` being age − lifetime.
/// Never when `must-revalidate`, `proxy-revalidate`, `s-maxage` or `no-cache` forbid it.
pub fn stale_if_error(
    req: &RequestDirectives,
    resp: &ResponseDirectives,
    staleness: Duration,
) -> bool {
    unimplemented!()
}

/// The `Vary` of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vary {
    /// Absent or empty: one variant per URL.
    None,
    /// `Vary: *`: never matches a later request.
    Star,
    /// The named request headers, lowercase, deduplicated, in order.
    Names(Vec<HeaderName>),
}

pub fn vary(resp: &HeaderMap) -> Vary {
    unimplemented!()
}

/// The request's values of the headers `names` nominates (RFC 9111 §4.1), normalised so that
/// semantically equal values compare equal: the lines of a field combined with ", ", whitespace
/// around list separators removed, case folded where the field is case-insensitive. `None` for
/// a header the request lacks (which matches only a request that lacks it too).
pub fn secondary_key(names: &[HeaderName], req: &HeaderMap) -> Vec<Option<Box<[u8]>>> {
    unimplemented!()
}

/// The conditional headers for validating a stored response with the origin (RFC 9111 §4.3.1):
/// `If-None-Match` from its `ETag`, `If-Modified-Since` from its `Last-Modified`. Inserted into
/// `out`, replacing any the client sent. Returns false when the stored response has no validator.
pub fn add_validators(stored: &HeaderMap, out: &mut HeaderMap) -> bool {
    unimplemented!()
}

/// Whether a 304 from the origin refers to the stored response (RFC 9111 §4.3.4: strong ETag
/// match; else Last-Modified match; else the stored response has no validator at all).
pub fn validates(stored: &HeaderMap, not_modified: &HeaderMap) -> bool {
    unimplemented!()
}

/// Freshens stored headers from a 304 or a HEAD response (RFC 9111 §3.2, §4.3.4, §4.3.5):
/// every field of `update` replaces the stored one, except `Content-Length` and the fields
/// §3.2 excepts.
pub fn freshen(stored: &mut HeaderMap, update: &HeaderMap) {
    unimplemented!()
}

/// Whether a client's conditional GET/HEAD is answered with 304 from this stored response
/// (RFC 9110 §13.1.2 `If-None-Match` with weak comparison; else §13.1.3 `If-Modified-Since`
/// against `Last-Modified`, ignored when invalid). `If-Match`/`If-Unmodified-Since`/`If-Range`
/// requests are not answered from cache: false.
pub fn not_modified(method: &Method, req: &HeaderMap, stored: &HeaderMap) -> bool {
    unimplemented!()
}

/// The headers of a 304 made from a stored response (RFC 9110 §15.4.5): those the 200 would
/// have had among `Cache-Control`, `Content-Location`, `Date`, `ETag`, `Expires`, `Vary`, and
/// `Last-Modified`.
pub fn not_modified_headers(stored: &HeaderMap) -> HeaderMap {
    unimplemented!()
}

/// What an unsafe request invalidates besides its own target (RFC 9111 §4.4): the targets of
/// `Location` and `Content-Location` when they have the same origin (`authority`, the canonical
/// host), as origin-form paths (`/p?q`), for a non-error response (2xx or 3xx). Relative
/// references resolve against `target`.
pub fn invalidations(
    method: &Method,
    status: StatusCode,
    authority: &str,
    target: &str,
    resp: &HeaderMap,
) -> Vec<String> {
    unimplemented!()
}

/// Whether `method` is unsafe (RFC 9110 §9.2.1), i.e. invalidates on a non-error response.
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}
