//! `POST /admin/purge`: by URL (every variant, scheme ignored), by host, everything; the count
//! in the answer; the bearer token and a well-formed body required.

use http::StatusCode;
use portcullis_tests::cache::{Answer, purge, purged};

use super::{Cached, OTHER, TOKEN, assert_hit, assert_stored};
use crate::SHOP;

async fn store(c: &Cached, host: &str, path: &str) -> anyhow::Result<()> {
    c.origin.on(
        path,
        Answer::ok(format!("{host}{path}")).cache_control("max-age=600"),
    );
    assert_stored(&c.get_from(host, path).await?, "uri-miss");
    Ok(())
}

#[tokio::test]
async fn purge_by_url_removes_every_variant_of_that_url_only() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin.on_request("/v?b=1", |req| {
        Answer::ok(format!("{:?}", req.header("accept-encoding")))
            .cache_control("max-age=600")
            .header("vary", "Accept-Encoding")
    });
    for enc in ["gzip", "identity"] {
        c.get_with("/v?b=1", &[("accept-encoding", enc)]).await?;
    }
    store(&c, SHOP, "/v?b=2").await?;
    store(&c, SHOP, "/w").await?;
    store(&c, OTHER, "/v?b=1-other").await?;

    let admin = c.proxy.admin();
    assert_eq!(
        purged(admin, TOKEN, &format!(r#"{{"url":"http://{SHOP}/v?b=1"}}"#)).await?,
        2,
        "both variants"
    );
    let r = c.get_with("/v?b=1", &[("accept-encoding", "gzip")]).await?;
    assert_stored(&r, "uri-miss");
    assert_hit(&c.get("/v?b=2").await?);
    assert_hit(&c.get("/w").await?);
    // The scheme is ignored.
    assert_eq!(
        purged(admin, TOKEN, &format!(r#"{{"url":"https://{SHOP}/w"}}"#)).await?,
        1
    );
    assert_stored(&c.get("/w").await?, "uri-miss");
    // Nothing stored there: nothing purged.
    assert_eq!(
        purged(admin, TOKEN, &format!(r#"{{"url":"http://{SHOP}/never"}}"#)).await?,
        0
    );
    assert_hit(&c.get_from(OTHER, "/v?b=1-other").await?);
    Ok(())
}

#[tokio::test]
async fn purge_by_host_removes_that_host_only() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    store(&c, SHOP, "/a").await?;
    store(&c, SHOP, "/b").await?;
    store(&c, OTHER, "/c").await?;
    let n = purged(c.proxy.admin(), TOKEN, &format!(r#"{{"host":"{SHOP}"}}"#)).await?;
    assert_eq!(n, 2);
    assert_stored(&c.get("/a").await?, "uri-miss");
    assert_stored(&c.get("/b").await?, "uri-miss");
    assert_hit(&c.get_from(OTHER, "/c").await?);
    Ok(())
}

#[tokio::test]
async fn purge_all_removes_everything() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    store(&c, SHOP, "/a").await?;
    store(&c, SHOP, "/b").await?;
    store(&c, OTHER, "/c").await?;
    let admin = c.proxy.admin();
    assert_eq!(purged(admin, TOKEN, r#"{"all":true}"#).await?, 3);
    assert_eq!(purged(admin, TOKEN, r#"{"all":true}"#).await?, 0);
    assert_stored(&c.get("/a").await?, "uri-miss");
    assert_stored(&c.get_from(OTHER, "/c").await?, "uri-miss");
    Ok(())
}

#[tokio::test]
async fn purge_needs_the_token_and_exactly_one_valid_key() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    store(&c, SHOP, "/a").await?;
    let admin = c.proxy.admin();
    let all = r#"{"all":true}"#;
    for token in [None, Some("wrong")] {
        let (status, _) = purge(admin, token, all).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "token {token:?}");
    }
    for bad in [
        "",
        "not json",
        "{}",
        "[]",
        r#"{"all":false}"#,
        r#"{"url":42}"#,
        r#"{"url":"not a url"}"#,
        r#"{"nope":true}"#,
        r#"{"url":"http://shop.example/a","host":"shop.example"}"#,
        r#"{"host":"shop.example","all":true}"#,
    ] {
        let (status, text) = purge(admin, Some(TOKEN), bad).await?;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?} answered {text}");
        assert!(!text.trim().is_empty(), "a 400 says why: {bad:?}");
    }
    assert_hit(&c.get("/a").await?);
    assert_eq!(c.origin.requests("/a"), 1, "nothing was purged");
    Ok(())
}
