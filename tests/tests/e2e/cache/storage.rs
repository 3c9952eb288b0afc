//! What is stored and what is not (RFC 9111 §3): each rule once, told apart by the origin's
//! request count and by the `Cache-Status` reason. Also: an HTTP/2 client hits like an HTTP/1.1
//! one.

use http::StatusCode;
use portcullis_tests::body;
use portcullis_tests::cache::{Answer, age};
use portcullis_tests::client::{H2, get, request};

use super::{Cached, ago, assert_hit, assert_not_stored, assert_stored, assert_ttl, cache_status};
use crate::SHOP;

#[tokio::test]
async fn a_fresh_response_is_stored_and_the_next_request_hits() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin
        .on("/a", Answer::ok("first body").cache_control("max-age=60"));
    let first = c.get("/a").await?;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.text(), "first body");
    assert_eq!(
        cache_status(&first).raw,
        "portcullis; fwd=uri-miss; stored; ttl=60",
        "the contract's exact form of a stored miss"
    );
    let second = c.get("/a").await?;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.text(), "first body");
    assert_eq!(second.header("cache-control"), Some("max-age=60"));
    assert_ttl(&assert_hit(&second), 60);
    assert_eq!(
        c.origin.requests("/a"),
        1,
        "the hit never reached the origin"
    );
    Ok(())
}

#[tokio::test]
async fn no_store_in_the_response_is_not_stored() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin
        .on("/a", Answer::ok("secret").cache_control("no-store"));
    assert_not_stored(&c.get("/a").await?, "no-store");
    assert_not_stored(&c.get("/a").await?, "no-store");
    assert_eq!(c.origin.requests("/a"), 2);
    Ok(())
}

#[tokio::test]
async fn no_store_in_the_request_is_not_stored() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin
        .on("/a", Answer::ok("body").cache_control("max-age=60"));
    let first = c.get_with("/a", &[("cache-control", "no-store")]).await?;
    assert_eq!(first.text(), "body");
    assert_not_stored(&first, "no-store");
    // Nothing was kept: the next ordinary request is a miss (and is stored).
    assert_stored(&c.get("/a").await?, "uri-miss");
    assert_eq!(c.origin.requests("/a"), 2);
    Ok(())
}

#[tokio::test]
async fn private_is_not_stored() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin.on(
        "/me",
        Answer::ok("mine").cache_control("private, max-age=60"),
    );
    assert_not_stored(&c.get("/me").await?, "private");
    assert_not_stored(&c.get("/me").await?, "private");
    assert_eq!(c.origin.requests("/me"), 2);
    Ok(())
}

#[tokio::test]
async fn a_response_to_an_authorized_request_is_not_stored() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin.on(
        "/account",
        Answer::ok("account").cache_control("max-age=60"),
    );
    let auth = [("authorization", "Bearer alice")];
    assert_not_stored(&c.get_with("/account", &auth).await?, "authorization");
    assert_not_stored(&c.get_with("/account", &auth).await?, "authorization");
    assert_eq!(c.origin.requests("/account"), 2);
    Ok(())
}

#[tokio::test]
async fn public_s_maxage_or_must_revalidate_allow_storing_an_authorized_response()
-> anyhow::Result<()> {
    let c = Cached::start().await?;
    let auth = [("authorization", "Bearer alice")];
    for (i, cc) in [
        "public, max-age=60",
        "s-maxage=60",
        "max-age=60, must-revalidate",
    ]
    .into_iter()
    .enumerate()
    {
        let path = format!("/shared-{i}");
        c.origin.on(&path, Answer::ok(cc).cache_control(cc));
        assert_stored(&c.get_with(&path, &auth).await?, "uri-miss");
        let hit = c.get_with(&path, &auth).await?;
        assert_hit(&hit);
        assert_eq!(hit.text(), cc);
        assert_eq!(c.origin.requests(&path), 1, "{cc}");
    }
    Ok(())
}

