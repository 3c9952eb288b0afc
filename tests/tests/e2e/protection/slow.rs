//! Slow clients: a request head that never completes (`header_read_timeout`) and a request
//! body slower than `limits.min_body_rate`, on HTTP/1.1 and HTTP/2; both counted as
//! `reason="slow"`.

use http::StatusCode;
use portcullis_tests::client::{H2, request};
use portcullis_tests::protection::stalled_body;
use portcullis_tests::{Origin, RawConn};

use super::{BOUND, from, rejected_at_least};
use crate::{SHOP, shop};

#[tokio::test]
async fn a_slow_request_head_is_cut_and_counted() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin)
        .limit("header_read_timeout", "300ms")
        .start()
        .await?;
    let mut slow = RawConn::connect_from(from(60), proxy.addr()).await?;
    slow.write(format!("GET / HTTP/1.1\r\nHost: {SHOP}\r\nX-Slow: ").as_bytes())
        .await?;
    assert!(
        slow.closed_within(BOUND).await?,
        "a half-sent head must be cut"
    );
    rejected_at_least(&proxy, "-", "slow", 1.0).await?;
    assert_eq!(origin.requests(), 0);
    Ok(())
}

#[tokio::test]
async fn a_slow_http1_body_is_cut_with_408() -> anyhow::Result<()> {
    let origin = Origin::count_upload().start().await?;
    let proxy = shop(&origin)
        .limit("min_body_rate", "\"1KiB/s\"")
        .limit("min_body_rate_grace", "300ms")
        .start()
        .await?;
    let mut slow = RawConn::connect_from(from(61), proxy.addr()).await?;
    // 100 kB announced, 10 bytes sent, then silence.
    slow.write(
        format!(
            "POST /upload HTTP/1.1\r\nHost: {SHOP}\r\nContent-Length: 100000\r\n\r\n0123456789"
        )
        .as_bytes(),
    )
    .await?;
    let reply = slow
        .read_response_within(BOUND)
        .await?
        .ok_or_else(|| anyhow::anyhow!("closed without a response"))?;
    assert_eq!(reply.status, 408, "{}", reply.head);
    assert!(
        slow.closed_within(BOUND).await?,
        "the connection ends with the request"
    );
    rejected_at_least(&proxy, "shop", "slow", 1.0).await?;
    Ok(())
}

#[tokio::test]
async fn a_slow_http2_body_is_cut_and_other_streams_go_on() -> anyhow::Result<()> {
    let origin = Origin::count_upload().h2c().start().await?;
    let proxy = shop(&origin)
        .limit("min_body_rate", "\"1KiB/s\"")
        .limit("min_body_rate_grace", "300ms")
        .start()
        .await?;
    let client = H2::connect_from(from(62), proxy.addr()).await?;
    let req = request("POST", SHOP, "/upload")
        .header("content-length", "100000")
        .body(stalled_body(b"0123456789"))?;
    let resp = tokio::time::timeout(BOUND, client.send(req)).await??;
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
    rejected_at_least(&proxy, "shop", "slow", 1.0).await?;
    // The connection itself is fine.
    let ok = client
        .request(request("GET", SHOP, "/").body(portcullis_tests::body::empty())?)
        .await?;
    assert_eq!(ok.status, StatusCode::OK);
    Ok(())
}
