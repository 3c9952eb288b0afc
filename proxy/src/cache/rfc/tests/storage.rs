use http::{HeaderMap, Method, StatusCode};

use super::{date, headers, req, resp};
use crate::cache::rfc::{NotStorable, storable, strip_for_storage, understood_status};

/// `storable` for a GET with these request headers and a response with `code` and these
/// headers, heuristic fraction 0.1.
fn check(
    request: &[(&str, &str)],
    code: u16,
    response: &[(&str, &str)],
) -> Result<(), NotStorable> {
    check_with(&Method::GET, request, code, response, 0.1)
}

fn check_with(
    method: &Method,
    request: &[(&str, &str)],
    code: u16,
    response: &[(&str, &str)],
    fraction: f64,
) -> Result<(), NotStorable> {
    storable(
        method,
        &headers(request),
        &req(request),
        StatusCode::from_u16(code).unwrap(),
        &headers(response),
        &resp(response),
        fraction,
    )
}

const FRESH: (&str, &str) = ("cache-control", "max-age=3600");

#[test]
fn method_and_status_rfc9111_3() {
    assert_eq!(check(&[], 200, &[FRESH]), Ok(()));
    for method in [Method::HEAD, Method::POST, Method::PUT, Method::OPTIONS] {
        assert_eq!(
            check_with(&method, &[], 200, &[FRESH], 0.1),
            Err(NotStorable::Method)
        );
    }
    for code in [100, 103, 206, 304] {
        assert_eq!(
            check(&[], code, &[FRESH]),
            Err(NotStorable::Status),
            "{code}"
        );
    }
    // status-*-fresh: any other final status with explicit freshness, even unknown ones.
    for code in [
        203, 204, 299, 301, 302, 303, 307, 308, 400, 404, 410, 499, 500, 502, 503, 504, 599,
    ] {
        assert_eq!(check(&[], code, &[FRESH]), Ok(()), "{code}");
    }
}

#[test]
fn no_store_rfc9111_5_2_1_5_and_5_2_2_5() {
    // cc-resp-no-store(-case-insensitive, -fresh), ccreq-no-store
    assert_eq!(
        check(&[], 200, &[("cache-control", "no-store")]),
        Err(NotStorable::NoStore)
    );
    assert_eq!(
        check(
            &[],
            200,
            &[
                ("cache-control", "max-age=10000, No-StOrE"),
                ("expires", &date(10000))
            ]
        ),
        Err(NotStorable::NoStore)
    );
    assert_eq!(
        check(&[("cache-control", "no-store")], 200, &[FRESH]),
        Err(NotStorable::NoStore)
    );
    // cdn-no-store-cc-fresh / cdn-fresh-cc-nostore
    assert_eq!(
        check(&[], 200, &[FRESH, ("cdn-cache-control", "no-store")]),
        Err(NotStorable::NoStore)
    );
    assert_eq!(
        check(
            &[],
            200,
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=10000")
            ]
        ),
        Ok(())
    );
}

#[test]
fn must_understand_rfc9111_5_2_2_3() {
    let mu = ("cache-control", "must-understand, no-store, max-age=60");
    // Understood status: no-store is ignored.
    assert_eq!(check(&[], 200, &[mu]), Ok(()));
    assert!(understood_status(StatusCode::OK) && understood_status(StatusCode::NOT_FOUND));
    // Not understood: never stored.
    assert_eq!(check(&[], 299, &[mu]), Err(NotStorable::MustUnderstand));
    assert_eq!(
        check(
            &[],
            599,
            &[("cache-control", "must-understand, max-age=60")]
        ),
        Err(NotStorable::MustUnderstand)
    );
    assert!(!understood_status(StatusCode::PARTIAL_CONTENT));
    assert!(!understood_status(StatusCode::from_u16(599).unwrap()));
}

