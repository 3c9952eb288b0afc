//! What crosses the proxy, both ways: method, target, headers and bodies; the headers the
//! proxy removes and adds; HTTP/2 on either side; keep-alive reuse towards the origin.

use http::{Response, StatusCode, Version};
use portcullis_tests::body;
use portcullis_tests::client::{H1, H2, get, request};
use portcullis_tests::{Origin, Site, TestProxy};

use crate::{SHOP, shop};

#[tokio::test]
async fn method_target_headers_and_body_reach_the_origin() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    let mut client = H1::connect(proxy.addr()).await?;
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let payload = format!("payload of {method} \u{2713}");
        let req = request(method, SHOP, "/a/b%20c/?x=1&y=two&x=3")
            .header("x-custom", "first")
            .header("x-custom", "second")
            .header("content-type", "text/plain")
            .header("user-agent", "portcullis-tests")
            .body(body::full(payload.clone()))?;
        let reply = client.request(req).await?;
        assert_eq!(reply.status, StatusCode::OK, "{method}: {}", reply.text());
        let seen = reply.echoed()?;
        assert_eq!(seen.method, method);
        assert_eq!(seen.path, "/a/b%20c/");
        assert_eq!(seen.query.as_deref(), Some("x=1&y=two&x=3"));
        assert_eq!(seen.uri, "/a/b%20c/?x=1&y=two&x=3", "origin-form target");
        assert_eq!(seen.version, "HTTP/1.1");
        assert_eq!(seen.header_all("x-custom"), ["first", "second"]);
        assert_eq!(seen.header("content-type"), Some("text/plain"));
        assert_eq!(seen.header("user-agent"), Some("portcullis-tests"));
        assert_eq!(seen.header("host"), Some(SHOP), "the client's Host is kept");
        assert_eq!(seen.body, payload);
    }
    Ok(())
}

#[tokio::test]
async fn origin_status_headers_and_body_reach_the_client() -> anyhow::Result<()> {
    let origin = Origin::new(|_req| async {
        Response::builder()
            .status(StatusCode::CREATED)
            .header("x-from-origin", "yes")
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .header("cache-control", "max-age=60")
            // Hop-by-hop on the way back: the proxy must not pass these to the client.
            .header("connection", "x-origin-hop")
            .header("x-origin-hop", "secret")
            .header("keep-alive", "timeout=99")
            .header("proxy-authenticate", "Basic")
            .header("upgrade", "h2c")
            .body(body::full("created by the origin"))
            .unwrap_or_else(|_| Response::new(body::empty()))
    })
    .start()
    .await?;
    let proxy = shop(&origin).start().await?;
    let reply = H1::connect(proxy.addr())
        .await?
        .request(get(SHOP, "/new"))
        .await?;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.header("x-from-origin"), Some("yes"));
    let cookies: Vec<_> = reply.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    assert_eq!(reply.header("cache-control"), Some("max-age=60"));
    assert_eq!(reply.text(), "created by the origin");
    for hop in [
        "x-origin-hop",
        "keep-alive",
        "proxy-authenticate",
        "upgrade",
    ] {
        assert_eq!(reply.header(hop), None, "{hop} must not reach the client");
    }
    Ok(())
}

