//! `Vary` (RFC 9111 §4.1): one stored response per variant of the named request headers, other
//! headers not splitting the key, and `Vary: *` never matching.

use portcullis_tests::cache::Answer;

use super::{Cached, assert_hit, assert_not_stored, assert_stored};

/// `/v` answers by `Accept-Encoding`, and says so.
fn by_encoding(c: &Cached) {
    c.origin.on_request("/v", |req| {
        let body = match req.header("accept-encoding") {
            Some("gzip") => "gzip variant",
            _ => "identity variant",
        };
        Answer::ok(body)
            .cache_control("max-age=60")
            .header("vary", "Accept-Encoding")
    });
}

#[tokio::test]
async fn two_variants_by_accept_encoding_are_both_stored_and_served() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    by_encoding(&c);
    let gzip = [("accept-encoding", "gzip")];
    let identity = [("accept-encoding", "identity")];

    let r = c.get_with("/v", &gzip).await?;
    assert_eq!(r.text(), "gzip variant");
    assert_stored(&r, "uri-miss");
    let r = c.get_with("/v", &identity).await?;
    assert_eq!(r.text(), "identity variant");
    assert_stored(&r, "vary-miss");

    for _ in 0..2 {
        let r = c.get_with("/v", &gzip).await?;
        assert_eq!(r.text(), "gzip variant");
        assert_hit(&r);
        let r = c.get_with("/v", &identity).await?;
        assert_eq!(r.text(), "identity variant");
        assert_hit(&r);
    }
    assert_eq!(c.origin.requests("/v"), 2, "one origin request per variant");
    Ok(())
}

#[tokio::test]
async fn a_header_not_named_by_vary_does_not_split_the_variants() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    by_encoding(&c);
    let first = c
        .get_with(
            "/v",
            &[("accept-encoding", "gzip"), ("user-agent", "browser-a")],
        )
        .await?;
    assert_stored(&first, "uri-miss");
    let second = c
        .get_with(
            "/v",
            &[("accept-encoding", "gzip"), ("user-agent", "browser-b")],
        )
        .await?;
    assert_eq!(second.text(), "gzip variant");
    assert_hit(&second);
    assert_eq!(c.origin.requests("/v"), 1);
    Ok(())
}

#[tokio::test]
async fn vary_star_never_hits() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin.on(
        "/any",
        Answer::ok("anything")
            .cache_control("max-age=60")
            .header("vary", "*"),
    );
    for _ in 0..3 {
        assert_not_stored(&c.get("/any").await?, "vary-star");
    }
    assert_eq!(c.origin.requests("/any"), 3);
    Ok(())
}