#[test]
fn private_rfc9111_5_2_2_7() {
    // cc-resp-private-shared, cdn-private
    assert_eq!(
        check(&[], 200, &[("cache-control", "private, max-age=3600")]),
        Err(NotStorable::Private)
    );
    assert_eq!(
        check(
            &[],
            200,
            &[
                ("cdn-cache-control", "private"),
                ("cache-control", "max-age=10000")
            ]
        ),
        Err(NotStorable::Private)
    );
    // Qualified: stored, the field stripped.
    assert_eq!(
        check(
            &[],
            200,
            &[("cache-control", "private=\"x-user\", max-age=60")]
        ),
        Ok(())
    );
}

#[test]
fn authorization_rfc9111_3_5() {
    let auth = [("authorization", "FOO")];
    // other-authorization
    assert_eq!(
        check(
            &auth,
            200,
            &[("expires", &date(30 * 86400)), ("date", &date(0))]
        ),
        Err(NotStorable::Authorization)
    );
    assert_eq!(check(&auth, 200, &[FRESH]), Err(NotStorable::Authorization));
    // other-authorization-public, -must-revalidate, -smaxage
    for cc in [
        "max-age=3600, public",
        "max-age=3600, must-revalidate",
        "s-maxage=3600",
    ] {
        assert_eq!(check(&auth, 200, &[("cache-control", cc)]), Ok(()), "{cc}");
    }
}

#[test]
fn vary_star_rfc9111_4_1() {
    // vary-syntax-star, -star-star(-lines), -empty-star(-lines), -star-foo, -foo-star
    for lines in [
        &["*"][..],
        &["*, *"],
        &["*", "*"],
        &[", *"],
        &["", "*"],
        &["*, Foo"],
        &["Foo, *"],
    ] {
        let mut response = vec![FRESH];
        response.extend(lines.iter().map(|l| ("vary", *l)));
        assert_eq!(
            check(&[], 200, &response),
            Err(NotStorable::VaryStar),
            "{lines:?}"
        );
    }
    assert_eq!(check(&[], 200, &[FRESH, ("vary", "Foo")]), Ok(()));
}

