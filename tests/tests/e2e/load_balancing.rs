//! Several origins per site: round robin, passive health (a refusing origin is marked down and
//! skipped) and the retry of a request that never left.

use http::StatusCode;
use portcullis_tests::client::{H1, get, request};
use portcullis_tests::{Origin, Scrape, Site, TestProxy, body, canned};

use crate::SHOP;

fn connect_errors(scrape: &Scrape) -> anyhow::Result<f64> {
    scrape.get(
        "portcullis_upstream_errors_total",
        &[("site", "shop"), ("kind", "connect")],
    )
}

#[tokio::test]
async fn round_robin_alternates_between_origins() -> anyhow::Result<()> {
    let a = Origin::echo().named("a").start().await?;
    let b = Origin::echo().named("b").start().await?;
    let proxy = TestProxy::new()
        .site(Site::new("shop", SHOP).origin(&a.url()).origin(&b.url()))
        .start()
        .await?;
    let mut client = H1::connect(proxy.addr()).await?;
    let mut seen = Vec::new();
    for i in 0..10 {
        let reply = client.request(get(SHOP, &format!("/{i}"))).await?;
        assert_eq!(reply.status, StatusCode::OK);
        seen.push(reply.header("x-origin").unwrap_or("?").to_owned());
    }
    for pair in seen.windows(2) {
        assert_ne!(pair[0], pair[1], "requests alternate: {seen:?}");
    }
    assert_eq!((a.requests(), b.requests()), (5, 5));
    Ok(())
}

#[tokio::test]
async fn refusing_origin_is_skipped_and_marked_down() -> anyhow::Result<()> {
    let dead = canned::closed_port()?;
    let live = Origin::echo().named("live").start().await?;
    let proxy = TestProxy::new()
        .site(
            Site::new("shop", SHOP)
                .origin_addr(dead)
                .origin(&live.url())
                .set("origin_down_for", "60s"),
        )
        .start()
        .await?;
    let mut client = H1::connect(proxy.addr()).await?;
    for i in 0..10 {
        let reply = client.request(get(SHOP, &format!("/{i}"))).await?;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "request {i}: {}",
            reply.text()
        );
        assert_eq!(reply.header("x-origin"), Some("live"));
    }
    assert_eq!(live.requests(), 10);
    let scrape = Scrape::fetch(proxy.admin()).await?;
    assert_eq!(
        connect_errors(&scrape)?,
        1.0,
        "after one refused connect the dead origin is skipped while marked down"
    );
    Ok(())
}

#[tokio::test]
async fn post_survives_a_connect_failure() -> anyhow::Result<()> {
    // The first pick of a fresh proxy is the first origin: the dead one.
    let dead = canned::closed_port()?;
    let live = Origin::echo().start().await?;
    let proxy = TestProxy::new()
        .site(
            Site::new("shop", SHOP)
                .origin_addr(dead)
                .origin(&live.url()),
        )
        .start()
        .await?;
    let req = request("POST", SHOP, "/orders")
        .header("content-type", "application/json")
        .body(body::full(r#"{"order":1}"#))?;
    let reply = H1::connect(proxy.addr()).await?.request(req).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seen = reply.echoed()?;
    assert_eq!(seen.method, "POST");
    assert_eq!(
        seen.body, r#"{"order":1}"#,
        "nothing was lost on the failed try"
    );
    let scrape = Scrape::fetch(proxy.admin()).await?;
    assert_eq!(
        connect_errors(&scrape)?,
        1.0,
        "the dead origin was tried first"
    );
    Ok(())
}
