//! TLS termination as clients see it: which certificate each SNI gets, the unknown-SNI alert,
//! ALPN choosing HTTP/2 or HTTP/1.1, old protocol versions refused, the SNI/Host rule (421),
//! `redirect_https`, `X-Forwarded-Proto`, and the handshake deadline. Real clients: rustls,
//! `curl` and `openssl s_client`. Reloads, resumption and metrics are in `tls_reload.rs`.

use http::StatusCode;
use portcullis_tests::canned::Gate;
use portcullis_tests::client::get;
use portcullis_tests::metrics::no_connection_left_open;
use portcullis_tests::tls::{curl_https, peer_leaf, s_client};
use portcullis_tests::{
    Origin, OriginHandle, Scrape, Site, TestCerts, TestProxy, TlsClient, eventually,
};
use tokio::io::AsyncReadExt;

const ALPN_BOTH: &[&[u8]] = &[b"h2", b"http/1.1"];
const ALPN_H1: &[&[u8]] = &[b"http/1.1"];

/// Certificates for `a.example` (also covering `c.example`), `b.example` and `*.w.example`.
fn certs() -> anyhow::Result<TestCerts> {
    let certs = TestCerts::new()?;
    certs.add(&["a.example", "c.example"])?;
    certs.add(&["b.example"])?;
    certs.add(&["*.w.example"])?;
    Ok(certs)
}

/// Sites `a` (a.example, c.example), `b` (b.example) and `w` (x.w.example), all on `origin`.
fn sites(origin: &OriginHandle) -> TestProxy {
    TestProxy::new()
        .site(
            Site::new("a", "a.example")
                .host("c.example")
                .origin(&origin.url()),
        )
        .site(Site::new("b", "b.example").origin(&origin.url()))
        .site(Site::new("w", "x.w.example").origin(&origin.url()))
}

#[tokio::test]
async fn sni_picks_each_sites_certificate_and_the_wildcard() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let certs = certs()?;
    let proxy = sites(&origin).tls(certs.dir()).start().await?;
    let client = TlsClient::new(&certs.ca(), ALPN_H1)?;
    for (name, label) in [
        ("a.example", "a.example"),
        ("b.example", "b.example"),
        ("x.w.example", "_.w.example"),
    ] {
        let stream = client.connect(proxy.tls_addr(), name).await?;
        assert_eq!(peer_leaf(&stream)?, certs.leaf(label)?, "SNI {name}");
        let conn = stream.get_ref().1;
        assert_eq!(
            conn.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        assert_eq!(
            conn.negotiated_key_exchange_group().map(|g| g.name()),
            Some(rustls::NamedGroup::X25519MLKEM768),
            "aws-lc-rs: post-quantum hybrid key exchange"
        );
        let reply = client
            .h1(proxy.tls_addr(), name)
            .await?
            .request(get(name, "/p"))
            .await?;
        assert_eq!(reply.status, StatusCode::OK, "{name}: {}", reply.text());
        let seen = reply.echoed()?;
        assert_eq!(seen.header("x-forwarded-proto"), Some("https"), "{name}");
        assert_eq!(seen.header("host"), Some(name));
    }
    // The plain listener still says http.
    let reply = portcullis_tests::client::get_once(proxy.addr(), "a.example", "/").await?;
    assert_eq!(reply.echoed()?.header("x-forwarded-proto"), Some("http"));
    no_connection_left_open(proxy.admin()).await
}

#[tokio::test]
async fn no_sni_gets_the_default_certificate() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let certs = certs()?;
    let proxy = sites(&origin)
        .tls(certs.dir())
        .tls_key("default_cert", "b.example")
        .start()
        .await?;
    let client = TlsClient::new(&certs.ca(), ALPN_BOTH)?.without_sni();
    let stream = client.connect(proxy.tls_addr(), "b.example").await?;
    assert_eq!(peer_leaf(&stream)?, certs.leaf("b.example")?);
    // openssl agrees: with -noservername it is handed b.example's certificate.
    let out = s_client(proxy.tls_addr(), &["-noservername"]).await?;
    assert!(out.text.contains("CN = b.example"), "{}", out.text);
    Ok(())
}

#[tokio::test]
async fn unknown_sni_is_refused_with_unrecognized_name() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let certs = certs()?;
    let proxy = sites(&origin).tls(certs.dir()).start().await?;
    let client = TlsClient::new(&certs.ca(), ALPN_BOTH)?;
    let err = client
        .connect(proxy.tls_addr(), "nobody.example")
        .await
        .expect_err("no certificate, no default: the handshake must fail");
    let alert = err
        .chain()
        .find_map(|e| e.downcast_ref::<std::io::Error>())
        .and_then(|e| e.get_ref())
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .cloned();
    assert_eq!(
        alert,
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::UnrecognisedName
        )),
        "{err:#}"
    );
    // No SNI and no default: the same.
    let out = s_client(proxy.tls_addr(), &["-noservername"]).await?;
    assert!(!out.success, "{}", out.text);
    let out = s_client(proxy.tls_addr(), &["-servername", "nobody.example"]).await?;
    assert!(!out.success, "{}", out.text);
    assert!(
        out.text.contains("unrecognized name") && out.text.contains("alert number 112"),
        "openssl must report the alert: {}",
        out.text
    );
    let scrape = Scrape::fetch(proxy.admin()).await?;
    let refused = scrape.get(
        "portcullis_tls_handshakes_total",
        &[("result", "unknown_sni"), ("version", "unknown")],
    )?;
    assert_eq!(refused, 3.0);
    no_connection_left_open(proxy.admin()).await
}