#[tokio::test]
async fn a_404_is_stored_by_heuristic_but_a_302_without_freshness_is_not() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    let now = c.now();
    // Neither has explicit freshness; both have a Last-Modified to base a heuristic on. 404 is
    // heuristically cacheable (RFC 9110 §15.1), 302 is not.
    c.origin.on(
        "/gone",
        Answer::status(404, "not here")
            .date(now)
            .last_modified(ago(now, 1000)),
    );
    c.origin.on(
        "/moved",
        Answer::status(302, "")
            .header("location", "/elsewhere")
            .date(now)
            .last_modified(ago(now, 1000)),
    );
    let first = c.get("/gone").await?;
    assert_eq!(first.status, StatusCode::NOT_FOUND);
    assert_stored(&first, "uri-miss");
    let second = c.get("/gone").await?;
    assert_eq!(second.status, StatusCode::NOT_FOUND);
    assert_eq!(second.text(), "not here");
    assert_hit(&second);
    assert_eq!(c.origin.requests("/gone"), 1);

    for _ in 0..2 {
        let r = c.get("/moved").await?;
        assert_eq!(r.status, StatusCode::FOUND);
        assert_eq!(r.header("location"), Some("/elsewhere"));
        let s = cache_status(&r);
        // Assumption: the contract lists both `status` and `no-freshness`; either names this.
        assert!(
            !s.hit
                && s.fwd_is("uri-miss")
                && !s.stored
                && (s.detail_is("status") || s.detail_is("no-freshness")),
            "a 302 without freshness is not stored: `{}`",
            s.raw
        );
    }
    assert_eq!(c.origin.requests("/moved"), 2);
    Ok(())
}

/// RFC 9111 §7.3: `Set-Cookie` does not inhibit caching when the origin says the response is
/// fresh; our rule stores it only with explicit freshness (or `public`), never on heuristic
/// freshness alone, and strips it when a qualified `no-cache` names it.
#[tokio::test]
async fn set_cookie_is_stored_only_with_explicit_freshness() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    let last_modified = ago(c.origin.now(), 3600 * 24 * 30);
    c.origin.on(
        "/login",
        Answer::ok("welcome")
            .last_modified(last_modified)
            .header("set-cookie", "session=abc; HttpOnly"),
    );
    for _ in 0..2 {
        let r = c.get("/login").await?;
        assert_not_stored(&r, "set-cookie");
        assert_eq!(r.header("set-cookie"), Some("session=abc; HttpOnly"));
    }
    assert_eq!(
        c.origin.requests("/login"),
        2,
        "heuristic freshness is not enough: every cookie comes from the origin"
    );
    c.origin.on(
        "/banner",
        Answer::ok("banner")
            .cache_control("max-age=60")
            .header("set-cookie", "seen=1"),
    );
    assert_stored(&c.get("/banner").await?, "uri-miss");
    let r = c.get("/banner").await?;
    assert_hit(&r);
    assert_eq!(r.header("set-cookie"), Some("seen=1"), "stored as sent");
    c.origin.on(
        "/stripped",
        Answer::ok("stripped")
            .cache_control("max-age=60, no-cache=\"set-cookie\"")
            .header("set-cookie", "session=xyz"),
    );
    let r = c.get("/stripped").await?;
    assert_eq!(
        r.header("set-cookie"),
        Some("session=xyz"),
        "the first client gets it"
    );
    let r = c.get("/stripped").await?;
    assert_hit(&r);
    assert_eq!(r.header("set-cookie"), None, "never replayed from storage");
    assert_eq!(c.origin.requests("/stripped"), 1);
    Ok(())
}

