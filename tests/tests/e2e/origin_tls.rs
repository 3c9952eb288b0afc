//! `https://` origins: the proxy verifies the origin's certificate against the site's CA (or
//! the webpki roots), sends the right SNI, keeps TLS connections pooled, and answers 502 with a
//! clear log line when verification fails.

use http::StatusCode;
use portcullis_tests::client::get;
use portcullis_tests::{H1, Origin, Scrape, Site, TestCerts, TestProxy};

const SHOP: &str = "shop.example";
/// The name on the origin's certificate; the origin itself listens on 127.0.0.1.
const ORIGIN_NAME: &str = "origin.shop.test";

/// An echo origin serving HTTPS with a certificate for [`ORIGIN_NAME`] from its own CA.
async fn tls_origin(h2: bool) -> anyhow::Result<(TestCerts, portcullis_tests::OriginHandle)> {
    let certs = TestCerts::new()?;
    certs.add(&[ORIGIN_NAME])?;
    let origin = if h2 {
        Origin::echo().h2c()
    } else {
        Origin::echo()
    };
    let origin = origin.tls(certs.dir())?.start().await?;
    Ok((certs, origin))
}

fn origin_tls(ca: &std::path::Path) -> String {
    format!(
        "{{ ca_file: {:?}, server_name: {ORIGIN_NAME} }}",
        ca.display().to_string()
    )
}

#[tokio::test]
async fn https_origin_verified_against_the_site_ca() -> anyhow::Result<()> {
    let (certs, origin) = tls_origin(false).await?;
    assert!(origin.url().starts_with("https://"));
    let proxy = TestProxy::new()
        .site(
            Site::new("shop", SHOP)
                .origin(&origin.url())
                .set("origin_tls", &origin_tls(&certs.ca())),
        )
        .start()
        .await?;
    let mut client = H1::connect(proxy.addr()).await?;
    for path in ["/one", "/two", "/three"] {
        let reply = client.request(get(SHOP, path)).await?;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        let seen = reply.echoed()?;
        assert_eq!(seen.path, path);
        assert_eq!(
            seen.header("host"),
            Some(SHOP),
            "the client's Host, not the origin's"
        );
    }
    // A request with a body (not retryable) first checks the pooled TLS connection is alive,
    // without disturbing its TLS stream.
    let post = portcullis_tests::client::request("POST", SHOP, "/upload")
        .body(portcullis_tests::body::full("payload"))?;
    let reply = client.request(post).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.echoed()?.body, "payload");
    assert_eq!(
        origin.connections(),
        1,
        "one pooled TLS connection carries every request"
    );
    Ok(())
}

#[tokio::test]
async fn https_origin_with_another_ca_is_502_and_logged() -> anyhow::Result<()> {
    let (_certs, origin) = tls_origin(false).await?;
    // A CA that did not sign the origin's certificate.
    let other = TestCerts::new()?;
    other.add(&["unrelated.test"])?;
    let proxy = TestProxy::new()
        .site(
            Site::new("shop", SHOP)
                .origin(&origin.url())
                .set("origin_tls", &origin_tls(&other.ca())),
        )
        .spawn_binary(&[])?;
    let reply = H1::connect(proxy.addr())
        .await?
        .request(get(SHOP, "/"))
        .await?;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    assert_eq!(
        origin.requests(),
        0,
        "nothing was sent to an unverified origin"
    );
    let scrape = Scrape::fetch(proxy.admin()).await?;
    assert!(
        scrape.get(
            "portcullis_upstream_errors_total",
            &[("site", "shop"), ("kind", "connect")]
        )? >= 1.0
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let lines = proxy.output();
        if let Some(line) = lines
            .iter()
            .find(|l| l.contains("origin connect failed") && l.contains("invalid peer certificate"))
        {
            assert!(
                line.contains(&origin.url()),
                "the log names the origin: {line}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no log line naming the certificate failure; output: {lines:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test]
async fn the_certificate_name_must_match_the_server_name() -> anyhow::Result<()> {
    let (certs, origin) = tls_origin(false).await?;
    let wrong_name = format!(
        "{{ ca_file: {:?}, server_name: other.shop.test }}",
        certs.ca().display().to_string()
    );
    let proxy = TestProxy::new()
        .site(
            Site::new("shop", SHOP)
                .origin(&origin.url())
                .set("origin_tls", &wrong_name),
        )
        .start()
        .await?;
    let reply = H1::connect(proxy.addr())
        .await?
        .request(get(SHOP, "/"))
        .await?;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(origin.requests(), 0);
    Ok(())
}

#[tokio::test]
async fn h2_over_tls_to_an_https_origin() -> anyhow::Result<()> {
    let (certs, origin) = tls_origin(true).await?;
    let proxy = TestProxy::new()
        .site(
            Site::new("shop", SHOP)
                .origin(&origin.url())
                .set("origin_tls", &origin_tls(&certs.ca()))
                .h2(),
        )
        .start()
        .await?;
    let mut client = H1::connect(proxy.addr()).await?;
    for _ in 0..3 {
        let reply = client.request(get(SHOP, "/h2")).await?;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.echoed()?.version, "HTTP/2.0");
    }
    assert_eq!(origin.connections(), 1, "one multiplexed TLS connection");
    Ok(())
}

#[tokio::test]
async fn insecure_skip_verify_accepts_any_certificate() -> anyhow::Result<()> {
    let (_certs, origin) = tls_origin(false).await?;
    let proxy = TestProxy::new()
        .site(
            Site::new("shop", SHOP)
                .origin(&origin.url())
                // The name only picks the origin's certificate (SNI); nothing is verified.
                .set(
                    "origin_tls",
                    &format!("{{ insecure_skip_verify: true, server_name: {ORIGIN_NAME} }}"),
                ),
        )
        .start()
        .await?;
    let reply = H1::connect(proxy.addr())
        .await?
        .request(get(SHOP, "/"))
        .await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    Ok(())
}
