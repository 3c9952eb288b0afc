//! Requests the proxy refuses, sent byte by byte: each gets its status, and none reaches the
//! origin.

use http::StatusCode;
use portcullis_tests::client::{H1, H2, get, request};
use portcullis_tests::{Origin, RawConn, Scrape, body, eventually};

use crate::{SHOP, shop};

#[tokio::test]
async fn malformed_host_is_400() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    let cases: &[(&str, &str)] = &[
        (
            "two Host headers",
            "GET / HTTP/1.1\r\nHost: shop.example\r\nHost: other.example\r\n\r\n",
        ),
        (
            "two identical Host headers",
            "GET / HTTP/1.1\r\nHost: shop.example\r\nHost: shop.example\r\n\r\n",
        ),
        ("space in host", "GET / HTTP/1.1\r\nHost: bad host\r\n\r\n"),
        (
            "userinfo",
            "GET / HTTP/1.1\r\nHost: user@shop.example\r\n\r\n",
        ),
        (
            "userinfo in absolute form",
            "GET http://user@shop.example/ HTTP/1.1\r\nHost: shop.example\r\n\r\n",
        ),
        (
            "Host disagrees with the absolute-form target",
            "GET http://shop.example/ HTTP/1.1\r\nHost: other.example\r\n\r\n",
        ),
        (
            "percent-escape",
            "GET / HTTP/1.1\r\nHost: shop%2eexample\r\n\r\n",
        ),
        (
            "path in host",
            "GET / HTTP/1.1\r\nHost: shop.example/evil\r\n\r\n",
        ),
        (
            "empty label",
            "GET / HTTP/1.1\r\nHost: shop..example\r\n\r\n",
        ),
        (
            "bad port",
            "GET / HTTP/1.1\r\nHost: shop.example:99999\r\n\r\n",
        ),
        ("empty host", "GET / HTTP/1.1\r\nHost: \r\n\r\n"),
        ("no host at all", "GET / HTTP/1.1\r\n\r\n"),
    ];
    for (what, raw) in cases {
        let resp = RawConn::exchange(proxy.addr(), raw.as_bytes()).await?;
        assert_eq!(resp.status, 400, "{what}: {}", resp.head);
    }
    assert_eq!(
        origin.requests(),
        0,
        "no malformed request reached the origin"
    );

    // The well-formed spellings of the same requests pass.
    for raw in [
        "GET http://shop.example/ HTTP/1.1\r\nHost: shop.example\r\n\r\n",
        "GET http://SHOP.example./ HTTP/1.1\r\nHost: shop.example:80\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: Shop.Example.\r\n\r\n",
    ] {
        let resp = RawConn::exchange(proxy.addr(), raw.as_bytes()).await?;
        assert_eq!(resp.status, 200, "{raw:?}: {}", resp.head);
    }

    let scrape = Scrape::fetch(proxy.admin()).await?;
    let refused = scrape.get(
        "portcullis_requests_total",
        &[("site", "_none"), ("status_class", "4xx")],
    )?;
    assert!(
        refused >= 10.0,
        "malformed hosts count under site=_none: {refused}"
    );
    Ok(())
}

#[tokio::test]
async fn h2_host_header_disagreeing_with_authority_is_400() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    let client = H2::connect(proxy.addr()).await?;
    let req = http::Request::builder()
        .uri(format!("http://{SHOP}/"))
        .header("host", "other.example")
        .body(body::empty())?;
    let reply = client.request(req).await?;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    let req = http::Request::builder()
        .uri("http://bad%20host/")
        .body(body::empty());
    assert!(
        req.is_err(),
        "hyper refuses to send a malformed :authority itself"
    );
    assert_eq!(origin.requests(), 0);
    Ok(())
}

#[tokio::test]
async fn unknown_host_is_421() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    let reply = H1::connect(proxy.addr())
        .await?
        .request(get("unknown.example", "/"))
        .await?;
    assert_eq!(reply.status, StatusCode::MISDIRECTED_REQUEST);
    assert!(!reply.body.is_empty(), "a short body says why");
    assert_eq!(origin.requests(), 0);
    let scrape = Scrape::fetch(proxy.admin()).await?;
    assert_eq!(
        scrape.get(
            "portcullis_requests_total",
            &[("site", "_none"), ("status_class", "4xx")]
        )?,
        1.0
    );
    Ok(())
}

#[tokio::test]
async fn oversized_headers_are_431() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin)
        .limit("max_header_size", "8KiB")
        .start()
        .await?;
    let small = format!(
        "GET / HTTP/1.1\r\nHost: {SHOP}\r\nX-Fits: {}\r\n\r\n",
        "a".repeat(4 << 10)
    );
    let resp = RawConn::exchange(proxy.addr(), small.as_bytes()).await?;
    assert_eq!(resp.status, 200, "4 KiB of headers fit in 8 KiB");

    let big = format!(
        "GET / HTTP/1.1\r\nHost: {SHOP}\r\nX-Big: {}\r\n\r\n",
        "a".repeat(16 << 10)
    );
    let resp = RawConn::exchange(proxy.addr(), big.as_bytes()).await?;
    assert_eq!(resp.status, 431, "{}", resp.head);
    assert_eq!(origin.requests(), 1, "only the small request was forwarded");
    Ok(())
}

