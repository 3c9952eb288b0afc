use http::{HeaderMap, Method};

use super::{date, headers};
use crate::cache::rfc::{add_validators, freshen, not_modified, not_modified_headers, validates};

#[test]
fn add_validators_rfc9111_4_3_1() {
    let lm = date(-3000);
    // conditional-etag-strong-generate, conditional-etag-weak-generate-weak, and Last-Modified.
    let stored = headers(&[("etag", "\"abcdef\""), ("last-modified", &lm)]);
    let mut out = headers(&[
        ("if-none-match", "\"client\""),
        ("if-modified-since", &date(0)),
        ("abc", "123"),
    ]);
    assert!(add_validators(&stored, &mut out));
    assert_eq!(out["if-none-match"], "\"abcdef\"");
    assert_eq!(out["if-modified-since"], lm.as_str());
    assert_eq!(out.get_all("if-none-match").iter().count(), 1);
    assert_eq!(out["abc"], "123"); // conditional-etag-vary-headers: the rest is kept
    let mut out = HeaderMap::new();
    assert!(add_validators(
        &headers(&[("etag", "W/\"abcdef\"")]),
        &mut out
    ));
    assert_eq!(out["if-none-match"], "W/\"abcdef\"");
    assert!(!out.contains_key("if-modified-since"));
    // conditional-etag-strong-generate-unquoted: quoted on the way out.
    let mut out = HeaderMap::new();
    assert!(add_validators(&headers(&[("etag", "abcdef")]), &mut out));
    assert_eq!(out["if-none-match"], "\"abcdef\"");
    // No validator: false, and the client's conditionals are gone anyway.
    let mut out = headers(&[("if-none-match", "\"client\""), ("if-modified-since", &lm)]);
    assert!(!add_validators(
        &headers(&[("etag", "a b"), ("last-modified", "junk")]),
        &mut out
    ));
    assert!(out.is_empty());
}

#[test]
fn validates_selects_the_stored_response_rfc9111_4_3_4() {
    let lm = date(-86400);
    let stored = headers(&[("etag", "\"a\""), ("last-modified", &lm)]);
    assert!(validates(&stored, &headers(&[("etag", "\"a\"")])));
    assert!(!validates(&stored, &headers(&[("etag", "\"b\"")])));
    // Strong in the 304 needs strong in the store; weak compares weakly.
    assert!(!validates(
        &headers(&[("etag", "W/\"a\"")]),
        &headers(&[("etag", "\"a\"")])
    ));
    assert!(validates(
        &headers(&[("etag", "\"a\"")]),
        &headers(&[("etag", "W/\"a\"")])
    ));
    assert!(validates(
        &headers(&[("etag", "W/\"a\"")]),
        &headers(&[("etag", "W/\"a\"")])
    ));
    assert!(!validates(
        &headers(&[("last-modified", &lm)]),
        &headers(&[("etag", "\"a\"")])
    ));
    // Last-Modified when the 304 has no ETag: the same instant, whatever the form.
    assert!(validates(&stored, &headers(&[("last-modified", &lm)])));
    let rfc850 = "Sunday, 06-Nov-94 08:49:37 GMT";
    let imf = "Sun, 06 Nov 1994 08:49:37 GMT";
    assert!(validates(
        &headers(&[("last-modified", imf)]),
        &headers(&[("last-modified", rfc850)])
    ));
    assert!(!validates(
        &stored,
        &headers(&[("last-modified", &date(0))])
    ));
    // No validator in the 304: only a stored response without one either.
    assert!(!validates(&stored, &headers(&[("date", &date(0))])));
    assert!(validates(
        &headers(&[("x", "1")]),
        &headers(&[("date", &date(0))])
    ));
}

#[test]
fn freshen_rfc9111_3_2() {
    let lm = date(-86400);
    let mut stored = headers(&[
        ("cache-control", "max-age=1"),
        ("etag", "\"a\""),
        ("last-modified", &lm),
        ("test-header", "A"),
        ("content-length", "10"),
        ("content-encoding", "gzip"),
        ("x-multi", "1"),
        ("x-multi", "2"),
    ]);
    let update = headers(&[
        ("cache-control", "max-age=3600"),
        ("etag", "\"a\""),
        ("content-type", "text/plain;charset=utf-8"),
        ("content-length", "0"),
        ("content-encoding", "br"),
        ("x-multi", "3"),
        ("set-cookie", "a=c"),
        ("connection", "x-hop"),
        ("x-hop", "1"),
        ("keep-alive", "timeout=1"),
    ]);
    freshen(&mut stored, &update);
    // 304-etag-update-stored-*: updated.
    assert_eq!(stored["cache-control"], "max-age=3600");
    assert_eq!(stored["content-type"], "text/plain;charset=utf-8");
    let multi: Vec<_> = stored.get_all("x-multi").iter().collect();
    assert_eq!(multi, ["3"]);
    // 304-lm-use-stored-Test-Header: kept when the update lacks it.
    assert_eq!(stored["test-header"], "A");
    assert_eq!(stored["last-modified"], lm.as_str());
    // 304-etag-update-stored-Set-Cookie: updated like any other field.
    assert_eq!(stored["set-cookie"], "a=c");
    // Excepted: body metadata, hop-by-hop and what Connection names.
    assert_eq!(stored["content-length"], "10");
    assert_eq!(stored["content-encoding"], "gzip");
    for gone in ["connection", "x-hop", "keep-alive"] {
        assert!(!stored.contains_key(gone), "{gone}");
    }
    // A qualified no-cache arriving with the update strips the field it names.
    let mut stored = headers(&[("x-secret", "1"), ("cache-control", "max-age=1")]);
    freshen(
        &mut stored,
        &headers(&[("cache-control", "max-age=60, no-cache=\"x-secret\"")]),
    );
    assert!(!stored.contains_key("x-secret"));
}

