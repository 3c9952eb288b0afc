use http::{Method, StatusCode};

use super::headers;
use crate::cache::rfc::{invalidations, is_unsafe};

fn inv(method: Method, code: u16, target: &str, pairs: &[(&str, &str)]) -> Vec<String> {
    invalidations(
        &method,
        StatusCode::from_u16(code).unwrap(),
        "example.com",
        target,
        &headers(pairs),
    )
}

#[test]
fn unsafe_methods_rfc9110_9_2_1() {
    for safe in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
        assert!(!is_unsafe(&safe));
    }
    let m_search = Method::from_bytes(b"M-SEARCH").unwrap();
    for unsafe_method in [
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        m_search,
    ] {
        assert!(is_unsafe(&unsafe_method));
    }
}

#[test]
fn location_and_content_location_rfc9111_4_4() {
    // invalidate-{POST,PUT,DELETE,M-SEARCH}-location / -cl
    let h = [("location", "/loc"), ("content-location", "/cl?x=1")];
    assert_eq!(inv(Method::POST, 200, "/t", &h), ["/loc", "/cl?x=1"]);
    let m_search = Method::from_bytes(b"M-SEARCH").unwrap();
    assert_eq!(inv(m_search, 303, "/t", &h), ["/loc", "/cl?x=1"]);
    // Only on a non-error response, only for unsafe methods (invalidate-*-failed).
    assert!(inv(Method::POST, 500, "/t", &h).is_empty());
    assert!(inv(Method::PUT, 404, "/t", &h).is_empty());
    assert!(inv(Method::POST, 101, "/t", &h).is_empty());
    assert!(inv(Method::GET, 200, "/t", &h).is_empty());
    // Listed once.
    assert_eq!(
        inv(
            Method::POST,
            201,
            "/t",
            &[("location", "/a"), ("content-location", "/a")]
        ),
        ["/a"]
    );
}

#[test]
fn same_origin_only_rfc9111_4_4() {
    let one = |v: &str| inv(Method::POST, 200, "/dir/page?q", &[("location", v)]);
    assert_eq!(one("http://example.com/a?b"), ["/a?b"]);
    assert_eq!(one("https://EXAMPLE.com.:8443/a"), ["/a"]);
    assert_eq!(one("HTTPS://user@example.com"), ["/"]);
    assert_eq!(one("//example.com/n?x"), ["/n?x"]);
    assert!(one("https://other.example/a").is_empty());
    assert!(one("https://example.com.evil/a").is_empty());
    assert!(one("https://example.com:bad/a").is_empty());
    assert!(one("ftp://example.com/a").is_empty());
    assert!(one("mailto:x@example.com").is_empty());
}

#[test]
fn relative_references_resolve_rfc3986_5_2() {
    let one = |v: &str| inv(Method::POST, 200, "/dir/page?q", &[("location", v)]);
    assert_eq!(one("other"), ["/dir/other"]);
    assert_eq!(one("./other?x"), ["/dir/other?x"]);
    assert_eq!(one("../up"), ["/up"]);
    assert_eq!(one("../../../up"), ["/up"]);
    assert_eq!(one("sub/.."), ["/dir/"]);
    assert_eq!(one("/abs/./x/../y#frag"), ["/abs/y"]);
    assert_eq!(one("?new"), ["/dir/page?new"]);
    // An empty reference (or a fragment alone) is the target itself: nothing extra.
    assert!(one("#frag").is_empty());
}
