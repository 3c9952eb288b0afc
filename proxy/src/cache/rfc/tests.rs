//! Unit tests of the RFC 9111 semantics, one file per concern. Each case names the section of
//! the RFC it comes from; the cache-tests.fyi test ids are given where a case mirrors one.

mod dates;
mod directives;
mod freshness;
mod invalidation;
mod reuse;
mod storage;
mod validation;
mod vary;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{RequestDirectives, ResponseDirectives, request_directives, response_directives};

/// A header map from pairs, in order, each pair one line.
fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn resp(pairs: &[(&str, &str)]) -> ResponseDirectives {
    response_directives(&headers(pairs))
}

fn req(pairs: &[(&str, &str)]) -> RequestDirectives {
    request_directives(&headers(pairs))
}

/// A fixed instant plus `secs` (whole seconds, as HTTP dates are).
fn at(secs: i64) -> SystemTime {
    let base = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    if secs >= 0 {
        base + Duration::from_secs(secs.unsigned_abs())
    } else {
        base - Duration::from_secs(secs.unsigned_abs())
    }
}

/// `at(secs)` as an IMF-fixdate.
fn date(secs: i64) -> String {
    httpdate::fmt_http_date(at(secs))
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
