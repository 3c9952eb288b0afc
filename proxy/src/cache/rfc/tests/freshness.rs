use std::time::Duration;

use http::StatusCode;

use super::{at, date, headers, resp, secs};
use crate::cache::rfc::{HEURISTIC_MAX, Timing, freshness_lifetime, heuristically_cacheable};

const OK: StatusCode = StatusCode::OK;

/// The lifetime of a 200 with these headers received at `at(0)`, heuristic fraction 0.1.
fn lifetime(pairs: &[(&str, &str)]) -> Duration {
    lifetime_of(OK, pairs)
}

fn lifetime_of(status: StatusCode, pairs: &[(&str, &str)]) -> Duration {
    freshness_lifetime(status, &headers(pairs), &resp(pairs), at(0), 0.1)
}

#[test]
fn precedence_s_maxage_max_age_expires_rfc9111_4_2_1() {
    let (now, past, future) = (date(0), date(-7200), date(3600));
    // freshness-max-age-s-maxage-shared-longer(-reversed, -multiple)
    assert_eq!(
        lifetime(&[("cache-control", "max-age=3600, s-maxage=1")]),
        secs(1)
    );
    assert_eq!(
        lifetime(&[
            ("cache-control", "max-age=3600"),
            ("cache-control", "s-maxage=1")
        ]),
        secs(1)
    );
    // freshness-max-age-s-maxage-shared-shorter-expires
    assert_eq!(
        lifetime(&[
            ("expires", &past),
            ("cache-control", "max-age=0, s-maxage=3600")
        ]),
        secs(3600)
    );
    // freshness-max-age-expires, freshness-max-age-expires-invalid, freshness-max-age-0-expires
    assert_eq!(
        lifetime(&[
            ("cache-control", "max-age=3600"),
            ("expires", &past),
            ("date", &now)
        ]),
        secs(3600)
    );
    assert_eq!(
        lifetime(&[
            ("cache-control", "max-age=3600"),
            ("expires", "0"),
            ("date", &now)
        ]),
        secs(3600)
    );
    assert_eq!(
        lifetime(&[
            ("cache-control", "max-age=0"),
            ("expires", &future),
            ("date", &now)
        ]),
        secs(0)
    );
    // The deciding directive is invalid: stale, even with a valid one behind it.
    assert_eq!(
        lifetime(&[("cache-control", "s-maxage=x, max-age=60")]),
        secs(0)
    );
    assert_eq!(
        lifetime(&[("cache-control", "max-age=-3600"), ("expires", &future)]),
        secs(0)
    );
}

#[test]
fn expires_minus_date_rfc9111_4_2_1_and_5_3() {
    let now = date(0);
    // freshness-expires-future / -past / -present
    assert_eq!(
        lifetime(&[("expires", &date(30 * 86400)), ("date", &now)]),
        secs(30 * 86400)
    );
    assert_eq!(
        lifetime(&[("expires", &date(-30 * 86400)), ("date", &now)]),
        secs(0)
    );
    assert_eq!(lifetime(&[("expires", &now), ("date", &now)]), secs(0));
    // freshness-expires-old-date: Expires before Date, both in the future of our clock.
    assert_eq!(
        lifetime(&[("expires", &date(300)), ("date", &date(400))]),
        secs(0)
    );
    // freshness-expires-invalid: "0" and other junk are in the past.
    assert_eq!(lifetime(&[("expires", "0"), ("date", &now)]), secs(0));
    assert_eq!(
        lifetime(&[("expires", "Thu, 18 Aug 2050 02:01:18 UTC"), ("date", &now)]),
        secs(0)
    );
    // freshness-expires-wrong-case-*: still a date.
    assert!(
        lifetime(&[("expires", "THU, 18 AUG 2050 02:01:18 gmt"), ("date", &now)]) > secs(86400)
    );
    // No or an invalid Date: the response time (freshness-expires-invalid-date).
    assert_eq!(lifetime(&[("expires", &date(10))]), secs(10));
    assert_eq!(
        lifetime(&[("expires", &date(10)), ("date", "foo")]),
        secs(10)
    );
    // Two Expires lines: the first.
    assert_eq!(
        lifetime(&[
            ("expires", &date(10)),
            ("expires", &date(99)),
            ("date", &now)
        ]),
        secs(10)
    );
}

#[test]
fn targeted_field_ignores_expires_rfc9213_2_2() {
    let now = date(0);
    // cdn-max-age-expires, cdn-max-age-cc-max-age-invalid-expires, cdn-max-age-0-expires
    let p = [
        ("cdn-cache-control", "max-age=3600"),
        ("expires", "0"),
        ("date", now.as_str()),
    ];
    assert_eq!(lifetime(&p), secs(3600));
    let future = date(10_000);
    let p = [
        ("cdn-cache-control", "max-age=0"),
        ("expires", future.as_str()),
        ("date", now.as_str()),
    ];
    assert_eq!(lifetime(&p), secs(0));
    // A targeted field without max-age: neither Cache-Control nor Expires count.
    let p = [
        ("cdn-cache-control", "public"),
        ("cache-control", "max-age=60"),
        ("expires", future.as_str()),
    ];
    assert_eq!(lifetime(&p), secs(0));
}

