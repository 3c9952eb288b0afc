//! Age (RFC 9111 §4.2.3), freshness lifetime (§4.2.1, §4.2.2), and when a stored response may be
//! reused (§4, §4.2.4, §5.2.1, RFC 5861).

use std::time::{Duration, SystemTime};

use http::header::{AGE, DATE, EXPIRES, LAST_MODIFIED};
use http::{HeaderMap, StatusCode};

use super::dates::header_date;
use super::directives::split_list;
use super::{Delta, Directives, RequestDirectives, ResponseDirectives, Reuse, Timing};

/// The most heuristic freshness this cache gives, whatever `heuristic_fraction` says: a day.
/// §4.2.2 leaves the heuristic to the cache; a cap keeps a years-old `Last-Modified` from
/// pinning an object for weeks.
pub const HEURISTIC_MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// Statuses "heuristically cacheable" by default (RFC 9110 §15.1).
pub fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

impl Timing {
    /// From the response's `Date` and `Age` (§4.2.3: apparent age, corrected age value).
    ///
    /// A missing or invalid `Date` gives an apparent age of zero (the response is dated when it
    /// arrived, RFC 9110 §6.6.1). `Age` is the largest valid delta-seconds among its lines and
    /// list elements (a duplicated or listed `Age` can only make the response older, never
    /// younger); non-numeric, negative or fractional elements are ignored; none valid is zero.
    pub fn new(request_time: SystemTime, response_time: SystemTime, resp: &HeaderMap) -> Timing {
        let apparent_age = header_date(resp, &DATE)
            .and_then(|date| response_time.duration_since(date).ok())
            .unwrap_or(Duration::ZERO);
        let response_delay = response_time
            .duration_since(request_time)
            .unwrap_or(Duration::ZERO);
        let corrected_age_value = age_value(resp).saturating_add(response_delay);
        Timing {
            request_time,
            response_time,
            corrected_initial_age: apparent_age.max(corrected_age_value),
        }
    }

    /// `current_age` at `now` (§4.2.3). A clock that went backwards adds no resident time.
    pub fn current_age(&self, now: SystemTime) -> Duration {
        let resident_time = now
            .duration_since(self.response_time)
            .unwrap_or(Duration::ZERO);
        self.corrected_initial_age.saturating_add(resident_time)
    }
}

fn age_value(resp: &HeaderMap) -> Duration {
    resp.get_all(AGE)
        .iter()
        .flat_map(|v| split_list(v.as_bytes()))
        .filter_map(|e| match Delta::parse(e) {
            Delta::Seconds(s) => Some(s),
            Delta::Invalid => None,
        })
        .max()
        .map_or(Duration::ZERO, Duration::from_secs)
}

/// The freshness lifetime (RFC 9111 §4.2.1): `s-maxage` > `max-age` > `Expires` − `Date` >
/// heuristic (§4.2.2: `heuristic_fraction` of `Date` − `Last-Modified`, only for statuses
/// heuristically cacheable or with `public`). Zero when nothing gives one; an invalid
/// `max-age`/`Expires` gives zero (stale).
///
/// The first of these present decides, even when invalid: `s-maxage=-1, max-age=60` is stale.
/// A missing or invalid `Date` is replaced by `response_time` (§4.2.1). With a targeted field
/// (`CDN-Cache-Control`) `Expires` is not consulted (RFC 9213 §2.2). The heuristic is capped at
/// [`HEURISTIC_MAX`] and is zero when `Last-Modified` is missing, invalid or after `Date`.
pub fn freshness_lifetime(
    status: StatusCode,
    resp: &HeaderMap,
    resp_dirs: &ResponseDirectives,
    response_time: SystemTime,
    heuristic_fraction: f64,
) -> Duration {
    let d = &resp_dirs.dirs;
    if let Some(s_maxage) = d.s_maxage {
        return s_maxage.duration();
    }
    if let Some(max_age) = d.max_age {
        return max_age.duration();
    }
    if !resp_dirs.targeted && resp.contains_key(EXPIRES) {
        // §5.3: an invalid Expires, "especially the value 0", is in the past.
        let Some(expires) = header_date(resp, &EXPIRES) else {
            return Duration::ZERO;
        };
        let date = header_date(resp, &DATE).unwrap_or(response_time);
        return expires.duration_since(date).unwrap_or(Duration::ZERO);
    }
    heuristic(status, resp, d, response_time, heuristic_fraction)
}