#[tokio::test]
async fn unsafe_methods_bypass_and_ranges_are_served_from_storage() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin.on_method(
        "POST",
        "/form",
        Answer::ok("posted").cache_control("max-age=60"),
    );
    c.origin.on(
        "/file",
        Answer::ok("0123456789").cache_control("max-age=60"),
    );
    for _ in 0..2 {
        let r = c
            .send(request("POST", SHOP, "/form").body(body::full("x=1"))?)
            .await?;
        assert_eq!(r.text(), "posted");
        assert_eq!(cache_status(&r).raw, "portcullis; fwd=bypass");
    }
    assert_eq!(c.origin.requests_with("POST", "/form"), 2);

    // A Range request for a URL not stored goes to the origin as it is.
    let ranged = c.get_with("/file", &[("range", "bytes=0-3")]).await?;
    assert_eq!(cache_status(&ranged).raw, "portcullis; fwd=bypass");
    assert_eq!(c.origin.requests("/file"), 1);
    assert_stored(&c.get("/file").await?, "uri-miss");
    // Stored and fresh: ranges come from storage (RFC 9110 §14).
    let ranged = c.get_with("/file", &[("range", "bytes=2-5")]).await?;
    assert_eq!(ranged.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.text(), "2345");
    assert_eq!(ranged.header("content-range"), Some("bytes 2-5/10"));
    assert_eq!(ranged.header("content-length"), Some("4"));
    assert_hit(&ranged);
    let suffix = c.get_with("/file", &[("range", "bytes=-3")]).await?;
    assert_eq!(suffix.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(suffix.text(), "789");
    let beyond = c.get_with("/file", &[("range", "bytes=10-")]).await?;
    assert_eq!(beyond.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(beyond.header("content-range"), Some("bytes */10"));
    // Several ranges: the whole response (a server may ignore Range).
    let several = c.get_with("/file", &[("range", "bytes=0-1,4-5")]).await?;
    assert_eq!(several.status, StatusCode::OK);
    assert_eq!(several.text(), "0123456789");
    assert_eq!(
        c.origin.requests("/file"),
        2,
        "every range of the stored URL came from storage"
    );
    Ok(())
}

#[tokio::test]
async fn an_http2_client_hits_like_an_http1_client() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin.on(
        "/h1",
        Answer::ok("stored over h1").cache_control("max-age=60"),
    );
    c.origin.on(
        "/h2",
        Answer::ok("stored over h2").cache_control("max-age=60"),
    );
    let h2 = H2::connect(c.proxy.addr()).await?;

    assert_stored(&c.get("/h1").await?, "uri-miss");
    let hit = h2.request(get(SHOP, "/h1")).await?;
    assert_eq!(hit.version, http::Version::HTTP_2);
    assert_eq!(hit.text(), "stored over h1");
    assert_hit(&hit);

    let first = h2.request(get(SHOP, "/h2")).await?;
    assert_eq!(first.version, http::Version::HTTP_2);
    assert_stored(&first, "uri-miss");
    let again = h2.request(get(SHOP, "/h2")).await?;
    assert_hit(&again);
    assert!(age(&again).is_some());
    assert_hit(&c.get("/h2").await?);

    assert_eq!(c.origin.requests("/h1"), 1);
    assert_eq!(c.origin.requests("/h2"), 1);
    Ok(())
}

/// RFC 9110 §13.1.5: `If-Range` with the stored entity tag (strong comparison) or the exact
/// `Last-Modified` gets the range; anything else gets the whole current response.
#[tokio::test]
async fn if_range_gets_the_range_only_for_the_stored_validator() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin.on(
        "/doc",
        Answer::ok("abcdefghij")
            .cache_control("max-age=60")
            .etag("\"v1\""),
    );
    assert_stored(&c.get("/doc").await?, "uri-miss");
    let same = c
        .get_with("/doc", &[("range", "bytes=0-2"), ("if-range", "\"v1\"")])
        .await?;
    assert_eq!(same.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(same.text(), "abc");
    for other in ["\"v0\"", "W/\"v1\"", "Tue, 01 Jan 2030 00:00:00 GMT"] {
        let whole = c
            .get_with("/doc", &[("range", "bytes=0-2"), ("if-range", other)])
            .await?;
        assert_eq!(whole.status, StatusCode::OK, "If-Range: {other}");
        assert_eq!(whole.text(), "abcdefghij");
    }
    assert_eq!(c.origin.requests("/doc"), 1);
    Ok(())
}
