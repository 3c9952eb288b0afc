//! Certificates that change while the proxy runs: a replaced pair is served on the next
//! handshake, a corrupt one keeps the old and is counted, SIGHUP reloads the real binary,
//! session resumption survives a reload, and the TLS metrics pass promtool.

use http::StatusCode;
use portcullis_tests::client::get;
use portcullis_tests::tls::peer_leaf;
use portcullis_tests::{
    Origin, Scrape, Site, TestCerts, TestProxy, TlsClient, eventually, promtool_check,
};
use rustls::HandshakeKind;

const ALPN_BOTH: &[&[u8]] = &[b"h2", b"http/1.1"];
const ALPN_H1: &[&[u8]] = &[b"http/1.1"];

fn shop(origin: &portcullis_tests::OriginHandle) -> TestProxy {
    TestProxy::new().site(Site::new("shop", "shop.example").origin(&origin.url()))
}

async fn reloads(admin: std::net::SocketAddr, result: &str) -> anyhow::Result<f64> {
    Scrape::fetch(admin)
        .await?
        .get("portcullis_tls_reloads_total", &[("result", result)])
}

#[tokio::test]
async fn a_replaced_certificate_is_served_without_restart() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let certs = TestCerts::new()?;
    certs.add(&["shop.example"])?;
    let old = certs.leaf("shop.example")?;
    let proxy = shop(&origin).tls(certs.dir()).start().await?;
    let client = TlsClient::new(&certs.ca(), ALPN_H1)?;
    // A connection made before the change keeps working after it.
    let mut before = client.h1(proxy.tls_addr(), "shop.example").await?;
    // `generate` writes the key, then the certificate, each by an atomic rename.
    certs.add(&["shop.example"])?;
    let new = certs.leaf("shop.example")?;
    assert_ne!(old, new);
    eventually("the new certificate is served", || async {
        let stream = client.connect(proxy.tls_addr(), "shop.example").await?;
        anyhow::ensure!(peer_leaf(&stream)? == new, "still the old certificate");
        Ok(())
    })
    .await?;
    let reply = before.request(get("shop.example", "/")).await?;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = client
        .h1(proxy.tls_addr(), "shop.example")
        .await?
        .request(get("shop.example", "/"))
        .await?;
    assert_eq!(reply.status, StatusCode::OK);
    // The set is swapped before the reload is counted: the count may trail the handshake.
    eventually("the reload is counted", || async {
        let n = reloads(proxy.admin(), "success").await?;
        anyhow::ensure!(n >= 1.0, "reloads = {n}");
        Ok(())
    })
    .await?;
    // (No assertion on errors: a watcher reload that falls between the key's rename and the
    // certificate's sees a mismatched pair, counts an error and keeps the old set, as it must.)
    Ok(())
}

#[tokio::test]
async fn a_corrupt_replacement_keeps_the_old_certificate() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let certs = TestCerts::new()?;
    certs.add(&["shop.example"])?;
    let old = certs.leaf("shop.example")?;
    let proxy = shop(&origin).tls(certs.dir()).start().await?;
    certs.replace_file(
        "shop.example.crt",
        b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    )?;
    eventually("the failed reload is counted", || async {
        let errors = reloads(proxy.admin(), "error").await?;
        anyhow::ensure!(errors >= 1.0, "reload errors = {errors}");
        Ok(())
    })
    .await?;
    let client = TlsClient::new(&certs.ca(), ALPN_H1)?;
    let stream = client.connect(proxy.tls_addr(), "shop.example").await?;
    assert_eq!(peer_leaf(&stream)?, old, "the last good certificate stays");
    let reply = client
        .h1(proxy.tls_addr(), "shop.example")
        .await?
        .request(get("shop.example", "/"))
        .await?;
    assert_eq!(reply.status, StatusCode::OK);
    // The expiry gauge still describes the pair in service.
    let scrape = Scrape::fetch(proxy.admin()).await?;
    let expiry = scrape.get(
        "portcullis_tls_cert_expiry_timestamp_seconds",
        &[("name", "shop.example")],
    )?;
    assert!(expiry > 0.0);
    Ok(())
}

#[tokio::test]
async fn sighup_reloads_the_certificates_of_the_binary() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let certs = TestCerts::new()?;
    certs.add(&["shop.example"])?;
    let proxy = shop(&origin).tls(certs.dir()).spawn_binary(&[])?;
    let client = TlsClient::new(&certs.ca(), ALPN_H1)?;
    let reply = client
        .h1(proxy.tls_addr(), "shop.example")
        .await?
        .request(get("shop.example", "/"))
        .await?;
    assert_eq!(reply.status, StatusCode::OK);
    // Nothing on disk changed, so the watcher stays quiet: only SIGHUP can cause this reload.
    assert_eq!(reloads(proxy.admin(), "success").await?, 0.0);
    proxy.hangup()?;
    eventually("SIGHUP reloads, and says so in the log", || async {
        let n = reloads(proxy.admin(), "success").await?;
        anyhow::ensure!(n == 1.0, "reloads = {n}");
        // The log is read from the process's stdout by another thread: it may lag the metric.
        anyhow::ensure!(
            proxy
                .output()
                .iter()
                .any(|l| l.contains("certificates reloaded (SIGHUP)")),
            "no reload line yet"
        );
        Ok(())
    })
    .await?;
    // A bad file (seen by the watcher, then SIGHUP): counted, logged naming the file, and the
    // proxy keeps serving the last good set.
    let good = certs.leaf("shop.example")?;
    certs.replace_file("shop.example.key", b"not a key\n")?;
    proxy.hangup()?;
    eventually(
        "the failed reload is counted and logged naming the file",
        || async {
            let n = reloads(proxy.admin(), "error").await?;
            anyhow::ensure!(n >= 1.0, "reload errors = {n}");
            anyhow::ensure!(
                proxy
                    .output()
                    .iter()
                    .any(|l| l.contains("keeping the last good set")
                        && l.contains("shop.example.key")),
                "no error line naming the file yet"
            );
            Ok(())
        },
    )
    .await?;
    let stream = client.connect(proxy.tls_addr(), "shop.example").await?;
    assert_eq!(peer_leaf(&stream)?, good);
    Ok(())
}

