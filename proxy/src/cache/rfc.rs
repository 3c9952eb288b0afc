//! RFC 9111 (HTTP caching) as a shared cache, RFC 9213 (`CDN-Cache-Control`) and the
//! conditional-request rules of RFC 9110 §13 that a cache applies: pure functions over header
//! maps and times, no I/O, no clock of their own. The store and the request path (`cache.rs`)
//! decide *when* to ask; this module decides *what the RFCs say*.
//!
//! Layout: this file holds the contract (types, and the doc of every decision the RFCs leave
//! open); the functions live in submodules and are re-exported here:
//! `directives` (Cache-Control parsing, and `sf`, the Structured Field parser `CDN-Cache-Control`
//! needs), `dates` (HTTP-date), `storage` (what may be stored, what is stripped), `freshness`
//! (age, lifetime, reuse, stale), `vary`, `validation` (conditional requests both ways, 304
//! updates) and `invalidation`.
//!
//! Decisions where the RFCs leave a choice (each cites its section where it is made):
//! - a directive given twice in `Cache-Control`: the first occurrence wins (§4.2.1); in
//!   `CDN-Cache-Control` the last (a Structured Field dictionary, RFC 8941 §4.2.2);
//! - heuristic freshness is capped at [`HEURISTIC_MAX`] (one day) whatever the fraction;
//! - `Set-Cookie` does not inhibit storage (RFC 9111 §7.3: the origin controls it with
//!   `Cache-Control`), but a response carrying it is stored only with explicit freshness
//!   (`max-age`, `s-maxage`, `Expires`) or `public`, never on heuristic freshness alone; a
//!   qualified `no-cache`/`private` naming it strips it before storage;
//! - `must-revalidate`, `proxy-revalidate` and `s-maxage` forbid every stale use.

mod dates;
mod directives;
mod freshness;
mod invalidation;
mod sf;
mod storage;
mod validation;
mod vary;

#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime};

use http::{HeaderName, Method};

pub use dates::http_date;
pub use directives::{CDN_CACHE_CONTROL, request_directives, response_directives};
pub use freshness::{
    HEURISTIC_MAX, freshness_lifetime, heuristically_cacheable, reuse, stale_if_error,
};
pub use invalidation::invalidations;
pub use storage::{storable, strip_for_storage, understood_status};
pub use validation::{add_validators, freshen, not_modified, not_modified_headers, validates};
pub use vary::{secondary_key, vary};

/// One parsed `Cache-Control` (or `CDN-Cache-Control`) field, RFC 9111 §5.2. Directive names are
/// case-insensitive; unknown directives are ignored; a directive whose argument is invalid is
/// handled as the RFC says for that directive (e.g. an invalid `max-age` makes a response stale).
/// A directive given twice keeps its first value (§4.2.1 allows "first occurrence" or "stale").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    pub max_age: Option<Delta>,
    pub s_maxage: Option<Delta>,
    pub no_store: bool,
    /// Unqualified `no-cache` (the whole response must be validated before each use). The
    /// qualified form `no-cache="a, b"` only fills `no_cache_fields` (§5.2.2.4: the rest of the
    /// response may be reused); a qualified form naming no valid field counts as unqualified.
    pub no_cache: bool,
    /// Field names of a qualified `no-cache="a, b"` (empty when unqualified or absent).
    pub no_cache_fields: Vec<HeaderName>,
    /// Unqualified `private` (a shared cache must not store). As for `no_cache`, the qualified
    /// form only fills `private_fields`, and one naming no valid field counts as unqualified.
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

impl Delta {
    /// The largest value a delta-seconds takes here (§1.2.2: 2^31, "the greatest integer").
    pub const MAX: u64 = 1 << 31;

    /// Parses `1*DIGIT` (leading zeros allowed), saturating at [`Delta::MAX`].
    pub fn parse(digits: &[u8]) -> Delta {
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Delta::Invalid;
        }
        let mut n: u64 = 0;
        for &d in digits {
            n = n * 10 + u64::from(d - b'0');
            if n >= Delta::MAX {
                return Delta::Seconds(Delta::MAX);
            }
        }
        Delta::Seconds(n)
    }

    /// The duration, zero for `Invalid` (an invalid lifetime means stale, RFC 9111 §4.2.1).
    pub fn duration(self) -> Duration {
        match self {
            Delta::Seconds(s) => Duration::from_secs(s),
            Delta::Invalid => Duration::ZERO,
        }
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

/// Why a response may not be stored (RFC 9111 §3), for `Cache-Status` `detail=` and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStorable {
    /// Only GET responses are stored (a HEAD response may freshen a stored GET through
    /// [`freshen`], §4.3.5, but is never stored itself).
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
    /// `Set-Cookie` on a response without explicit freshness or `public` (see [`storable`]).
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

/// The timing facts of a stored response (RFC 9111 §4.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// The cache's clock when it sent the request that got this response.
    pub request_time: SystemTime,
    /// The cache's clock when the response arrived.
    pub response_time: SystemTime,
    pub corrected_initial_age: Duration,
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

/// Whether `method` is unsafe (RFC 9110 §9.2.1), i.e. invalidates on a non-error response.
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}