#[test]
fn not_modified_if_none_match_rfc9110_13_1_2() {
    let stored = headers(&[("etag", "\"abcdef\""), ("last-modified", &date(-5000))]);
    let get = |pairs: &[(&str, &str)]| not_modified(&Method::GET, &headers(pairs), &stored);
    // conditional-etag-strong-respond, -multiple-{first,second,last}
    assert!(get(&[("if-none-match", "\"abcdef\"")]));
    assert!(get(&[("if-none-match", "\"abcdef\", \"1234\", \"5678\"")]));
    assert!(get(&[("if-none-match", "\"1234\", \"abcdef\", \"5678\"")]));
    assert!(get(&[
        ("if-none-match", "\"1234\""),
        ("if-none-match", "\"abcdef\"")
    ]));
    assert!(get(&[("if-none-match", "*")]));
    assert!(!get(&[("if-none-match", "\"1234\"")]));
    // Weak comparison: conditional-etag-weak-respond.
    assert!(get(&[("if-none-match", "W/\"abcdef\"")]));
    let weak = headers(&[("etag", "W/\"abcdef\"")]);
    assert!(not_modified(
        &Method::GET,
        &headers(&[("if-none-match", "W/\"abcdef\"")]),
        &weak
    ));
    // A comma inside a tag does not split it.
    let comma = headers(&[("etag", "\"a,b\"")]);
    assert!(not_modified(
        &Method::GET,
        &headers(&[("if-none-match", "\"x\", \"a,b\"")]),
        &comma
    ));
    // conditional-etag-precedence: If-None-Match decides; If-Modified-Since is not looked at.
    assert!(get(&[
        ("if-none-match", "\"abcdef\""),
        ("if-modified-since", &date(-10_000))
    ]));
    assert!(!get(&[
        ("if-none-match", "\"nope\""),
        ("if-modified-since", &date(0))
    ]));
    // No ETag stored: no match.
    let no_etag = headers(&[("last-modified", &date(-5000))]);
    assert!(!not_modified(
        &Method::GET,
        &headers(&[("if-none-match", "\"abcdef\"")]),
        &no_etag
    ));
    // HEAD too; other methods and other preconditions never.
    assert!(not_modified(
        &Method::HEAD,
        &headers(&[("if-none-match", "\"abcdef\"")]),
        &stored
    ));
    assert!(!not_modified(
        &Method::POST,
        &headers(&[("if-none-match", "\"abcdef\"")]),
        &stored
    ));
    for other in ["if-match", "if-unmodified-since", "if-range"] {
        assert!(
            !get(&[("if-none-match", "\"abcdef\""), (other, "\"abcdef\"")]),
            "{other}"
        );
    }
    assert!(!get(&[]));
}

#[test]
fn not_modified_if_modified_since_rfc9110_13_1_3() {
    let stored = headers(&[("last-modified", &date(-3000)), ("date", &date(0))]);
    let ims = |v: &str| not_modified(&Method::GET, &headers(&[("if-modified-since", v)]), &stored);
    // conditional-lm-fresh, -fresh-earlier, -fresh-rfc850
    assert!(ims(&date(-3000)));
    assert!(ims(&date(-2000)));
    assert!(!ims(&date(-3001)));
    let rfc850 = httpdate::fmt_http_date(super::at(-3000));
    let parts: Vec<&str> = rfc850.split(' ').collect(); // "Tue, 14 Nov 2023 22:13:20 GMT"
    let weekday = match parts[0] {
        "Mon," => "Monday,",
        "Tue," => "Tuesday,",
        "Wed," => "Wednesday,",
        "Thu," => "Thursday,",
        "Fri," => "Friday,",
        "Sat," => "Saturday,",
        _ => "Sunday,",
    };
    let rfc850 = format!(
        "{weekday} {}-{}-{} {} GMT",
        parts[1],
        parts[2],
        &parts[3][2..],
        parts[4]
    );
    assert!(ims(&rfc850), "{rfc850}");
    // Invalid: ignored, so no 304.
    assert!(!ims("yesterday"));
    // Without Last-Modified the stored Date stands in (RFC 9111 §4.3.2; conditional-lm-fresh-no-lm).
    let dated = headers(&[("date", &date(-3000))]);
    let since = |v: &str| headers(&[("if-modified-since", v)]);
    assert!(not_modified(&Method::GET, &since(&date(-3000)), &dated));
    assert!(not_modified(&Method::GET, &since(&date(0)), &dated));
    assert!(!not_modified(&Method::GET, &since(&date(-3001)), &dated));
    assert!(!not_modified(
        &Method::GET,
        &since(&date(0)),
        &HeaderMap::new()
    ));
}

#[test]
fn not_modified_headers_rfc9110_15_4_5() {
    let stored = headers(&[
        ("cache-control", "max-age=60"),
        ("content-location", "/x"),
        ("date", &date(0)),
        ("etag", "\"abcdef\""),
        ("expires", &date(60)),
        ("vary", "Accept"),
        ("vary", "Foo"),
        ("last-modified", &date(-60)),
        ("content-type", "text/html"),
        ("content-length", "12"),
        ("set-cookie", "a=b"),
    ]);
    let out = not_modified_headers(&stored);
    // conditional-304-etag
    assert_eq!(out["etag"], "\"abcdef\"");
    assert_eq!(out.get_all("vary").iter().count(), 2);
    let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "cache-control",
            "content-location",
            "date",
            "etag",
            "expires",
            "vary",
            "last-modified"
        ]
    );
}
