//! Validation (RFC 9111 §4.3): a stale response is revalidated with its `ETag` or
//! `Last-Modified`, a 304 refreshes the stored headers and freshness; a client's own conditional
//! on a fresh hit is answered 304 by the cache; `HEAD` is answered from a stored `GET`.

use http::StatusCode;
use portcullis_tests::cache::{Answer, http_date};

use super::{Cached, ago, assert_hit, assert_stored, assert_ttl, cache_status};

/// The body of a changed answer that must never be sent: the origin answers the revalidation
/// with 304, so the client must get the stored body.
const NOT_SENT: &str = "must not be sent: the origin answers 304";

#[tokio::test]
async fn a_stale_response_is_revalidated_with_its_etag() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin.on(
        "/a",
        Answer::ok("stored body")
            .cache_control("max-age=10")
            .etag("\"v1\"")
            .header("x-version", "1")
            .conditional(),
    );
    assert_stored(&c.get("/a").await?, "uri-miss");
    c.advance(20);
    // Same validator, new headers: the 304 carries X-Version: 2 and a longer max-age.
    c.origin.on(
        "/a",
        Answer::ok(NOT_SENT)
            .cache_control("max-age=100")
            .etag("\"v1\"")
            .header("x-version", "2")
            .conditional(),
    );
    let r = c.get("/a").await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "stored body");
    assert_eq!(
        r.header("x-version"),
        Some("2"),
        "headers updated from the 304"
    );
    let s = cache_status(&r);
    assert!(
        !s.hit && s.fwd_is("stale") && s.fwd_status == Some(304),
        "`fwd=stale; fwd-status=304; ttl=...`, got `{}`",
        s.raw
    );
    assert_ttl(&s, 100);
    assert_eq!(c.origin.requests("/a"), 2, "one request for the 304");
    let seen = c.origin.last_seen("/a").expect("seen");
    assert_eq!(seen.header("if-none-match"), Some("\"v1\""));

    // The new max-age holds: fresh 50 s later, with the new headers.
    c.advance(50);
    let r = c.get("/a").await?;
    assert_hit(&r);
    assert_eq!(r.text(), "stored body");
    assert_eq!(r.header("x-version"), Some("2"));
    assert_eq!(r.header("cache-control"), Some("max-age=100"));
    assert_eq!(c.origin.requests("/a"), 2);
    Ok(())
}

#[tokio::test]
async fn a_stale_response_is_revalidated_with_its_last_modified() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    let modified = ago(c.now(), 3600);
    c.origin.on(
        "/a",
        Answer::ok("stored body")
            .cache_control("max-age=10")
            .last_modified(modified)
            .header("x-version", "1")
            .conditional(),
    );
    assert_stored(&c.get("/a").await?, "uri-miss");
    c.advance(20);
    c.origin.on(
        "/a",
        Answer::ok(NOT_SENT)
            .cache_control("max-age=100")
            .last_modified(modified)
            .header("x-version", "2")
            .conditional(),
    );
    let r = c.get("/a").await?;
    assert_eq!(r.text(), "stored body");
    assert_eq!(r.header("x-version"), Some("2"));
    let s = cache_status(&r);
    assert!(
        s.fwd_is("stale") && s.fwd_status == Some(304),
        "`{}`",
        s.raw
    );
    assert_eq!(c.origin.requests("/a"), 2);
    let seen = c.origin.last_seen("/a").expect("seen");
    assert_eq!(
        seen.header("if-modified-since"),
        Some(http_date(modified).as_str()),
        "validated with the stored Last-Modified"
    );
    c.advance(50);
    assert_hit(&c.get("/a").await?);
    assert_eq!(c.origin.requests("/a"), 2);
    Ok(())
}

#[tokio::test]
async fn a_client_if_none_match_on_a_fresh_hit_gets_304_from_the_cache() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin.on(
        "/a",
        Answer::ok("body")
            .cache_control("max-age=60")
            .etag("\"v1\""),
    );
    c.get("/a").await?;
    let r = c.get_with("/a", &[("if-none-match", "\"v1\"")]).await?;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some("\"v1\""));
    assert!(cache_status(&r).hit, "`{}`", cache_status(&r).raw);
    // Another tag: the full stored response.
    let r = c.get_with("/a", &[("if-none-match", "\"v0\"")]).await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "body");
    assert_eq!(c.origin.requests("/a"), 1, "never contacted the origin");
    Ok(())
}

#[tokio::test]
async fn a_client_if_modified_since_on_a_fresh_hit_gets_304_from_the_cache() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    let modified = ago(c.now(), 3600);
    c.origin.on(
        "/a",
        Answer::ok("body")
            .cache_control("max-age=60")
            .last_modified(modified),
    );
    c.get("/a").await?;
    let since = http_date(modified);
    let r = c
        .get_with("/a", &[("if-modified-since", since.as_str())])
        .await?;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.body.is_empty());
    let earlier = http_date(ago(modified, 60));
    let r = c
        .get_with("/a", &[("if-modified-since", earlier.as_str())])
        .await?;
    assert_eq!(r.status, StatusCode::OK, "modified after the client's copy");
    assert_eq!(r.text(), "body");
    assert_eq!(c.origin.requests("/a"), 1);
    Ok(())
}

#[tokio::test]
async fn head_is_served_from_a_stored_get() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin.on(
        "/a",
        Answer::ok("a body of 21 bytes...").cache_control("max-age=60"),
    );
    assert_stored(&c.get("/a").await?, "uri-miss");
    let head = c
        .send(
            portcullis_tests::client::request("HEAD", crate::SHOP, "/a")
                .body(portcullis_tests::body::empty())?,
        )
        .await?;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_hit(&head);
    assert_eq!(c.origin.requests_with("HEAD", "/a"), 0);
    assert_eq!(c.origin.requests("/a"), 1);
    Ok(())
}
