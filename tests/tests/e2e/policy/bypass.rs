//! Spellings of a blocked host or path that must not get through: host case, trailing dot, port,
//! subdomains, wildcards, absolute-form targets, userinfo and escapes; path escapes,
//! dot-segments, duplicate slashes, encoded separators, `;parameters`; spoofed forwarding
//! headers; HTTP/2 `:authority`. And the look-alikes that must not be blocked.

use http::StatusCode;
use portcullis_tests::client::{H2, get, request};
use portcullis_tests::policy::{Order, PolicyFile};
use portcullis_tests::{Origin, RawConn, RunningProxy, body};

use super::{PIRATE, pirate_order, proxy_with};

fn bypass_policy() -> PolicyFile {
    PolicyFile::new(1)
        .order(pirate_order())
        .order(Order::new("WILD-451", "*.wild.example"))
        .order(Order::new("FILES-PATH", "files.example").path("/shared/abc123/"))
}

/// Sends `GET {target}` with the given header lines on a fresh connection; the status.
async fn raw_status(proxy: &RunningProxy, target: &str, headers: &str) -> anyhow::Result<u16> {
    let req = format!("GET {target} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n");
    Ok(RawConn::exchange(proxy.addr(), req.as_bytes())
        .await?
        .status)
}

async fn host_status(proxy: &RunningProxy, host: &str) -> anyhow::Result<u16> {
    raw_status(proxy, "/", &format!("Host: {host}\r\n")).await
}

#[tokio::test]
async fn every_spelling_of_a_suspended_host_is_blocked() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = proxy_with(&origin, &bypass_policy()).start().await?;
    for host in [
        "pirate.example",
        "PIRATE.Example",
        "pirate.example.",
        "pirate.example:8080",
        "Pirate.Example.:80",
        "www.pirate.example",
        "a.b.pirate.example",
        "WWW.PIRATE.EXAMPLE.",
        "x.wild.example",
        "deep.x.wild.example:443",
        "xn--pirate-zeb.pirate.example",
    ] {
        assert_eq!(host_status(&proxy, host).await?, 451, "Host: {host}");
    }
    assert_eq!(origin.requests(), 0);
    Ok(())
}

#[tokio::test]
async fn look_alikes_and_the_wildcard_apex_are_not_blocked() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = proxy_with(&origin, &bypass_policy()).start().await?;
    for host in [
        "notpirate.example",
        "pirate.example.evil",
        "wild.example",
        "files.example",
    ] {
        assert_eq!(host_status(&proxy, host).await?, 200, "Host: {host}");
    }
    assert_eq!(origin.requests(), 4);
    Ok(())
}

#[tokio::test]
async fn malformed_or_disagreeing_authorities_are_refused_with_400() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = proxy_with(&origin, &bypass_policy()).start().await?;
    // Absolute-form: its authority is the request's; a Host that disagrees is refused, either
    // way round.
    for (target, host) in [
        ("http://pirate.example/", "shop.example"),
        ("http://shop.example/", "pirate.example"),
        ("http://PIRATE.example:80/x", "notpirate.example"),
    ] {
        let status = raw_status(&proxy, target, &format!("Host: {host}\r\n")).await?;
        assert_eq!(status, 400, "{target} with Host {host}");
    }
    // Agreeing absolute-form is blocked like origin-form.
    for (target, host) in [
        ("http://pirate.example/", "pirate.example"),
        ("http://Pirate.Example.:80/x?y", "pirate.example"),
        ("https://www.pirate.example/", "WWW.pirate.example"),
    ] {
        let status = raw_status(&proxy, target, &format!("Host: {host}\r\n")).await?;
        assert_eq!(status, 451, "{target} with Host {host}");
    }
    for host in [
        "user@pirate.example",
        "user:pw@pirate.example",
        "pir%61te.example",
        "pirate%2eexample",
        "pirate..example",
        ".pirate.example",
        "pirate.example/x",
        "pirate.example\\x",
        "pirate .example",
    ] {
        assert_eq!(host_status(&proxy, host).await?, 400, "Host: {host}");
    }
    // Two Host headers.
    let status = raw_status(
        &proxy,
        "/",
        "Host: shop.example\r\nHost: pirate.example\r\n",
    )
    .await?;
    assert_eq!(status, 400, "duplicate Host");
    // Non-ASCII (a U-label; requests must use the A-label).
    let req = "GET / HTTP/1.1\r\nHost: p\u{ed}rate.example\r\nConnection: close\r\n\r\n";
    let status = RawConn::exchange(proxy.addr(), req.as_bytes())
        .await?
        .status;
    assert_eq!(status, 400, "non-ASCII Host");
    assert_eq!(origin.requests(), 0);
    Ok(())
}

