//! RFC 7725 pages: headers, escaping, sealed orders, content negotiation.

mod common;

use common::*;
use portcullis_policy::Policy;
use portcullis_policy::page::{BlockedResponse, Format, blocked_response, link_header, wants_json};

fn header<'a>(r: &'a BlockedResponse, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

fn one(action: &str, sealed: bool) -> Policy {
    let mut o = order("ORD-1", "      hosts: [a.example]", action, "");
    if sealed {
        o = o.replace("disclosure: public", "disclosure: sealed");
    }
    policy(&file(&[o]))
}

fn render(p: &Policy, format: Format) -> BlockedResponse {
    let r = blocked_response(&p.orders[0], &p.blocked_by, "a.example", "req-<1>", format);
    r.unwrap_or_else(|| panic!("no response"))
}

#[test]
fn public_451_html_names_everything_escaped() {
    let p = one("{ type: unavailable_451 }", false);
    let r = render(&p, Format::Html);
    assert_eq!(r.status, 451);
    assert_eq!(
        header(&r, "Link"),
        Some("<https://edge.example.net/legal>; rel=\"blocked-by\"")
    );
    assert_eq!(header(&r, "Cache-Control"), Some("no-store"));
    assert_eq!(header(&r, "Content-Type"), Some("text/html; charset=utf-8"));
    for needle in [
        "Court &lt;of&gt; &quot;Tests&quot; &amp; Co",
        "Law §1 &lt;script&gt;alert(1)&lt;/script&gt;",
        "REF-ORD-1",
        "<td>DE</td>",
        "<td>worldwide</td>",
        "2026-01-02T00:00:00Z",
        "href=\"https://notices.example/ORD-1\"",
        "req-&lt;1&gt;",
    ] {
        assert!(r.body.contains(needle), "{needle} not in {}", r.body);
    }
    assert!(!r.body.contains("<script>"));
}

#[test]
fn public_451_problem_json() {
    let p = one("{ type: unavailable_451 }", false);
    let r = render(&p, Format::ProblemJson);
    assert_eq!(header(&r, "Content-Type"), Some("application/problem+json"));
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["status"], 451);
    assert_eq!(v["authority"], "Court <of> \"Tests\" & Co");
    assert_eq!(v["legal_basis"], "Law §1 <script>alert(1)</script>");
    assert_eq!(v["jurisdiction"], "DE");
    assert_eq!(v["notice_url"], "https://notices.example/ORD-1");
    assert_eq!(v["request_id"], "req-<1>");
    assert!(!r.body.contains('<'), "escaped as \\u003c");
}

#[test]
fn sealed_discloses_nothing_but_the_fact() {
    let p = one("{ type: unavailable_451 }", true);
    for format in [Format::Html, Format::ProblemJson] {
        let r = render(&p, format);
        assert_eq!(r.status, 451);
        assert!(header(&r, "Link").is_some());
        for secret in [
            "Court",
            "Law",
            "REF-",
            "notices.example",
            "ORD-1",
            "DE",
            "2026",
        ] {
            assert!(!r.body.contains(secret), "{secret} leaked: {}", r.body);
        }
        assert!(r.body.contains("legal demand"));
    }
    let p = one("{ type: status, code: 404 }", true);
    let r = render(&p, Format::Html);
    assert_eq!(r.status, 404);
    assert!(header(&r, "Link").is_none());
    assert!(!r.body.contains("legal"));
}

#[test]
fn other_actions() {
    let r = render(&one("{ type: redirect }", false), Format::Html);
    assert_eq!(
        (r.status, header(&r, "Location")),
        (307, Some("https://notices.example/ORD-1"))
    );
    assert_eq!(header(&r, "Cache-Control"), Some("no-store"));
    let r = render(
        &one("{ type: status, code: 403 }", false),
        Format::ProblemJson,
    );
    assert_eq!(r.status, 403);
    for a in ["{ type: close }", "{ type: refuse_tls }"] {
        let p = one(a, false);
        assert!(blocked_response(&p.orders[0], &p.blocked_by, "a", "r", Format::Html).is_none());
    }
    assert_eq!(
        link_header("https://x.example/l"),
        "<https://x.example/l>; rel=\"blocked-by\""
    );
}

#[test]
fn accept_negotiation() {
    for yes in [
        "application/problem+json",
        "application/json",
        "application/json, text/html;q=0.9",
        "text/html;q=0.5, application/json",
        "APPLICATION/JSON;Q=1.0, */*;q=0.1",
    ] {
        assert!(wants_json(yes), "{yes}");
    }
    for no in [
        "",
        "*/*",
        "text/html",
        "text/html, application/json",
        "application/json;q=0",
        "application/json;q=0.5, */*",
        "application/json;q=2",
        "image/png",
    ] {
        assert!(!wants_json(no), "{no}");
    }
}
