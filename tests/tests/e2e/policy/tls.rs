//! Legal orders over TLS: `refuse_tls` aborts the handshake by SNI with `access_denied`; a
//! suspended host gets its order whatever the SNI (domain fronting); an allowed host on a
//! connection whose SNI is suspended gets 421 (coalescing).

use std::time::Duration;

use http::StatusCode;
use portcullis_tests::client::get;
use portcullis_tests::policy::{Order, PolicyFile};
use portcullis_tests::tls::s_client;
use portcullis_tests::{Origin, OriginHandle, RawConn, Scrape, TestCerts, TestProxy, TlsClient};

use super::{PIRATE, blocked_count, pirate_order, proxy_with};

const ALPN_H1: &[&[u8]] = &[b"http/1.1"];
const ALPN_BOTH: &[&[u8]] = &[b"h2", b"http/1.1"];

/// One certificate for the shop and the suspended host (a CDN's shared certificate), one for
/// `refused.example`, one for `other.example`.
fn certs() -> anyhow::Result<TestCerts> {
    let certs = TestCerts::new()?;
    certs.add(&["shop.example", "pirate.example", "www.pirate.example"])?;
    certs.add(&["refused.example"])?;
    certs.add(&["other.example"])?;
    Ok(certs)
}

fn tls_proxy(origin: &OriginHandle, certs: &TestCerts) -> TestProxy {
    let file = PolicyFile::new(1)
        .order(pirate_order())
        .order(Order::new("REFUSE-TLS", "refused.example").action("refuse_tls"));
    proxy_with(origin, &file)
        .tls(certs.dir())
        .tls_key("default_cert", "shop.example")
}

#[tokio::test]
async fn refuse_tls_aborts_the_handshake_with_access_denied() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let certs = certs()?;
    let proxy = tls_proxy(&origin, &certs).start().await?;
    let client = TlsClient::new(&certs.ca(), ALPN_BOTH)?;
    let err = client
        .connect(proxy.tls_addr(), "refused.example")
        .await
        .expect_err("the handshake must be refused");
    let alert = err
        .chain()
        .find_map(|e| e.downcast_ref::<std::io::Error>())
        .and_then(|e| e.get_ref())
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .cloned();
    assert_eq!(
        alert,
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::AccessDenied
        )),
        "{err:#}"
    );
    // Spelled otherwise, the SNI names the same host.
    let out = s_client(proxy.tls_addr(), &["-servername", "REFUSED.Example"]).await?;
    assert!(
        !out.success && out.text.contains("alert number 49"),
        "{}",
        out.text
    );
    let out = s_client(proxy.tls_addr(), &["-servername", "refused.example"]).await?;
    assert!(!out.success, "{}", out.text);
    assert!(
        out.text.contains("access denied") && out.text.contains("alert number 49"),
        "openssl must report the access_denied alert: {}",
        out.text
    );
    // The same name without TLS: the request path drops the connection.
    let mut raw = RawConn::connect(proxy.addr()).await?;
    raw.write(b"GET / HTTP/1.1\r\nHost: refused.example\r\n\r\n")
        .await?;
    assert!(raw.closed_within(Duration::from_secs(10)).await?);
    assert!(raw.buffered().is_empty());
    // Other names on the same listener are served.
    let reply = TlsClient::new(&certs.ca(), ALPN_H1)?
        .h1(proxy.tls_addr(), "shop.example")
        .await?
        .request(get("shop.example", "/"))
        .await?;
    assert_eq!(reply.status, StatusCode::OK);
    let scrape = Scrape::fetch(proxy.admin()).await?;
    assert_eq!(blocked_count(&scrape, "REFUSE-TLS", "refuse_tls")?, 4.0);
    assert_eq!(
        scrape.get(
            "portcullis_tls_handshakes_total",
            &[("result", "refused"), ("version", "unknown")]
        )?,
        3.0
    );
    assert_eq!(origin.requests(), 1);
    Ok(())
}

#[tokio::test]
async fn a_suspended_host_is_blocked_whatever_the_sni() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let certs = certs()?;
    let proxy = tls_proxy(&origin, &certs).start().await?;
    // Domain fronting: SNI of an allowed name, Host of the suspended one.
    for sni in ["shop.example", "other.example"] {
        let mut h1 = TlsClient::new(&certs.ca(), ALPN_H1)?
            .h1(proxy.tls_addr(), sni)
            .await?;
        let reply = h1.request(get(PIRATE, "/")).await?;
        assert_eq!(
            reply.status,
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            "SNI {sni}, Host {PIRATE}"
        );
        let reply = h1.request(get("www.pirate.example", "/")).await?;
        assert_eq!(reply.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
        let h2 = TlsClient::new(&certs.ca(), ALPN_BOTH)?
            .h2(proxy.tls_addr(), sni)
            .await?;
        let reply = h2.request(get(PIRATE, "/")).await?;
        assert_eq!(
            reply.status,
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            "h2: SNI {sni}, :authority {PIRATE}"
        );
    }
    // No SNI at all (the default certificate).
    let mut h1 = TlsClient::new(&certs.ca(), ALPN_H1)?
        .without_sni()
        .h1(proxy.tls_addr(), "shop.example")
        .await?;
    let reply = h1.request(get(PIRATE, "/")).await?;
    assert_eq!(reply.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    assert_eq!(origin.requests(), 0);
    Ok(())
}

#[tokio::test]
async fn an_allowed_host_on_a_suspended_sni_gets_421() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let certs = certs()?;
    let proxy = tls_proxy(&origin, &certs).start().await?;
    // The certificate covers both names, so only the policy can refuse the coalesced request.
    let mut h1 = TlsClient::new(&certs.ca(), ALPN_H1)?
        .h1(proxy.tls_addr(), PIRATE)
        .await?;
    let reply = h1.request(get("shop.example", "/")).await?;
    assert_eq!(
        reply.status,
        StatusCode::MISDIRECTED_REQUEST,
        "{}",
        reply.text()
    );
    let reply = h1.request(get(PIRATE, "/")).await?;
    assert_eq!(reply.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    let h2 = TlsClient::new(&certs.ca(), ALPN_BOTH)?
        .h2(proxy.tls_addr(), "www.pirate.example")
        .await?;
    let reply = h2.request(get("shop.example", "/")).await?;
    assert_eq!(reply.status, StatusCode::MISDIRECTED_REQUEST);
    // The same host on its own connection is served.
    let reply = TlsClient::new(&certs.ca(), ALPN_H1)?
        .h1(proxy.tls_addr(), "shop.example")
        .await?
        .request(get("shop.example", "/"))
        .await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(origin.requests(), 1);
    Ok(())
}

#[tokio::test]
async fn a_suspended_host_is_blocked_before_the_https_redirect() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let certs = certs()?;
    let proxy = tls_proxy(&origin, &certs).redirect_https().start().await?;
    let reply = portcullis_tests::client::get_once(proxy.addr(), PIRATE, "/").await?;
    assert_eq!(reply.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    assert_eq!(reply.header("location"), None);
    let reply = portcullis_tests::client::get_once(proxy.addr(), "shop.example", "/").await?;
    assert_eq!(reply.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(origin.requests(), 0);
    Ok(())
}