#[tokio::test]
async fn alpn_h2_serves_http2_and_curl_agrees() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let certs = certs()?;
    let proxy = sites(&origin).tls(certs.dir()).start().await?;
    let client = TlsClient::new(&certs.ca(), ALPN_BOTH)?;
    let h2 = client.h2(proxy.tls_addr(), "a.example").await?;
    let (one, two) = tokio::join!(
        h2.request(get("a.example", "/one")),
        h2.request(get("a.example", "/two"))
    );
    for reply in [one?, two?] {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.version, http::Version::HTTP_2);
        assert_eq!(reply.echoed()?.header("x-forwarded-proto"), Some("https"));
    }
    let out = curl_https(
        proxy.tls_addr(),
        "a.example",
        "/curl",
        &certs.ca(),
        &["--http2"],
    )
    .await?;
    assert!(out.success, "{}", out.text);
    let lines: Vec<&str> = out.text.lines().collect();
    assert_eq!(lines[lines.len() - 2..], ["2", "200"], "{}", out.text);
    assert!(out.text.contains("\"path\":\"/curl\""), "{}", out.text);
    Ok(())
}

#[tokio::test]
async fn http11_over_tls_by_alpn_or_without_alpn() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let certs = certs()?;
    let proxy = sites(&origin).tls(certs.dir()).start().await?;
    for alpn in [&[b"http/1.1".as_slice()][..], &[]] {
        let client = TlsClient::new(&certs.ca(), alpn)?;
        let mut h1 = client.h1(proxy.tls_addr(), "b.example").await?;
        for path in ["/first", "/second"] {
            let reply = h1.request(get("b.example", path)).await?;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
            assert_eq!(reply.version, http::Version::HTTP_11);
            assert_eq!(reply.echoed()?.path, path, "keep-alive over TLS");
        }
    }
    let out = curl_https(
        proxy.tls_addr(),
        "b.example",
        "/",
        &certs.ca(),
        &["--http1.1"],
    )
    .await?;
    let lines: Vec<&str> = out.text.lines().collect();
    assert_eq!(lines[lines.len() - 2..], ["1.1", "200"], "{}", out.text);
    Ok(())
}

#[tokio::test]
async fn tls_1_0_and_1_1_are_refused() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let certs = certs()?;
    let proxy = sites(&origin).tls(certs.dir()).start().await?;
    // Security level 0 lets this openssl offer the old versions at all; the server must still
    // refuse them.
    for version in ["-tls1", "-tls1_1"] {
        let out = s_client(
            proxy.tls_addr(),
            &[
                version,
                "-cipher",
                "DEFAULT@SECLEVEL=0",
                "-servername",
                "a.example",
            ],
        )
        .await?;
        assert!(!out.success, "{version}: {}", out.text);
        // rustls answers with a fatal alert (handshake_failure or protocol_version, depending
        // on what the old ClientHello lacks); no cipher is ever agreed.
        assert!(
            out.text.contains("SSL alert number") && out.text.contains("Cipher is (NONE)"),
            "{version}: the server must refuse with an alert: {}",
            out.text
        );
    }
    let scrape = Scrape::fetch(proxy.admin()).await?;
    let errors = scrape.get(
        "portcullis_tls_handshakes_total",
        &[("result", "error"), ("version", "unknown")],
    )?;
    assert_eq!(errors, 2.0, "both refusals reached the server");
    // TLS 1.2 and 1.3 both work.
    for version in ["-tls1_2", "-tls1_3"] {
        let out = s_client(proxy.tls_addr(), &[version, "-servername", "a.example"]).await?;
        assert!(out.success, "{version}: {}", out.text);
    }
    Ok(())
}

