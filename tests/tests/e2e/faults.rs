//! Origin faults as the client and the metrics see them: refused connection → 502, no headers
//! in time → 504, reset mid-body → an aborted transfer, never a response that looks complete.

use std::time::Duration;

use http::StatusCode;
use portcullis_tests::client::{H1, H2, get};
use portcullis_tests::{Origin, Scrape, Site, TestProxy, body, canned, eventually};

use crate::{SHOP, shop};

fn upstream_errors(scrape: &Scrape, site: &str, kind: &str) -> anyhow::Result<f64> {
    scrape.get(
        "portcullis_upstream_errors_total",
        &[("site", site), ("kind", kind)],
    )
}

#[tokio::test]
async fn origin_down_is_502_and_counts_a_connect_error() -> anyhow::Result<()> {
    let dead = canned::closed_port()?;
    let proxy = TestProxy::new()
        .site(Site::new("shop", SHOP).origin_addr(dead))
        .start()
        .await?;
    let before = Scrape::fetch(proxy.admin()).await?;
    assert_eq!(upstream_errors(&before, "shop", "connect")?, 0.0);

    let reply = H1::connect(proxy.addr())
        .await?
        .request(get(SHOP, "/"))
        .await?;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let id = reply.header("x-request-id").unwrap_or_default().to_owned();
    assert!(!id.is_empty(), "error pages carry the request id");
    assert!(reply.text().contains(&id), "{}", reply.text());
    assert!(
        !reply.text().contains(&dead.to_string()),
        "origin addresses stay in the log: {}",
        reply.text()
    );

    let after = Scrape::fetch(proxy.admin()).await?;
    assert_eq!(upstream_errors(&after, "shop", "connect")?, 1.0);
    assert_eq!(
        after.get(
            "portcullis_requests_total",
            &[("site", "shop"), ("status_class", "5xx")]
        )?,
        1.0
    );
    Ok(())
}

#[tokio::test]
async fn slow_origin_is_504_after_the_response_timeout() -> anyhow::Result<()> {
    let origin = Origin::slow(Duration::from_secs(60)).start().await?;
    let proxy = TestProxy::new()
        .site(
            Site::new("shop", SHOP)
                .origin(&origin.url())
                .set("response_timeout", "200ms"),
        )
        .start()
        .await?;
    let reply = H1::connect(proxy.addr())
        .await?
        .request(get(SHOP, "/slow"))
        .await?;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(origin.requests(), 1);
    let scrape = Scrape::fetch(proxy.admin()).await?;
    assert_eq!(upstream_errors(&scrape, "shop", "timeout")?, 1.0);
    assert_eq!(upstream_errors(&scrape, "shop", "connect")?, 0.0);
    Ok(())
}

const ANNOUNCED: usize = 100_000;
const SENT: usize = 10_000;

#[tokio::test]
async fn origin_reset_mid_body_aborts_the_http1_transfer() -> anyhow::Result<()> {
    let origin = canned::reset_mid_body(ANNOUNCED, SENT).await?;
    let proxy = shop(&origin).start().await?;
    let mut client = H1::connect(proxy.addr()).await?;
    let resp = client.send(get(SHOP, "/cut")).await?;
    assert_eq!(resp.status(), StatusCode::OK, "headers came before the cut");
    let announced = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match body::count(resp.into_body()).await {
        Err((n, _)) => assert!(n < ANNOUNCED as u64, "{n} bytes"),
        Ok(n) => panic!(
            "the client saw a complete-looking response of {n} bytes \
             (content-length {announced:?}) although the origin sent only {SENT} of {ANNOUNCED}"
        ),
    }
    eventually("the aborted client connection is closed", || async {
        anyhow::ensure!(client.is_closed());
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn origin_reset_mid_body_aborts_the_h2_stream() -> anyhow::Result<()> {
    let origin = canned::reset_mid_body(ANNOUNCED, SENT).await?;
    let proxy = shop(&origin).start().await?;
    let client = H2::connect(proxy.addr()).await?;
    let resp = client.send(get(SHOP, "/cut")).await?;
    assert_eq!(resp.status(), StatusCode::OK, "headers came before the cut");
    match body::count(resp.into_body()).await {
        Err((n, _)) => assert!(n < ANNOUNCED as u64, "{n} bytes"),
        Ok(n) => panic!("the h2 stream ended cleanly after {n} of {ANNOUNCED} bytes"),
    }
    Ok(())
}

#[tokio::test]
async fn origin_reset_mid_body_counts_an_upstream_reset() -> anyhow::Result<()> {
    let origin = canned::reset_mid_body(ANNOUNCED, SENT).await?;
    let proxy = shop(&origin).start().await?;
    let resp = H1::connect(proxy.addr())
        .await?
        .send(get(SHOP, "/cut"))
        .await?;
    let _ = body::count(resp.into_body()).await;
    // The metric's own help text: reset = "the connection broke after the request was sent
    // (reset, closed mid-response)".
    eventually(
        "upstream_errors_total{kind=reset} counts the cut body",
        || async {
            let scrape = Scrape::fetch(proxy.admin()).await?;
            let n = upstream_errors(&scrape, "shop", "reset")?;
            anyhow::ensure!(n == 1.0, "kind=reset is {n}");
            Ok(())
        },
    )
    .await
}