#[tokio::test]
async fn body_announced_over_the_limit_is_413() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin)
        .limit("max_request_body", "1KiB")
        .start()
        .await?;
    let head = format!("POST /upload HTTP/1.1\r\nHost: {SHOP}\r\nContent-Length: 2048\r\n\r\n");
    let resp = RawConn::exchange(proxy.addr(), head.as_bytes()).await?;
    assert_eq!(resp.status, 413, "{}", resp.head);
    assert_eq!(resp.header("connection"), Some("close"));
    assert_eq!(origin.requests(), 0, "refused before contacting the origin");

    // Exactly at the limit passes.
    let req = request("POST", SHOP, "/upload").body(body::full(vec![b'x'; 1024]))?;
    let reply = H1::connect(proxy.addr()).await?.request(req).await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.echoed()?.body.len(), 1024);
    Ok(())
}

#[tokio::test]
async fn chunked_body_growing_over_the_limit_is_413() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin)
        .limit("max_request_body", "1KiB")
        .start()
        .await?;
    let mut raw =
        format!("POST /upload HTTP/1.1\r\nHost: {SHOP}\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    for _ in 0..3 {
        raw.extend_from_slice(b"200\r\n");
        raw.extend_from_slice(&[b'x'; 0x200]);
        raw.extend_from_slice(b"\r\n");
    }
    // No last chunk: the proxy must decide on the bytes it has, not wait for the end.
    let resp = RawConn::exchange(proxy.addr(), &raw).await?;
    assert_eq!(resp.status, 413, "{}", resp.head);
    let scrape = Scrape::fetch(proxy.admin()).await?;
    let received = scrape.get("portcullis_bytes_received_total", &[("site", "shop")])?;
    assert!(received <= 1536.0, "{received}");
    Ok(())
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_400_and_closes() -> anyhow::Result<()> {
    // RFC 9112 §6.1 lets a server read such a request as chunked; a proxy refuses it instead
    // (POLICY-SPEC: smuggling shapes are rejected), whichever header comes first, and closes.
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    for raw in [
        format!(
            "POST / HTTP/1.1\r\nHost: {SHOP}\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        ),
        format!(
            "POST / HTTP/1.1\r\nHost: {SHOP}\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        ),
    ] {
        let mut conn = RawConn::connect(proxy.addr()).await?;
        conn.write(raw.as_bytes()).await?;
        let resp = conn.read_response().await?;
        assert_eq!(resp.status, 400, "{raw:?}: {}", resp.head);
        assert_eq!(resp.header("connection"), Some("close"));
        assert!(
            conn.closed_within(std::time::Duration::from_secs(10))
                .await?,
            "the connection stayed open after a CL+TE request"
        );
    }
    assert_eq!(origin.requests(), 0, "nothing reached the origin");
    Ok(())
}

#[tokio::test]
async fn transfer_codings_other_than_chunked_are_501() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: {SHOP}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    );
    let resp = RawConn::exchange(proxy.addr(), raw.as_bytes()).await?;
    assert_eq!(resp.status, 501, "{}", resp.head);
    assert_eq!(origin.requests(), 0);
    Ok(())
}

#[tokio::test]
async fn conflicting_content_lengths_are_400() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: {SHOP}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"
    );
    let resp = RawConn::exchange(proxy.addr(), raw.as_bytes()).await?;
    assert_eq!(resp.status, 400, "{}", resp.head);
    assert_eq!(origin.requests(), 0);
    Ok(())
}

#[tokio::test]
async fn content_length_with_transfer_encoding_never_smuggles() -> anyhow::Result<()> {
    // Read by Content-Length, this is one request with body "0\r\n\r\n" followed by a second
    // request for /smuggled; read by Transfer-Encoding, one request and then garbage. Whatever
    // the proxy answers, the origin must never see /smuggled, and the connection must not be
    // reused after such a request (RFC 9112 §6.1).
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    let smuggled = format!("GET /smuggled HTTP/1.1\r\nHost: {SHOP}\r\n\r\n");
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: {SHOP}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
    );
    let mut conn = RawConn::connect(proxy.addr()).await?;
    conn.write(raw.as_bytes()).await?;
    let first = conn.read_response().await?;
    assert!(first.status == 400 || first.status == 200, "{}", first.head);
    assert!(
        conn.closed_within(std::time::Duration::from_secs(10))
            .await?,
        "the connection stayed open after a CL+TE request"
    );
    assert_eq!(
        origin.requests(),
        usize::from(first.status == 200),
        "at most the outer request reached the origin"
    );
    Ok(())
}

#[tokio::test]
async fn connect_is_405() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    let raw = format!("CONNECT {SHOP}:443 HTTP/1.1\r\nHost: {SHOP}:443\r\n\r\n");
    let resp = RawConn::exchange(proxy.addr(), raw.as_bytes()).await?;
    assert_eq!(resp.status, 405, "{}", resp.head);
    assert_eq!(origin.requests(), 0);
    // The refusal is counted like any other answer.
    eventually("the 405 is counted", || async {
        let scrape = Scrape::fetch(proxy.admin()).await?;
        let n = scrape.get_or_zero(
            "portcullis_requests_total",
            &[("status_class", "4xx"), ("site", "_none")],
        )?;
        anyhow::ensure!(n == 1.0, "4xx = {n}");
        Ok(())
    })
    .await
}