#[tokio::test]
async fn hop_by_hop_headers_go_and_forwarding_headers_are_set() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    let req = request("GET", SHOP, "/hops")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "named by Connection")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("trailer", "x-checksum")
        .header("upgrade", "websocket")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("proxy-connection", "keep-alive")
        .header("proxy-foo", "1")
        .header("forwarded", "for=6.6.6.6;host=evil.example")
        .header("x-original-url", "/admin")
        .header("x-rewrite-url", "/admin")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-forwarded-proto", "https")
        .header("via", "1.1 cdn")
        .header("x-kept", "yes")
        .body(body::empty())?;
    let reply = H1::connect(proxy.addr()).await?.request(req).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seen = reply.echoed()?;
    for gone in [
        "x-hop",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "proxy-foo",
        "forwarded",
        "x-original-url",
        "x-rewrite-url",
    ] {
        assert_eq!(seen.header(gone), None, "{gone} reached the origin");
    }
    // hyper's client may add `connection: keep-alive` of its own; nothing the client named.
    for v in seen.header_all("connection") {
        assert!(!v.contains("x-hop"), "connection: {v}");
    }
    assert_eq!(seen.header("x-kept"), Some("yes"));
    assert_eq!(
        seen.header_all("x-forwarded-for"),
        ["127.0.0.1"],
        "a client that is not a trusted proxy cannot name another address"
    );
    assert_eq!(seen.header_all("x-forwarded-proto"), ["http"], "replaced");
    assert_eq!(seen.header_all("x-forwarded-host"), [SHOP]);
    assert_eq!(seen.header_all("via"), ["1.1 cdn, 1.1 portcullis"]);
    assert_eq!(seen.header("host"), Some(SHOP));
    let id = seen.header("x-request-id").unwrap_or_default();
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "x-request-id {id:?}"
    );
    Ok(())
}

#[tokio::test]
async fn every_prior_via_line_is_kept_and_untrusted_x_forwarded_for_is_replaced()
-> anyhow::Result<()> {
    // A header may arrive as several lines; each is part of the list (RFC 9110 §5.3), and a
    // proxy appends itself to the whole list (§7.6.3). X-Forwarded-For is believed only from
    // `geoip.trusted_proxies` (none here), so the client's lines are replaced.
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    let req = request("GET", SHOP, "/chain")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-forwarded-for", "10.0.0.2, 10.0.0.3")
        .header("via", "1.0 first")
        .header("via", "1.1 second")
        .body(body::empty())?;
    let reply = H1::connect(proxy.addr()).await?.request(req).await?;
    let seen = reply.echoed()?;
    assert_eq!(seen.header_all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(
        seen.header_all("via").join(", "),
        "1.0 first, 1.1 second, 1.1 portcullis"
    );
    Ok(())
}

#[tokio::test]
async fn head_request_gets_headers_without_a_body() -> anyhow::Result<()> {
    let origin = Origin::fixed(5000, 1000).start().await?;
    let proxy = shop(&origin).start().await?;
    let mut client = H1::connect(proxy.addr()).await?;
    let req = request("HEAD", SHOP, "/file").body(body::empty())?;
    let reply = client.request(req).await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-length"), Some("5000"));
    assert!(reply.body.is_empty());
    // The connection is still in step: the next answer is a whole one.
    let reply = client.request(get(SHOP, "/file")).await?;
    assert_eq!(reply.body.len(), 5000);
    Ok(())
}

#[tokio::test]
async fn client_sent_x_forwarded_host_is_replaced_by_the_host_as_sent() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    let mut client = H1::connect(proxy.addr()).await?;
    let mut ids = Vec::new();
    for host in ["shop.example", "SHOP.Example:8080", "shop.example."] {
        let req = request("GET", host, "/")
            .header("x-forwarded-host", "evil.example")
            .header("x-request-id", "client-chosen")
            .body(body::empty())?;
        let reply = client.request(req).await?;
        assert_eq!(reply.status, StatusCode::OK, "{host}: {}", reply.text());
        let seen = reply.echoed()?;
        assert_eq!(seen.header_all("x-forwarded-host"), [host]);
        assert_eq!(seen.header("host"), Some(host), "Host kept as sent");
        let id = seen.header_all("x-request-id");
        assert_eq!(id.len(), 1, "{id:?}");
        assert_ne!(id[0], "client-chosen", "the proxy sets its own request id");
        ids.push(id[0].to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "request ids are distinct: {ids:?}");
    Ok(())
}

#[tokio::test]
async fn h2c_client_reaches_an_http1_origin() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    let client = H2::connect(proxy.addr()).await?;
    let req = request("POST", SHOP, "/h2?x=1")
        .header("x-custom", "h2")
        .body(body::full("over h2"))?;
    let reply = client.request(req).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.version, Version::HTTP_2);
    let seen = reply.echoed()?;
    assert_eq!(seen.version, "HTTP/1.1");
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.uri, "/h2?x=1");
    assert_eq!(seen.header("host"), Some(SHOP), ":authority becomes Host");
    assert_eq!(seen.header("x-forwarded-host"), Some(SHOP));
    assert_eq!(seen.header("x-custom"), Some("h2"));
    assert_eq!(seen.header("via"), Some("2 portcullis"));
    assert_eq!(seen.body, "over h2");
    // Several streams on the one connection.
    for i in 0..3 {
        let reply = client.request(get(SHOP, &format!("/s{i}"))).await?;
        assert_eq!(reply.echoed()?.path, format!("/s{i}"));
    }
    Ok(())
}