fn heuristic(
    status: StatusCode,
    resp: &HeaderMap,
    d: &Directives,
    response_time: SystemTime,
    fraction: f64,
) -> Duration {
    if !(fraction.is_finite() && fraction > 0.0) || !(heuristically_cacheable(status) || d.public) {
        return Duration::ZERO;
    }
    let Some(last_modified) = header_date(resp, &LAST_MODIFIED) else {
        return Duration::ZERO;
    };
    let date = header_date(resp, &DATE).unwrap_or(response_time);
    let Ok(since) = date.duration_since(last_modified) else {
        return Duration::ZERO;
    };
    let secs = (since.as_secs_f64() * fraction).min(HEURISTIC_MAX.as_secs_f64());
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO)
}

/// The response forbids any stale use by a shared cache: `must-revalidate` (§5.2.2.2),
/// `proxy-revalidate` (§5.2.2.8), and `s-maxage`, which implies it (§5.2.2.10).
fn forbids_stale(d: &Directives) -> bool {
    d.must_revalidate || d.proxy_revalidate || d.s_maxage.is_some()
}

/// What a request may do with a stored response of `age` whose lifetime is `lifetime`
/// (RFC 9111 §4, §4.2.4, RFC 5861).
///
/// In order: unqualified `no-cache` in the response (§5.2.2.4) or the request (§5.2.1.4, or the
/// pragma) → `Validate`. Request `max-age=N` (§5.2.1.1) → `Validate` when `age > N` (an invalid
/// N counts as 0). Fresh means `lifetime > age` (§4.2); a fresh response is served unless the
/// request's `min-fresh=N` (§5.2.1.3) wants `lifetime − age ≥ N`. A stale response is
/// validated when the response forbids stale use, or the request has `min-fresh`; it is served
/// within the request's `max-stale` (§5.2.1.2: no value = any staleness; an invalid value
/// allows nothing); else within the response's `stale-while-revalidate` it is served while
/// revalidating, unless the request bounded age or freshness itself (`max-age`, `min-fresh`).
pub fn reuse(
    req: &RequestDirectives,
    resp: &ResponseDirectives,
    age: Duration,
    lifetime: Duration,
) -> Reuse {
    let (q, s) = (&req.dirs, &resp.dirs);
    if s.no_cache || req.no_cache() {
        return Reuse::Validate;
    }
    if let Some(max_age) = q.max_age {
        if age > max_age.duration() {
            return Reuse::Validate;
        }
    }
    if lifetime > age {
        return match q.min_fresh {
            Some(min_fresh) if lifetime - age < min_fresh.duration() => Reuse::Validate,
            _ => Reuse::Serve,
        };
    }
    if forbids_stale(s) || q.min_fresh.is_some() {
        return Reuse::Validate;
    }
    let staleness = age - lifetime;
    let within = |d: Option<Delta>| matches!(d, Some(Delta::Seconds(n)) if staleness <= Duration::from_secs(n));
    match q.max_stale {
        Some(None) => return Reuse::Serve,
        Some(bound) if within(bound) => return Reuse::Serve,
        _ => {}
    }
    if q.max_age.is_none() && within(s.stale_while_revalidate) {
        return Reuse::ServeWhileRevalidate;
    }
    Reuse::Validate
}

/// Whether a stale stored response may be served after the origin failed (5xx or no answer)
/// under `stale-if-error` of the response or the request, `staleness` being age − lifetime.
/// Never when `must-revalidate`, `proxy-revalidate`, `s-maxage` or `no-cache` forbid it.
///
/// RFC 5861 §4: either field's `stale-if-error=N` allows it while `staleness ≤ N`. An unqualified
/// `no-cache` in the request (or its pragma) forbids it too: that client asked for validation.
pub fn stale_if_error(
    req: &RequestDirectives,
    resp: &ResponseDirectives,
    staleness: Duration,
) -> bool {
    if forbids_stale(&resp.dirs) || resp.dirs.no_cache || req.no_cache() {
        return false;
    }
    let within = |d: Option<Delta>| matches!(d, Some(Delta::Seconds(n)) if staleness <= Duration::from_secs(n));
    within(resp.dirs.stale_if_error) || within(req.dirs.stale_if_error)
}
