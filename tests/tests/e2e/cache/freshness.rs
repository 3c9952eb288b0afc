//! Where freshness comes from (RFC 9111 §4.2): `s-maxage` over `max-age` over `Expires - Date`,
//! a heuristic from `Last-Modified`; and `Age`, ours and the origin's. Each source is followed
//! past its end by moving the cache clock, after which the origin is asked again.

use portcullis_tests::cache::{Answer, http_date};

use super::{
    Cached, ago, assert_age, assert_hit, assert_refetched, assert_stored, assert_ttl, later,
};

#[tokio::test]
async fn s_maxage_wins_over_max_age() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin.on(
        "/long",
        Answer::ok("long").cache_control("max-age=10, s-maxage=100"),
    );
    c.origin.on(
        "/short",
        Answer::ok("short").cache_control("max-age=100, s-maxage=10"),
    );
    assert_eq!(
        assert_stored(&c.get("/long").await?, "uri-miss").ttl,
        Some(100)
    );
    assert_eq!(
        assert_stored(&c.get("/short").await?, "uri-miss").ttl,
        Some(10)
    );
    c.advance(50);
    assert_ttl(&assert_hit(&c.get("/long").await?), 50);
    assert_refetched(&c.get("/short").await?);
    assert_eq!(c.origin.requests("/long"), 1);
    assert_eq!(c.origin.requests("/short"), 2);
    c.advance(60);
    assert_refetched(&c.get("/long").await?);
    assert_eq!(c.origin.requests("/long"), 2);
    Ok(())
}

#[tokio::test]
async fn max_age_wins_over_expires() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    let now = c.now();
    c.origin.on(
        "/a",
        Answer::ok("a")
            .cache_control("max-age=100")
            .date(now)
            .header("expires", http_date(later(now, 10))),
    );
    assert_eq!(
        assert_stored(&c.get("/a").await?, "uri-miss").ttl,
        Some(100)
    );
    c.advance(50);
    assert_hit(&c.get("/a").await?);
    assert_eq!(c.origin.requests("/a"), 1);
    c.advance(60);
    assert_refetched(&c.get("/a").await?);
    assert_eq!(c.origin.requests("/a"), 2);
    Ok(())
}

#[tokio::test]
async fn expires_minus_date_is_the_lifetime() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    let now = c.now();
    // Sent 30 s ago by the origin's clock, expiring 100 s after that: a lifetime of 100 of
    // which 30 are gone (not 70 from now, not 100 from now).
    let date = ago(now, 30);
    c.origin.on(
        "/a",
        Answer::ok("a")
            .date(date)
            .header("expires", http_date(later(date, 100))),
    );
    assert_eq!(
        assert_stored(&c.get("/a").await?, "uri-miss").ttl,
        Some(100)
    );
    let hit = c.get("/a").await?;
    assert_ttl(&assert_hit(&hit), 70);
    assert_age(&hit, 30);
    c.advance(60);
    assert_ttl(&assert_hit(&c.get("/a").await?), 10);
    assert_eq!(c.origin.requests("/a"), 1);
    c.advance(20);
    assert_refetched(&c.get("/a").await?);
    assert_eq!(c.origin.requests("/a"), 2);
    Ok(())
}

#[tokio::test]
async fn heuristic_freshness_is_the_configured_fraction_of_the_last_modified_age()
-> anyhow::Result<()> {
    // 0.5 rather than the default 0.1, so the configured value is what the test sees.
    let c = Cached::with(|p| p.cache("heuristic_fraction", "0.5")).await?;
    let now = c.now();
    // Modified 200 s before it was sent: 0.5 * 200 = 100 s fresh.
    c.origin
        .on("/a", Answer::ok("a").date(now).last_modified(ago(now, 200)));
    assert_eq!(
        assert_stored(&c.get("/a").await?, "uri-miss").ttl,
        Some(100)
    );
    c.advance(90);
    assert_ttl(&assert_hit(&c.get("/a").await?), 10);
    assert_eq!(c.origin.requests("/a"), 1);
    c.advance(20);
    let r = c.get("/a").await?;
    let s = super::cache_status(&r);
    assert!(
        !s.hit && s.fwd_is("stale"),
        "stale after 110 s of a 100 s heuristic lifetime: `{}`",
        s.raw
    );
    assert_eq!(c.origin.requests("/a"), 2);
    Ok(())
}

#[tokio::test]
async fn age_is_sent_on_hits_and_grows_with_the_clock() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin
        .on("/a", Answer::ok("a").cache_control("max-age=100"));
    assert_stored(&c.get("/a").await?, "uri-miss");
    let hit = c.get("/a").await?;
    assert_hit(&hit);
    assert_age(&hit, 0);
    c.advance(10);
    let hit = c.get("/a").await?;
    assert_age(&hit, 10);
    assert_ttl(&assert_hit(&hit), 90);
    c.advance(20);
    let hit = c.get("/a").await?;
    assert_age(&hit, 30);
    assert_ttl(&assert_hit(&hit), 70);
    assert_eq!(c.origin.requests("/a"), 1);
    Ok(())
}

#[tokio::test]
async fn an_age_from_the_origin_counts() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    // Already 30 s old when it arrives (it came through another cache): 30 of 60 s left.
    c.origin.on(
        "/a",
        Answer::ok("a")
            .cache_control("max-age=60")
            .header("age", "30"),
    );
    c.get("/a").await?;
    let hit = c.get("/a").await?;
    assert_age(&hit, 30);
    assert_ttl(&assert_hit(&hit), 30);
    c.advance(20);
    assert_age(&c.get("/a").await?, 50);
    assert_eq!(c.origin.requests("/a"), 1);
    // 40 s on the clock + 30 s of origin Age > 60 s: stale, while max-age alone would not be.
    c.advance(20);
    let r = c.get("/a").await?;
    let s = super::cache_status(&r);
    assert!(!s.hit && s.fwd_is("stale"), "`{}`", s.raw);
    assert_eq!(c.origin.requests("/a"), 2);
    Ok(())
}
