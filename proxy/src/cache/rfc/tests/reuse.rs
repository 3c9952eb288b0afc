use super::{req, resp, secs};
use crate::cache::rfc::{Reuse, reuse, stale_if_error};

/// `reuse` for these request and response Cache-Control values.
fn r(request_cc: &str, response_cc: &str, age: u64, lifetime: u64) -> Reuse {
    let q = if request_cc.is_empty() {
        req(&[])
    } else {
        req(&[("cache-control", request_cc)])
    };
    reuse(
        &q,
        &resp(&[("cache-control", response_cc)]),
        secs(age),
        secs(lifetime),
    )
}

#[test]
fn fresh_is_served_stale_is_validated_rfc9111_4_2() {
    assert_eq!(r("", "max-age=10", 9, 10), Reuse::Serve);
    // Fresh means lifetime > age: at age == lifetime it is stale.
    assert_eq!(r("", "max-age=10", 10, 10), Reuse::Validate);
    assert_eq!(r("", "max-age=0", 0, 0), Reuse::Validate); // freshness-max-age-0
    assert_eq!(r("", "max-age=10", 11, 10), Reuse::Validate);
}

#[test]
fn no_cache_always_validates_rfc9111_5_2_2_4_and_5_2_1_4() {
    assert_eq!(r("", "max-age=10000, no-cache", 0, 10000), Reuse::Validate); // cc-resp-no-cache
    assert_eq!(r("max-stale", "no-cache", 5, 0), Reuse::Validate);
    assert_eq!(r("no-cache", "max-age=3600", 0, 3600), Reuse::Validate); // ccreq-no-cache
    let pragma = req(&[("pragma", "no-cache")]);
    assert_eq!(
        reuse(&pragma, &resp(&[]), secs(0), secs(60)),
        Reuse::Validate
    );
    // The qualified form strips fields but lets the rest be reused
    // (headers-omit-headers-listed-in-Cache-Control-no-cache-single).
    assert_eq!(r("", "no-cache=\"a\", max-age=3600", 5, 3600), Reuse::Serve);
}

#[test]
fn request_max_age_and_min_fresh_rfc9111_5_2_1_1_and_5_2_1_3() {
    // ccreq-ma0, ccreq-ma1, ccreq-magreaterage
    assert_eq!(r("max-age=0", "max-age=3600", 3, 3600), Reuse::Validate);
    assert_eq!(r("max-age=1", "max-age=3600", 3, 3600), Reuse::Validate);
    assert_eq!(
        r("max-age=600", "max-age=3600", 1800, 3600),
        Reuse::Validate
    );
    assert_eq!(r("max-age=600", "max-age=3600", 600, 3600), Reuse::Serve);
    // An invalid value counts as 0.
    assert_eq!(r("max-age=x", "max-age=3600", 1, 3600), Reuse::Validate);
    // ccreq-min-fresh, ccreq-min-fresh-age
    assert_eq!(
        r("min-fresh=2000", "max-age=1500", 0, 1500),
        Reuse::Validate
    );
    assert_eq!(
        r("min-fresh=1000", "max-age=1500", 1000, 1500),
        Reuse::Validate
    );
    assert_eq!(r("min-fresh=500", "max-age=1500", 1000, 1500), Reuse::Serve);
    // Stale with min-fresh: validate, even with max-stale.
    assert_eq!(
        r("min-fresh=1, max-stale", "max-age=1", 5, 1),
        Reuse::Validate
    );
}

#[test]
fn max_stale_rfc9111_5_2_1_2() {
    // ccreq-max-stale, ccreq-max-stale-age
    assert_eq!(r("max-stale=1000", "max-age=1", 3, 1), Reuse::Serve);
    assert_eq!(
        r("max-stale=1000", "max-age=1500", 2000, 1500),
        Reuse::Serve
    );
    assert_eq!(
        r("max-stale=1000", "max-age=1500", 2501, 1500),
        Reuse::Validate
    );
    assert_eq!(r("max-stale", "max-age=1", 1_000_000, 1), Reuse::Serve);
    assert_eq!(r("max-stale=x", "max-age=1", 2, 1), Reuse::Validate);
    // With max-age too: the age bound still applies.
    assert_eq!(r("max-age=5, max-stale", "max-age=1", 3, 1), Reuse::Serve);
    assert_eq!(
        r("max-age=5, max-stale", "max-age=1", 6, 1),
        Reuse::Validate
    );
}

#[test]
fn revalidation_directives_forbid_stale_rfc9111_5_2_2_2_8_10() {
    // stale-close-must-revalidate / -proxy-revalidate / -s-maxage=2, cc-resp-must-revalidate-*
    for cc in [
        "max-age=1, must-revalidate",
        "max-age=1, proxy-revalidate",
        "s-maxage=1",
    ] {
        let swr = format!("{cc}, stale-while-revalidate=60");
        assert_eq!(r("max-stale", cc, 5, 1), Reuse::Validate, "{cc}");
        assert_eq!(r("", &swr, 5, 1), Reuse::Validate, "{cc}");
        assert_eq!(r("", cc, 0, 1), Reuse::Serve, "{cc}"); // fresh is fine
    }
}

#[test]
fn stale_while_revalidate_rfc5861_3() {
    // stale-while-revalidate (cc-stale)
    let cc = "max-age=0, stale-while-revalidate=3600";
    assert_eq!(r("", cc, 10, 0), Reuse::ServeWhileRevalidate);
    assert_eq!(r("", cc, 3600, 0), Reuse::ServeWhileRevalidate);
    assert_eq!(r("", cc, 3601, 0), Reuse::Validate);
    assert_eq!(
        r("", "max-age=0, stale-while-revalidate=x", 1, 0),
        Reuse::Validate
    );
    // The client bounding age or asking for validation turns it off.
    assert_eq!(r("max-age=100", cc, 10, 0), Reuse::Validate);
    assert_eq!(r("no-cache", cc, 10, 0), Reuse::Validate);
    // max-stale is checked first: served outright.
    assert_eq!(r("max-stale=100", cc, 10, 0), Reuse::Serve);
}

#[test]
fn stale_if_error_rfc5861_4() {
    let sie = |request_cc: &str, response_cc: &str, staleness: u64| {
        let q = req(&[("cache-control", request_cc)]);
        stale_if_error(
            &q,
            &resp(&[("cache-control", response_cc)]),
            secs(staleness),
        )
    };
    // stale-if-error-cc-response(-expired)
    assert!(sie("", "max-age=0, stale-if-error=3600", 100));
    assert!(sie("", "max-age=0, stale-if-error=3600", 3600));
    assert!(!sie("", "max-age=0, stale-if-error=1", 3));
    // stale-if-error-cc-request(-expired)
    assert!(sie("stale-if-error=3600", "max-age=0", 100));
    assert!(!sie("stale-if-error=1", "max-age=0", 3));
    // Neither: no.
    assert!(!sie("", "max-age=0", 1));
    assert!(!sie("", "max-age=0, stale-if-error=x", 1));
    // Forbidden by the response or a no-cache request.
    for cc in [
        "must-revalidate",
        "proxy-revalidate",
        "s-maxage=0",
        "no-cache",
    ] {
        assert!(
            !sie("", &format!("max-age=0, stale-if-error=60, {cc}"), 1),
            "{cc}"
        );
    }
    assert!(!sie("no-cache", "max-age=0, stale-if-error=60", 1));
    // A qualified no-cache does not forbid it.
    assert!(sie("", "max-age=0, stale-if-error=60, no-cache=\"x\"", 1));
}