#[test]
fn heuristic_rfc9111_4_2_2() {
    let (now, day_ago) = (date(0), date(-86400));
    let p = [("last-modified", day_ago.as_str()), ("date", now.as_str())];
    // 10% of a day.
    assert_eq!(lifetime(&p), secs(8640));
    // heuristic-{200,203,204,404,405,410,414,501}-cached and the negatives.
    for code in [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] {
        let status = StatusCode::from_u16(code).unwrap();
        assert!(heuristically_cacheable(status));
        assert_eq!(lifetime_of(status, &p), secs(8640), "{code}");
    }
    for code in [201, 202, 302, 307, 403, 500, 502, 503, 504, 599] {
        let status = StatusCode::from_u16(code).unwrap();
        assert!(!heuristically_cacheable(status));
        assert_eq!(lifetime_of(status, &p), secs(0), "{code}");
    }
    // heuristic-599-cached: `public` allows it for any status.
    let public = [
        ("last-modified", day_ago.as_str()),
        ("date", now.as_str()),
        ("cache-control", "public"),
    ];
    assert_eq!(
        lifetime_of(StatusCode::from_u16(599).unwrap(), &public),
        secs(8640)
    );
    // Explicit freshness, even zero, forbids the heuristic.
    let explicit = [
        ("last-modified", day_ago.as_str()),
        ("cache-control", "max-age=0"),
    ];
    assert_eq!(lifetime(&explicit), secs(0));
    let expired = [("last-modified", day_ago.as_str()), ("expires", "0")];
    assert_eq!(lifetime(&expired), secs(0));
}

#[test]
fn heuristic_edges() {
    let (now, day_ago) = (date(0), date(-86400));
    let p = [("last-modified", day_ago.as_str()), ("date", now.as_str())];
    // Fraction 0 disables it; NaN and negative fractions too.
    for fraction in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert_eq!(
            freshness_lifetime(OK, &headers(&p), &resp(&p), at(0), fraction),
            secs(0)
        );
    }
    // Capped at one day, whatever the fraction and the age of Last-Modified.
    let old = date(-365 * 86400);
    let p = [("last-modified", old.as_str()), ("date", now.as_str())];
    assert_eq!(
        freshness_lifetime(OK, &headers(&p), &resp(&p), at(0), 0.5),
        HEURISTIC_MAX
    );
    // Last-Modified after Date, invalid, or missing: nothing.
    let later = date(60);
    assert_eq!(
        lifetime(&[("last-modified", later.as_str()), ("date", now.as_str())]),
        secs(0)
    );
    assert_eq!(
        lifetime(&[("last-modified", "yesterday"), ("date", now.as_str())]),
        secs(0)
    );
    assert_eq!(lifetime(&[("date", now.as_str())]), secs(0));
    // No Date: the response time stands in.
    assert_eq!(lifetime(&[("last-modified", day_ago.as_str())]), secs(8640));
}

#[test]
fn age_calculation_rfc9111_4_2_3() {
    // Date 7200 s before arrival: apparent age (freshness-max-age-date).
    let t = Timing::new(at(0), at(0), &headers(&[("date", &date(-7200))]));
    assert_eq!(t.corrected_initial_age, secs(7200));
    // Age plus the response delay (freshness-max-age-age).
    let t = Timing::new(
        at(-2),
        at(0),
        &headers(&[("date", &date(0)), ("age", "7200")]),
    );
    assert_eq!(t.corrected_initial_age, secs(7202));
    // The larger of the two.
    let t = Timing::new(
        at(0),
        at(0),
        &headers(&[("date", &date(-100)), ("age", "30")]),
    );
    assert_eq!(t.corrected_initial_age, secs(100));
    // A Date in the future gives no negative age.
    let t = Timing::new(at(0), at(0), &headers(&[("date", &date(500))]));
    assert_eq!(t.corrected_initial_age, secs(0));
    // current_age adds the resident time; a clock going back adds nothing.
    let t = Timing::new(at(0), at(0), &headers(&[("age", "30")]));
    assert_eq!(t.current_age(at(10)), secs(40));
    assert_eq!(t.current_age(at(-10)), secs(30));
    // A response time before the request time (clock step) gives no delay.
    let t = Timing::new(at(5), at(0), &headers(&[]));
    assert_eq!(t.corrected_initial_age, secs(0));
}

#[test]
fn age_parsing_rfc9111_5_1() {
    let age = |lines: &[&str]| {
        let pairs: Vec<(&str, &str)> = lines.iter().map(|v| ("age", *v)).collect();
        Timing::new(at(0), at(0), &headers(&pairs)).corrected_initial_age
    };
    // age-parse-nonnumeric, -negative, -float: ignored.
    assert_eq!(age(&["abc"]), secs(0));
    assert_eq!(age(&["-7200"]), secs(0));
    assert_eq!(age(&["7200.0"]), secs(0));
    // age-parse-suffix, -prefix, -*-twoline, -dup-*: the largest valid value.
    assert_eq!(age(&["7200,0"]), secs(7200));
    assert_eq!(age(&["0,7200"]), secs(7200));
    assert_eq!(age(&["7200", "0"]), secs(7200));
    assert_eq!(age(&["0", "7200"]), secs(7200));
    assert_eq!(age(&["0, 0"]), secs(0));
    assert_eq!(age(&["7200, 7200"]), secs(7200));
    // Saturates at 2^31 (§1.2.2).
    assert_eq!(age(&["99999999999999"]), secs(1 << 31));
}