#[tokio::test]
async fn h2_site_speaks_http2_to_its_origin() -> anyhow::Result<()> {
    let origin = Origin::echo().h2c().start().await?;
    let proxy = TestProxy::new()
        .site(Site::new("shop", SHOP).origin(&origin.url()).h2())
        .start()
        .await?;
    let mut client = H1::connect(proxy.addr()).await?;
    for i in 0..3 {
        let req = request("PUT", SHOP, &format!("/h2-origin/{i}?q=1"))
            .header("x-custom", "to-h2")
            .body(body::full(format!("body {i}")))?;
        let reply = client.request(req).await?;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let seen = reply.echoed()?;
        assert_eq!(seen.version, "HTTP/2.0");
        assert_eq!(seen.method, "PUT");
        assert_eq!(seen.uri, format!("http://{SHOP}/h2-origin/{i}?q=1"));
        assert_eq!(seen.header("x-custom"), Some("to-h2"));
        assert_eq!(seen.header("x-forwarded-host"), Some(SHOP));
        assert_eq!(seen.header("via"), Some("1.1 portcullis"));
        assert_eq!(seen.body, format!("body {i}"));
    }
    assert_eq!(origin.connections(), 1, "one multiplexed h2 connection");
    Ok(())
}

#[tokio::test]
async fn keep_alive_reuses_one_origin_connection() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    let mut client = H1::connect(proxy.addr()).await?;
    for i in 0..10 {
        let reply = client.request(get(SHOP, &format!("/{i}"))).await?;
        assert_eq!(reply.status, StatusCode::OK);
    }
    // Pooling is per origin, not per client connection.
    for i in 0..5 {
        let reply = H1::connect(proxy.addr())
            .await?
            .request(get(SHOP, &format!("/fresh/{i}")))
            .await?;
        assert_eq!(reply.status, StatusCode::OK);
    }
    assert_eq!(origin.requests(), 15);
    assert_eq!(
        origin.connections(),
        1,
        "sequential requests share one connection"
    );
    Ok(())
}

#[tokio::test]
async fn large_bodies_stream_both_ways_in_process() -> anyhow::Result<()> {
    // A quick in-process companion of streaming.rs: 8 MiB up and down, counted, not buffered.
    const SIZE: u64 = 8 << 20;
    let down = Origin::fixed(SIZE, 16 << 10).start().await?;
    let up = Origin::count_upload().start().await?;
    let proxy = TestProxy::new()
        .site(Site::new("down", "down.example").origin(&down.url()))
        .site(Site::new("up", "up.example").origin(&up.url()))
        .limit("max_request_body", "0")
        .start()
        .await?;
    let mut client = H1::connect(proxy.addr()).await?;
    let req = request("POST", "up.example", "/").body(
        portcullis_tests::RepeatBody::new(SIZE, 16 << 10)
            .chunked()
            .boxed(),
    )?;
    let reply = client.request(req).await?;
    assert_eq!(reply.text(), SIZE.to_string());
    let resp = client.send(get("down.example", "/")).await?;
    assert_eq!(resp.status(), StatusCode::OK);
    let n = body::count(resp.into_body())
        .await
        .map_err(|(n, e)| anyhow::anyhow!("download cut after {n} bytes: {e}"))?;
    assert_eq!(n, SIZE);
    Ok(())
}
