//! The HTTP/1.1 engine on the wire: pipelining, `Expect: 100-continue`, HTTP/1.0 clients,
//! chunked bodies both ways, and keep-alive decisions.

use std::time::Duration;

use http::Response;
use portcullis_tests::body::RepeatBody;
use portcullis_tests::{Origin, RawConn};

use crate::{SHOP, shop};

const BOUND: Duration = Duration::from_secs(10);

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    let mut conn = RawConn::connect(proxy.addr()).await?;
    // Three requests in one write; the middle one has a body.
    let raw = format!(
        "GET /one HTTP/1.1\r\nHost: {SHOP}\r\n\r\n\
         POST /two HTTP/1.1\r\nHost: {SHOP}\r\nContent-Length: 5\r\n\r\nhello\
         GET /three HTTP/1.1\r\nHost: {SHOP}\r\n\r\n"
    );
    conn.write(raw.as_bytes()).await?;
    for (path, body) in [("/one", ""), ("/two", "hello"), ("/three", "")] {
        let resp = conn.read_response().await?;
        assert_eq!(resp.status, 200, "{}", resp.head);
        let seen: serde_json::Value = serde_json::from_slice(&resp.body)?;
        assert_eq!(seen["path"], path);
        assert_eq!(seen["body"], body);
    }
    assert!(!conn.closed_within(Duration::from_millis(200)).await?);
    assert_eq!(origin.requests(), 3);
    Ok(())
}

#[tokio::test]
async fn expect_100_continue_gets_an_interim_response() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    let mut conn = RawConn::connect(proxy.addr()).await?;
    let head = format!(
        "PUT /up HTTP/1.1\r\nHost: {SHOP}\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    );
    conn.write(head.as_bytes()).await?;
    // The client waits for the 100 before it sends the body.
    let interim = conn
        .read_response_within(BOUND)
        .await?
        .expect("an interim response");
    assert_eq!(interim.status, 100, "{}", interim.head);
    conn.write(b"data").await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 200, "{}", resp.head);
    let seen: serde_json::Value = serde_json::from_slice(&resp.body)?;
    assert_eq!(seen["body"], "data");
    Ok(())
}

#[tokio::test]
async fn http10_clients_get_close_unless_they_ask_for_keep_alive() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;

    let mut conn = RawConn::connect(proxy.addr()).await?;
    conn.write(format!("GET /a HTTP/1.0\r\nHost: {SHOP}\r\n\r\n").as_bytes())
        .await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(conn.closed_within(BOUND).await?);

    let mut conn = RawConn::connect(proxy.addr()).await?;
    let ka = format!("GET /b HTTP/1.0\r\nHost: {SHOP}\r\nConnection: keep-alive\r\n\r\n");
    conn.write(ka.as_bytes()).await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("keep-alive"));
    conn.write(ka.as_bytes()).await?;
    assert_eq!(conn.read_response().await?.status, 200);
    Ok(())
}

/// An origin that streams 3000 bytes without a Content-Length (chunked on the wire).
fn chunked_origin() -> Origin {
    Origin::new(|_req| async move { Response::new(RepeatBody::new(3000, 1000).chunked().boxed()) })
}

#[tokio::test]
async fn unknown_length_bodies_are_chunked_for_11_and_close_delimited_for_10() -> anyhow::Result<()>
{
    let origin = chunked_origin().start().await?;
    let proxy = shop(&origin).start().await?;

    let mut conn = RawConn::connect(proxy.addr()).await?;
    conn.write(format!("GET / HTTP/1.1\r\nHost: {SHOP}\r\n\r\n").as_bytes())
        .await?;
    let resp = conn.read_chunked_response().await?;
    assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
    assert_eq!(resp.body.len(), 3000);
    // And the connection is still good for another request.
    conn.write(format!("GET / HTTP/1.1\r\nHost: {SHOP}\r\n\r\n").as_bytes())
        .await?;
    assert_eq!(conn.read_chunked_response().await?.body.len(), 3000);

    let mut conn = RawConn::connect(proxy.addr()).await?;
    conn.write(format!("GET / HTTP/1.0\r\nHost: {SHOP}\r\n\r\n").as_bytes())
        .await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.header("transfer-encoding"), None);
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(resp.body.len(), 3000, "the body runs to the close");
    Ok(())
}

#[tokio::test]
async fn chunked_request_bodies_reach_the_origin_whole() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    let mut conn = RawConn::connect(proxy.addr()).await?;
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: {SHOP}\r\nTransfer-Encoding: chunked\r\n\r\n\
         5;name=x\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
    );
    conn.write(raw.as_bytes()).await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 200, "{}", resp.head);
    let seen: serde_json::Value = serde_json::from_slice(&resp.body)?;
    assert_eq!(seen["body"], "hello world");
    // A broken chunk ends the exchange with a 400 and the connection.
    let mut conn = RawConn::connect(proxy.addr()).await?;
    let bad =
        format!("POST / HTTP/1.1\r\nHost: {SHOP}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
    conn.write(bad.as_bytes()).await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 400, "{}", resp.head);
    assert!(conn.closed_within(BOUND).await?);
    Ok(())
}

#[tokio::test]
async fn malformed_heads_are_400_and_close() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    for raw in [
        "GET / HTTP/1.1\r\nHost : shop.example\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: shop.example\r\nX: a\r\n folded\r\n\r\n",
        "GET /\x01 HTTP/1.1\r\nHost: shop.example\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: shop.example\r\nContent-Length: -1\r\n\r\n",
    ] {
        let mut conn = RawConn::connect(proxy.addr()).await?;
        conn.write(raw.as_bytes()).await?;
        let resp = conn.read_response().await?;
        assert_eq!(resp.status, 400, "{raw:?}: {}", resp.head);
        assert!(conn.closed_within(BOUND).await?, "{raw:?}");
    }
    assert_eq!(origin.requests(), 0);
    Ok(())
}