#[tokio::test]
async fn every_spelling_of_a_blocked_path_is_blocked() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = proxy_with(&origin, &bypass_policy()).start().await?;
    let files = "Host: files.example\r\n";
    for target in [
        "/shared/abc123/x",
        "/shared/abc123/",
        "/shared/abc123",
        "/shared/abc123/x?download=1",
        "/%73hared/abc123/x",
        "/shared/%61%62%63123/x",
        "/shared//abc123/x",
        "//shared/abc123/x",
        "/shared/./abc123/x",
        "/x/../shared/abc123/x",
        "/x/%2e%2e/shared/abc123/x",
        "/x/%2E./shared/abc123/",
        "/shared/abc123%2fx",
        "/shared%2Fabc123%2Fx",
        "/shared%5cabc123/x",
        "/shared/abc123;jsessionid=1/x",
        "/shared;x/abc123/x",
        "/shared/%2561bc123/x",
        "/shared/%25252561bc123/x",
        "http://files.example/shared/abc123/x",
    ] {
        let status = raw_status(&proxy, target, files).await?;
        assert_eq!(status, 451, "GET {target}");
    }
    assert_eq!(origin.requests(), 0, "no spelling reached the origin");
    for target in [
        "/shared/abc1234",
        "/shared/abc12/",
        "/shared/ABC123/x",
        "/other/shared/abc123/x",
        "/?/shared/abc123/",
        "/shared/abc123x/y",
    ] {
        let status = raw_status(&proxy, target, files).await?;
        assert_eq!(status, 200, "GET {target}");
    }
    Ok(())
}

#[tokio::test]
async fn the_forwarded_path_is_the_normalised_path() -> anyhow::Result<()> {
    // POLICY-SPEC: "that same normalised path is what is forwarded", and the policy crate's
    // `path::normalize_path` is documented as "the path to forward".
    let origin = Origin::echo().start().await?;
    let proxy = proxy_with(&origin, &bypass_policy()).start().await?;
    let mut conn = RawConn::connect(proxy.addr()).await?;
    conn.write(b"GET /a/./b//c/%7Euser/../d%2fe?q=%7E HTTP/1.1\r\nHost: files.example\r\nConnection: close\r\n\r\n")
        .await?;
    let reply = conn.read_response().await?;
    assert_eq!(reply.status, 200, "{}", reply.head);
    let seen: portcullis_tests::canned::Echoed = serde_json::from_slice(&reply.body)?;
    assert_eq!(seen.path, "/a/b/c/d%2Fe");
    assert_eq!(seen.query.as_deref(), Some("q=%7E"));
    Ok(())
}

#[tokio::test]
async fn spoofed_forwarding_headers_neither_block_nor_reach_the_origin() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = proxy_with(&origin, &bypass_policy()).start().await?;
    let req = request("GET", "shop.example", "/page")
        .header("x-forwarded-host", PIRATE)
        .header("forwarded", "host=pirate.example;proto=https")
        .header("x-original-url", "/shared/abc123/x")
        .header("x-rewrite-url", "/shared/abc123/x")
        .body(body::empty())?;
    let reply = portcullis_tests::H1::connect(proxy.addr())
        .await?
        .request(req)
        .await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seen = reply.echoed()?;
    assert_eq!(
        seen.header_all("x-forwarded-host"),
        ["shop.example"],
        "only the proxy's own X-Forwarded-Host"
    );
    for spoofable in ["forwarded", "x-original-url", "x-rewrite-url"] {
        assert_eq!(seen.header(spoofable), None, "{spoofable} forwarded");
    }
    // The other way round: a blocked host does not get through by claiming an allowed one.
    let req = request("GET", PIRATE, "/")
        .header("x-forwarded-host", "shop.example")
        .body(body::empty())?;
    let reply = portcullis_tests::H1::connect(proxy.addr())
        .await?
        .request(req)
        .await?;
    assert_eq!(reply.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    assert_eq!(origin.requests(), 1);
    Ok(())
}

#[tokio::test]
async fn http2_authority_is_decided_per_stream() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = proxy_with(&origin, &bypass_policy()).start().await?;
    let h2 = H2::connect(proxy.addr()).await?;
    for (host, path, status) in [
        ("shop.example", "/", 200),
        (PIRATE, "/", 451),
        ("PIRATE.Example.:80", "/", 451),
        ("cdn.pirate.example", "/x", 451),
        ("x.wild.example", "/", 451),
        ("files.example", "/%73hared//abc123/x", 451),
        ("files.example", "/shared/abc1234", 200),
        ("notpirate.example", "/", 200),
    ] {
        let reply = h2.request(get(host, path)).await?;
        assert_eq!(reply.status.as_u16(), status, ":authority {host} {path}");
        assert_eq!(reply.version, http::Version::HTTP_2);
    }
    // A Host header that disagrees with :authority is refused (RFC 9113 §8.3.1).
    let req = http::Request::builder()
        .uri("http://shop.example/")
        .header("host", PIRATE)
        .body(body::empty())?;
    let reply = h2.request(req).await?;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(origin.requests(), 3);
    Ok(())
}
