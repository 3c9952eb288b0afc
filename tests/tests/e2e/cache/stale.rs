//! Serving stale (RFC 5861, RFC 9111 §4.2.4): `stale-while-revalidate` answers at once and
//! refreshes once in the background; `stale-if-error` covers a dead origin and a 5xx one;
//! `must-revalidate` forbids both.

use http::StatusCode;
use portcullis_tests::cache::{Answer, Release};
use portcullis_tests::eventually;

use super::{Cached, assert_hit, assert_stored, cache_status};

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_once() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin.on(
        "/a",
        Answer::ok("old").cache_control("max-age=10, stale-while-revalidate=60"),
    );
    assert_stored(&c.get("/a").await?, "uri-miss");
    c.advance(20);
    // The refresh is held at the origin until the test lets it go: a stale answer that
    // arrives meanwhile cannot have waited for it.
    let refresh = Release::new();
    c.origin.on(
        "/a",
        Answer::ok("new")
            .cache_control("max-age=60")
            .hold_until(&refresh),
    );
    for _ in 0..2 {
        let r = c.get("/a").await?;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.text(), "old");
        let s = cache_status(&r);
        assert!(
            s.hit && s.detail_is("stale-while-revalidate") && s.ttl.is_some_and(|t| t < 0),
            "`hit; ttl=<negative>; detail=stale-while-revalidate`, got `{}`",
            s.raw
        );
        assert!(super::age(&r).is_some(), "served from storage: Age");
    }
    eventually("the background refresh reaches the origin", || async {
        let n = c.origin.requests("/a");
        anyhow::ensure!(n == 2, "origin requests for /a: {n}");
        Ok(())
    })
    .await?;
    refresh.open();
    eventually("the refreshed response is served", || async {
        let r = c.get("/a").await?;
        anyhow::ensure!(r.text() == "new", "still {:?}", r.text());
        Ok(())
    })
    .await?;
    let r = c.get("/a").await?;
    assert_eq!(r.text(), "new");
    assert_hit(&r);
    assert_eq!(
        c.origin.requests("/a"),
        2,
        "exactly one background refresh for all the stale answers"
    );
    Ok(())
}

/// Stores `/a` with `cache_control`, then lets it go 20 s stale.
async fn stale_after(c: &Cached, cache_control: &str) -> anyhow::Result<()> {
    c.origin
        .on("/a", Answer::ok("old").cache_control(cache_control));
    assert_stored(&c.get("/a").await?, "uri-miss");
    c.advance(20);
    Ok(())
}

#[tokio::test]
async fn stale_if_error_serves_stale_while_the_origin_is_down() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    stale_after(&c, "max-age=10, stale-if-error=60").await?;
    c.origin.stop();
    let r = c.get("/a").await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "old");
    let s = cache_status(&r);
    assert!(
        !s.hit
            && s.fwd_is("stale")
            && s.detail_is("stale-if-error")
            && s.fwd_status.is_none()
            && s.ttl.is_some_and(|t| t < 0),
        "`fwd=stale; ttl=<negative>; detail=stale-if-error`, got `{}`",
        s.raw
    );
    assert!(super::age(&r).is_some());
    Ok(())
}

#[tokio::test]
async fn stale_if_error_serves_stale_when_the_origin_answers_503() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    stale_after(&c, "max-age=10, stale-if-error=60").await?;
    c.origin.on("/a", Answer::status(503, "overloaded"));
    let r = c.get("/a").await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "old");
    let s = cache_status(&r);
    assert!(
        s.fwd_is("stale") && s.detail_is("stale-if-error") && s.fwd_status == Some(503),
        "`fwd=stale; fwd-status=503; ttl=...; detail=stale-if-error`, got `{}`",
        s.raw
    );
    assert_eq!(c.origin.requests("/a"), 2, "the origin was asked first");
    Ok(())
}

#[tokio::test]
async fn stale_if_error_ends_with_its_window() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    stale_after(&c, "max-age=10, stale-if-error=30").await?;
    c.advance(60); // 70 s stale, 30 s allowed
    c.origin.on("/a", Answer::status(503, "overloaded"));
    let r = c.get("/a").await?;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.text(), "overloaded");
    Ok(())
}

#[tokio::test]
async fn must_revalidate_forbids_serving_stale_on_error() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    let cc = "max-age=10, must-revalidate, stale-if-error=60";
    c.origin
        .on("/five", Answer::ok("old five").cache_control(cc));
    c.origin
        .on("/down", Answer::ok("old down").cache_control(cc));
    assert_stored(&c.get("/five").await?, "uri-miss");
    assert_stored(&c.get("/down").await?, "uri-miss");
    c.advance(20);

    // The origin's 5xx is passed on, not the stale body.
    c.origin.on("/five", Answer::status(503, "overloaded"));
    let r = c.get("/five").await?;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.text(), "overloaded");

    // A dead origin: the proxy's own gateway error (RFC 9111 §5.2.2.2 says 504; a proxy may
    // also report an unreachable origin as 502), never the stale body.
    c.origin.stop();
    let r = c.get("/down").await?;
    assert!(
        r.status == StatusCode::BAD_GATEWAY || r.status == StatusCode::GATEWAY_TIMEOUT,
        "must-revalidate with the origin down: {} {:?}",
        r.status,
        r.text()
    );
    assert_ne!(r.text(), "old down");
    // Every response of a cache-enabled site says what the cache did, errors included.
    let status = r.header("cache-status").unwrap_or_default();
    assert!(status.contains("detail=error"), "Cache-Status: {status:?}");
    Ok(())
}
