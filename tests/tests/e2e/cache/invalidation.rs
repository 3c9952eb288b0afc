//! Invalidation by unsafe methods (RFC 9111 §4.4): a successful `POST` invalidates its URL and
//! the same-host URLs in its `Location` and `Content-Location`; other hosts' URLs and failed
//! requests invalidate nothing.

use portcullis_tests::body;
use portcullis_tests::cache::Answer;
use portcullis_tests::client::request;

use super::{Cached, OTHER, assert_hit, assert_not_hit, assert_stored};
use crate::SHOP;

/// Stores `path` of `host` (max-age=600).
async fn store(c: &Cached, host: &str, path: &str) -> anyhow::Result<()> {
    c.origin.on(
        path,
        Answer::ok(format!("{host}{path}")).cache_control("max-age=600"),
    );
    assert_stored(&c.get_from(host, path).await?, "uri-miss");
    assert_hit(&c.get_from(host, path).await?);
    Ok(())
}

async fn post(c: &Cached, path: &str) -> anyhow::Result<()> {
    c.send(request("POST", SHOP, path).body(body::full("x=1"))?)
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_post_invalidates_its_url() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    store(&c, SHOP, "/a").await?;
    c.origin.on_method("POST", "/a", Answer::ok("posted"));
    post(&c, "/a").await?;
    // Removed or marked invalid (RFC 9111 §4.4 allows either): the origin answers.
    assert_not_hit(&c.get("/a").await?);
    assert_eq!(c.origin.requests_with("GET", "/a"), 2);
    Ok(())
}

#[tokio::test]
async fn a_failed_post_invalidates_nothing() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    store(&c, SHOP, "/a").await?;
    c.origin
        .on_method("POST", "/a", Answer::status(500, "failed"));
    post(&c, "/a").await?;
    assert_hit(&c.get("/a").await?);
    assert_eq!(c.origin.requests_with("GET", "/a"), 1);
    Ok(())
}

#[tokio::test]
async fn location_and_content_location_of_the_same_host_are_invalidated() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    store(&c, SHOP, "/b").await?;
    store(&c, SHOP, "/c").await?;
    store(&c, OTHER, "/d").await?;

    c.origin.on_method(
        "POST",
        "/form",
        Answer::status(201, "created")
            .header("location", "/b")
            .header("content-location", format!("http://{SHOP}/c")),
    );
    post(&c, "/form").await?;
    assert_not_hit(&c.get("/b").await?);
    assert_not_hit(&c.get("/c").await?);

    // Another host's URL, even one the same site serves, is not invalidated by shop's POST.
    c.origin.on_method(
        "POST",
        "/form2",
        Answer::status(303, "")
            .header("location", format!("http://{OTHER}/d"))
            .header("content-location", format!("http://{OTHER}/d")),
    );
    post(&c, "/form2").await?;
    assert_hit(&c.get_from(OTHER, "/d").await?);
    assert_eq!(c.origin.requests_with("GET", "/b"), 2);
    assert_eq!(c.origin.requests_with("GET", "/c"), 2);
    assert_eq!(c.origin.requests_with("GET", "/d"), 1);
    Ok(())
}