#[tokio::test]
async fn a_host_outside_the_certificate_gets_421() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let certs = certs()?;
    let proxy = sites(&origin).tls(certs.dir()).start().await?;
    let client = TlsClient::new(&certs.ca(), ALPN_H1)?;
    // HTTP/1.1: SNI a.example, Host b.example (a site, but not on this certificate).
    let mut h1 = client.h1(proxy.tls_addr(), "a.example").await?;
    let reply = h1.request(get("b.example", "/")).await?;
    assert_eq!(
        reply.status,
        StatusCode::MISDIRECTED_REQUEST,
        "{}",
        reply.text()
    );
    // Coalescing across names on one certificate stays allowed, on the same connection.
    for host in ["a.example", "C.Example.", "c.example:443"] {
        let reply = h1.request(get(host, "/")).await?;
        assert_eq!(reply.status, StatusCode::OK, "{host}: {}", reply.text());
    }
    // HTTP/2: the :authority is checked per stream.
    let h2 = TlsClient::new(&certs.ca(), ALPN_BOTH)?
        .h2(proxy.tls_addr(), "b.example")
        .await?;
    let reply = h2.request(get("a.example", "/")).await?;
    assert_eq!(reply.status, StatusCode::MISDIRECTED_REQUEST);
    let reply = h2.request(get("b.example", "/")).await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        origin.requests(),
        4,
        "nothing misdirected reached the origin"
    );
    Ok(())
}

#[tokio::test]
async fn redirect_https_sends_known_sites_to_the_tls_listener() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let certs = certs()?;
    let proxy = sites(&origin)
        .tls(certs.dir())
        .redirect_https()
        .start()
        .await?;
    let port = proxy.tls_addr().port();
    for (host, target, location) in [
        (
            "a.example",
            "/p/q?x=1&y=2",
            format!("https://a.example:{port}/p/q?x=1&y=2"),
        ),
        ("B.example:80", "/", format!("https://b.example:{port}/")),
    ] {
        let reply = portcullis_tests::client::get_once(proxy.addr(), host, target).await?;
        assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT, "{host}");
        assert_eq!(reply.header("location"), Some(location.as_str()));
    }
    let reply = portcullis_tests::client::get_once(proxy.addr(), "nobody.example", "/").await?;
    assert_eq!(reply.status, StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(origin.requests(), 0, "redirects never reach the origin");
    // What the redirect points at is served on the TLS listener.
    let out = curl_https(proxy.tls_addr(), "a.example", "/p", &certs.ca(), &[]).await?;
    assert!(out.text.ends_with("200"), "{}", out.text);
    Ok(())
}

#[tokio::test]
async fn a_silent_client_is_cut_at_the_handshake_timeout() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let certs = certs()?;
    let proxy = sites(&origin)
        .tls(certs.dir())
        .tls_key("handshake_timeout", "200ms")
        .start()
        .await?;
    let mut tcp = tokio::net::TcpStream::connect(proxy.tls_addr()).await?;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(std::time::Duration::from_secs(30), tcp.read(&mut buf))
        .await
        .map_err(|_| anyhow::anyhow!("the proxy never closed the silent connection"))?
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a byte");
    eventually("the timeout is counted", || async {
        let scrape = Scrape::fetch(proxy.admin()).await?;
        let n = scrape.get(
            "portcullis_tls_handshakes_total",
            &[("result", "timeout"), ("version", "unknown")],
        )?;
        anyhow::ensure!(n == 1.0, "timeouts = {n}");
        Ok(())
    })
    .await?;
    no_connection_left_open(proxy.admin()).await
}

#[tokio::test]
async fn handshakes_hold_a_connection_slot_and_drain_covers_tls() -> anyhow::Result<()> {
    let gate = Gate::new();
    let origin = Origin::gated(&gate).start().await?;
    let certs = certs()?;
    let mut proxy = TestProxy::new()
        .site(Site::new("a", "a.example").origin(&origin.url()))
        .tls(certs.dir())
        .grace(std::time::Duration::from_secs(20))
        .start()
        .await?;
    // A client that has not sent its ClientHello yet is already an open connection.
    let mut silent = tokio::net::TcpStream::connect(proxy.tls_addr()).await?;
    let active = |n: f64| {
        let admin = proxy.admin();
        move || async move {
            let scrape = Scrape::fetch(admin).await?;
            let active = scrape.get("portcullis_connections_active", &[])?;
            anyhow::ensure!(active == n, "connections_active = {active}");
            Ok(())
        }
    };
    eventually("the handshake in progress is counted", active(1.0)).await?;
    let h2 = TlsClient::new(&certs.ca(), ALPN_BOTH)?
        .h2(proxy.tls_addr(), "a.example")
        .await?;
    let in_flight = tokio::spawn(async move { h2.request(get("a.example", "/slow")).await });
    eventually("the origin holds the request", || async {
        anyhow::ensure!(origin.requests() == 1);
        Ok(())
    })
    .await?;
    eventually("both TLS connections are counted", active(2.0)).await?;

    proxy.shutdown();
    // The unfinished handshake is cut at once; the in-flight HTTP/2 request over TLS finishes.
    let mut buf = [0u8; 8];
    let n = tokio::time::timeout(std::time::Duration::from_secs(30), silent.read(&mut buf))
        .await
        .map_err(|_| anyhow::anyhow!("the drain left the unfinished handshake open"))?
        .unwrap_or(0);
    assert_eq!(n, 0);
    gate.open();
    let reply = in_flight.await??;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    proxy.stopped().await
}