#[tokio::test]
async fn sessions_resume_across_a_certificate_reload() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let certs = TestCerts::new()?;
    certs.add(&["shop.example"])?;
    let proxy = shop(&origin).tls(certs.dir()).start().await?;
    let client = TlsClient::new(&certs.ca(), &[b"http/1.1"])?;
    let request_once = |client: TlsClient| {
        let addr = proxy.tls_addr();
        async move {
            let stream = client.connect(addr, "shop.example").await?;
            let kind = stream.get_ref().1.handshake_kind();
            // A request and its answer: by then the client has read the session tickets.
            let mut h1 = portcullis_tests::H1::handshake(stream).await?;
            let reply = h1.request(get("shop.example", "/")).await?;
            anyhow::ensure!(reply.status == StatusCode::OK, "{}", reply.text());
            anyhow::Ok(kind)
        }
    };
    assert_eq!(
        request_once(client.clone()).await?,
        Some(HandshakeKind::Full)
    );
    assert_eq!(
        request_once(client.clone()).await?,
        Some(HandshakeKind::Resumed)
    );
    certs.add(&["shop.example"])?;
    eventually("the reload happens", || async {
        let n = reloads(proxy.admin(), "success").await?;
        anyhow::ensure!(n >= 1.0, "reloads = {n}");
        Ok(())
    })
    .await?;
    assert_eq!(
        request_once(client.clone()).await?,
        Some(HandshakeKind::Resumed),
        "the ticket keys outlive a certificate reload"
    );
    // TLS 1.2 resumes too (session ids or tickets).
    let tls12 = {
        let mut config = rustls::ClientConfig::builder_with_provider(portcullis_certs::provider())
            .with_protocol_versions(&[&rustls::version::TLS12])?
            .with_root_certificates(root_store(&certs)?)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        std::sync::Arc::new(config)
    };
    let connector = tokio_rustls::TlsConnector::from(tls12);
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let tcp = tokio::net::TcpStream::connect(proxy.tls_addr()).await?;
        let stream = connector.connect("shop.example".try_into()?, tcp).await?;
        kinds.push(stream.get_ref().1.handshake_kind());
    }
    assert_eq!(
        kinds,
        [Some(HandshakeKind::Full), Some(HandshakeKind::Resumed)]
    );
    Ok(())
}

fn root_store(certs: &TestCerts) -> anyhow::Result<rustls::RootCertStore> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(certs.ca())? {
        roots.add(cert?)?;
    }
    Ok(roots)
}

#[tokio::test]
async fn tls_metrics_are_exported_and_pass_promtool() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let certs = TestCerts::new()?;
    certs.add(&["shop.example"])?;
    let spare = certs.add(&["spare.example"])?;
    let proxy = shop(&origin).tls(certs.dir()).start().await?;
    let client = TlsClient::new(&certs.ca(), ALPN_BOTH)?;
    drop(client.connect(proxy.tls_addr(), "shop.example").await?);
    let _ = client.connect(proxy.tls_addr(), "nobody.example").await;
    let scrape = Scrape::fetch(proxy.admin()).await?;
    promtool_check(&scrape.text)?;
    let handshakes = |result, version| {
        scrape.get(
            "portcullis_tls_handshakes_total",
            &[("result", result), ("version", version)],
        )
    };
    assert_eq!(handshakes("success", "TLSv1.3")?, 1.0);
    assert_eq!(handshakes("success", "TLSv1.2")?, 0.0);
    assert_eq!(handshakes("unknown_sni", "unknown")?, 1.0);
    assert_eq!(handshakes("timeout", "unknown")?, 0.0);
    let not_after = portcullis_certs::check_dir(certs.dir(), None)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .into_iter()
        .map(|p| (p.label, p.not_after))
        .collect::<Vec<_>>();
    for (label, expiry) in &not_after {
        let gauge = scrape.get(
            "portcullis_tls_cert_expiry_timestamp_seconds",
            &[("name", label)],
        )?;
        assert_eq!(gauge, *expiry as f64, "{label}");
    }
    // A pair that goes away takes its expiry series with it.
    std::fs::remove_file(&spare.cert)?;
    std::fs::remove_file(&spare.key)?;
    eventually("the removed pair's gauge disappears", || async {
        let scrape = Scrape::fetch(proxy.admin()).await?;
        let gone = scrape.get_or_zero(
            "portcullis_tls_cert_expiry_timestamp_seconds",
            &[("name", "spare.example")],
        )? == 0.0;
        anyhow::ensure!(gone, "spare.example still exported");
        promtool_check(&scrape.text)?;
        Ok(())
    })
    .await?;
    Ok(())
}
