//! What a client may ask of the cache (RFC 9111 §5.2.1): forced validation (`no-cache`,
//! `max-age=0`, `Pragma: no-cache`), `max-stale`, `min-fresh`, `only-if-cached`; and
//! `CDN-Cache-Control` taking precedence over `Cache-Control` (RFC 9213).

use http::StatusCode;
use portcullis_tests::cache::Answer;

use super::{Cached, assert_hit, assert_not_stored, assert_stored, assert_ttl, cache_status};

/// Stores `/a` (ETag `"v1"`, answering conditionals), then sends it with `header: value` and
/// checks the cache validated with the origin before answering from storage.
async fn forces_validation(header: &str, value: &str) -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin.on(
        "/a",
        Answer::ok("stored body")
            .cache_control("max-age=600")
            .etag("\"v1\"")
            .conditional(),
    );
    assert_stored(&c.get("/a").await?, "uri-miss");
    let r = c.get_with("/a", &[(header, value)]).await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "stored body");
    let s = cache_status(&r);
    assert!(
        !s.hit && s.fwd_is("request"),
        "{header}: {value} is a forced validation (`fwd=request`): `{}`",
        s.raw
    );
    assert_eq!(
        c.origin.requests("/a"),
        2,
        "{header}: {value} reached the origin"
    );
    let seen = c.origin.last_seen("/a").expect("seen");
    assert_eq!(
        seen.header("if-none-match"),
        Some("\"v1\""),
        "validated with the stored ETag"
    );
    Ok(())
}

#[tokio::test]
async fn request_no_cache_forces_validation() -> anyhow::Result<()> {
    forces_validation("cache-control", "no-cache").await
}

#[tokio::test]
async fn request_max_age_0_forces_validation() -> anyhow::Result<()> {
    forces_validation("cache-control", "max-age=0").await
}

#[tokio::test]
async fn pragma_no_cache_forces_validation() -> anyhow::Result<()> {
    forces_validation("pragma", "no-cache").await
}

#[tokio::test]
async fn max_stale_accepts_a_stale_response_within_its_bound() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin
        .on("/a", Answer::ok("old").cache_control("max-age=10"));
    c.get("/a").await?;
    c.advance(30); // 20 s stale
    for accept in ["max-stale=60", "max-stale"] {
        let r = c.get_with("/a", &[("cache-control", accept)]).await?;
        assert_eq!(r.text(), "old", "{accept}");
        // Assumption: a stale response the client accepted is reported as a hit.
        assert!(cache_status(&r).hit, "{accept}: `{}`", cache_status(&r).raw);
        assert_eq!(
            c.origin.requests("/a"),
            1,
            "{accept}: served without the origin"
        );
    }
    let r = c
        .get_with("/a", &[("cache-control", "max-stale=5")])
        .await?;
    assert!(!cache_status(&r).hit, "20 s stale is more than max-stale=5");
    assert_eq!(c.origin.requests("/a"), 2);
    Ok(())
}

#[tokio::test]
async fn min_fresh_wants_that_much_freshness_left() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin
        .on("/a", Answer::ok("a").cache_control("max-age=60"));
    c.get("/a").await?;
    c.advance(30); // 30 s left
    assert_hit(
        &c.get_with("/a", &[("cache-control", "min-fresh=10")])
            .await?,
    );
    assert_eq!(c.origin.requests("/a"), 1);
    let r = c
        .get_with("/a", &[("cache-control", "min-fresh=40")])
        .await?;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!cache_status(&r).hit, "30 s left is less than min-fresh=40");
    assert_eq!(c.origin.requests("/a"), 2);
    Ok(())
}

#[tokio::test]
async fn only_if_cached_gets_504_on_a_miss_and_the_stored_response_on_a_hit() -> anyhow::Result<()>
{
    let c = Cached::start().await?;
    c.origin
        .on("/a", Answer::ok("a").cache_control("max-age=60"));
    let miss = c
        .get_with("/a", &[("cache-control", "only-if-cached")])
        .await?;
    assert_eq!(miss.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        cache_status(&miss).raw,
        "portcullis; fwd=uri-miss; detail=only-if-cached"
    );
    assert_eq!(
        c.origin.total(),
        0,
        "only-if-cached never reaches the origin"
    );
    c.get("/a").await?;
    let hit = c
        .get_with("/a", &[("cache-control", "only-if-cached")])
        .await?;
    assert_eq!(hit.status, StatusCode::OK);
    assert_eq!(hit.text(), "a");
    assert_hit(&hit);
    assert_eq!(c.origin.requests("/a"), 1);
    Ok(())
}

#[tokio::test]
async fn cdn_cache_control_takes_precedence_over_cache_control() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin.on(
        "/longer",
        Answer::ok("longer")
            .cache_control("max-age=5")
            .header("cdn-cache-control", "max-age=100"),
    );
    c.origin.on(
        "/unstored",
        Answer::ok("unstored")
            .cache_control("max-age=100")
            .header("cdn-cache-control", "no-store"),
    );
    assert_eq!(
        assert_stored(&c.get("/longer").await?, "uri-miss").ttl,
        Some(100)
    );
    c.advance(50);
    assert_ttl(&assert_hit(&c.get("/longer").await?), 50);
    assert_eq!(c.origin.requests("/longer"), 1);

    assert_not_stored(&c.get("/unstored").await?, "no-store");
    assert_not_stored(&c.get("/unstored").await?, "no-store");
    assert_eq!(c.origin.requests("/unstored"), 2);
    Ok(())
}