#[test]
fn set_cookie_needs_explicit_freshness() {
    // RFC 9111 §7.3: Set-Cookie does not inhibit caching (cache-tests other-set-cookie,
    // headers-store-Set-Cookie); our rule: not on heuristic freshness alone.
    assert_eq!(check(&[], 200, &[FRESH, ("set-cookie", "a=b")]), Ok(()));
    let heuristic = [
        ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ("date", "Tue, 01 Oct 2024 00:00:00 GMT"),
        ("set-cookie", "a=b"),
    ];
    assert_eq!(check(&[], 200, &heuristic), Err(NotStorable::SetCookie));
    assert_eq!(check(&[], 200, &heuristic[..2]), Ok(()));
    let public = [
        ("cache-control", "public"),
        ("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
        ("date", "Tue, 01 Oct 2024 00:00:00 GMT"),
        ("set-cookie", "a=b"),
    ];
    assert_eq!(check(&[], 200, &public), Ok(()));
    let named = [
        ("cache-control", "max-age=60, no-cache=\"set-cookie\""),
        ("set-cookie", "a=b"),
    ];
    assert_eq!(check(&[], 200, &named), Ok(()));
    let named = [
        ("cache-control", "max-age=60, private=\"Set-Cookie\""),
        ("set-cookie", "a=b"),
    ];
    assert_eq!(check(&[], 200, &named), Ok(()));
    // A cookie in the request changes nothing (other-cookie).
    assert_eq!(check(&[("cookie", "a=b")], 200, &[FRESH]), Ok(()));
}

#[test]
fn freshness_or_validator_needed_rfc9111_3_and_4_2_2() {
    let (now, day_ago) = (date(0), date(-86400));
    // freshness-none: nothing at all.
    assert_eq!(check(&[], 200, &[]), Err(NotStorable::NoFreshness));
    // heuristic-*: a heuristically cacheable status with Last-Modified.
    let lm = [("last-modified", day_ago.as_str()), ("date", now.as_str())];
    assert_eq!(check(&[], 200, &lm), Ok(()));
    assert_eq!(check(&[], 404, &lm), Ok(()));
    assert_eq!(check(&[], 403, &lm), Err(NotStorable::NoFreshness));
    assert_eq!(check(&[], 599, &lm), Err(NotStorable::NoFreshness));
    let public = [
        ("last-modified", day_ago.as_str()),
        ("cache-control", "public"),
    ];
    assert_eq!(check(&[], 599, &public), Ok(()));
    // Heuristic disabled: Last-Modified is still a validator worth keeping.
    assert_eq!(check_with(&Method::GET, &[], 200, &lm, 0.0), Ok(()));
    // cc-resp-no-cache-revalidate: no-cache with an ETag.
    assert_eq!(
        check(
            &[],
            200,
            &[("cache-control", "no-cache"), ("etag", "\"abcd\"")]
        ),
        Ok(())
    );
    // Zero lifetime and no validator is of no use (freshness-max-age-0, freshness-expires-invalid).
    assert_eq!(
        check(&[], 200, &[("cache-control", "max-age=0")]),
        Err(NotStorable::NoFreshness)
    );
    assert_eq!(
        check(&[], 200, &[("expires", "0"), ("date", &now)]),
        Err(NotStorable::NoFreshness)
    );
    assert_eq!(
        check(&[], 200, &[("expires", &now), ("date", &now)]),
        Err(NotStorable::NoFreshness)
    );
    // ... unless stale-while-revalidate/stale-if-error give it a use.
    assert_eq!(
        check(
            &[],
            200,
            &[("cache-control", "max-age=0, stale-while-revalidate=60")]
        ),
        Ok(())
    );
    // Expires without Date: not decidable without a clock, kept.
    assert_eq!(check(&[], 200, &[("expires", &date(60))]), Ok(()));
    // A non-heuristic status needs explicit freshness; a validator alone is not enough.
    assert_eq!(
        check(&[], 500, &[("etag", "\"x\"")]),
        Err(NotStorable::NoFreshness)
    );
    assert_eq!(check(&[], 500, &[("cache-control", "s-maxage=5")]), Ok(()));
}

#[test]
fn not_storable_tokens_are_distinct() {
    let all = [
        NotStorable::Method,
        NotStorable::Status,
        NotStorable::NoStore,
        NotStorable::Private,
        NotStorable::Authorization,
        NotStorable::VaryStar,
        NotStorable::NoFreshness,
        NotStorable::SetCookie,
        NotStorable::MustUnderstand,
    ];
    let mut tokens: Vec<&str> = all.iter().map(|n| n.as_str()).collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), all.len());
}

fn strip(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = headers(pairs);
    strip_for_storage(&mut h, &resp(pairs));
    h
}

#[test]
fn strip_for_storage_rfc9111_3_1() {
    // omit-headers-listed-in-Connection
    let h = strip(&[
        ("connection", "a, b"),
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        FRESH,
    ]);
    assert!(!h.contains_key("connection") && !h.contains_key("a") && !h.contains_key("b"));
    assert_eq!(h["c"], "3");
    // omit-headers-listed-in-Cache-Control-no-cache(-single), and private="..."
    let h = strip(&[
        ("cache-control", "no-cache=\"a, b\", private=d"),
        ("cache-control", "max-age=3600"),
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        ("d", "4"),
    ]);
    assert!(!h.contains_key("a") && !h.contains_key("b") && !h.contains_key("d"));
    assert_eq!(h["c"], "3");
    assert_eq!(h.get_all("cache-control").iter().count(), 2);
    // Hop-by-hop and proxy-specific fields; Set-Cookie is stored (RFC 9111 §7.3).
    let h = strip(&[
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("te", "trailers"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("trailer", "x"),
        ("proxy-authenticate", "Basic"),
        ("proxy-authentication-info", "x"),
        ("set-cookie", "a=b"),
        ("content-type", "text/plain"),
        ("www-authenticate", "Basic"),
        ("cdn-cache-control", "max-age=5"),
    ]);
    let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
    left.sort_unstable();
    assert_eq!(
        left,
        [
            "cdn-cache-control",
            "content-type",
            "set-cookie",
            "www-authenticate"
        ]
    );
}
