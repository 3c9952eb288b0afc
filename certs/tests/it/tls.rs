//! Real handshakes over 127.0.0.1: SNI picks the certificate, versions, ALPN, origin client trust.

use std::time::Duration;

use portcullis_certs::{
    CertStore, PROTOCOL_VERSIONS, TlsConfigError, client_config, server_config,
};
use rustls::client::Resumption;
use rustls::version::{TLS12, TLS13};
use rustls::{AlertDescription, CertificateError, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{ALPN, TestCa, connect, rustls_error, serve, write_pair};

struct Site {
    ca: TestCa,
    _dir: tempfile::TempDir,
    store: CertStore,
    shop: String,
    api: String,
}

fn site(default: Option<&str>) -> Site {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let shop = ca.leaf(&["shop.example", "*.shop.example"]);
    let api = ca.leaf(&["api.example"]);
    write_pair(dir.path(), "shop", &shop);
    write_pair(dir.path(), "api", &api);
    let store = CertStore::load(dir.path(), default).unwrap();
    Site {
        ca,
        _dir: dir,
        store,
        shop: shop.serial,
        api: api.serial,
    }
}

#[tokio::test]
async fn sni_picks_the_certificate() {
    let s = site(None);
    let addr = serve(server_config(&s.store, ALPN).unwrap()).await;
    let client = s.ca.client(&[&TLS13, &TLS12], Resumption::disabled());

    let seen = connect(client.clone(), addr, "api.example").await.unwrap();
    assert_eq!(seen.serial, s.api);
    let seen = connect(client.clone(), addr, "shop.example").await.unwrap();
    assert_eq!(seen.serial, s.shop);
    let seen = connect(client.clone(), addr, "cart.shop.example")
        .await
        .unwrap();
    assert_eq!(seen.serial, s.shop);
    // The proxy's ALPN preference wins.
    assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(seen.version, Some(ProtocolVersion::TLSv1_3));
}

#[tokio::test]
async fn unknown_sni_without_default_fails_with_access_denied() {
    let s = site(None);
    let addr = serve(server_config(&s.store, ALPN).unwrap()).await;
    let client = s.ca.client(&[&TLS13, &TLS12], Resumption::disabled());
    for sni in ["unknown.example", "a.b.shop.example"] {
        let err = connect(client.clone(), addr, sni).await.unwrap_err();
        // rustls' server answers "no certificate" with a fatal access_denied alert.
        assert_eq!(
            rustls_error(&err),
            Some(&rustls::Error::AlertReceived(
                AlertDescription::AccessDenied
            )),
            "{sni}: {err}"
        );
    }
}

#[tokio::test]
async fn unknown_sni_with_default_gets_the_default() {
    let s = site(Some("api"));
    let addr = serve(server_config(&s.store, ALPN).unwrap()).await;
    // The client checks the name, so it must accept the default's certificate: only the
    // serial matters here.
    let client = client_config(None, true, ALPN).unwrap();
    let seen = connect(client, addr, "unknown.example").await.unwrap();
    assert_eq!(seen.serial, s.api);
}

#[tokio::test]
async fn only_tls12_and_tls13_are_offered() {
    let versions: Vec<ProtocolVersion> = PROTOCOL_VERSIONS.iter().map(|v| v.version).collect();
    assert_eq!(
        versions,
        [ProtocolVersion::TLSv1_3, ProtocolVersion::TLSv1_2]
    );

    let s = site(None);
    let addr = serve(server_config(&s.store, ALPN).unwrap()).await;
    for (version, expect) in [
        (&TLS12, ProtocolVersion::TLSv1_2),
        (&TLS13, ProtocolVersion::TLSv1_3),
    ] {
        let client = s.ca.client(&[version], Resumption::disabled());
        let seen = connect(client, addr, "api.example").await.unwrap();
        assert_eq!(seen.version, Some(expect));
    }

    // Control: the same hand-made hello saying TLS 1.2 gets a ServerHello (a handshake record).
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&legacy_client_hello([3, 3], "api.example"))
        .await
        .unwrap();
    let mut first = [0; 1];
    tcp.read_exact(&mut first).await.unwrap();
    assert_eq!(first[0], 22, "not a handshake record");

    // rustls cannot even offer TLS 1.0/1.1, so speak them by hand: a ClientHello with only a
    // legacy version and no supported_versions extension gets a protocol_version alert.
    for legacy in [[3, 1], [3, 2]] {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&legacy_client_hello(legacy, "api.example"))
            .await
            .unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut reply))
            .await
            .unwrap()
            .unwrap();
        // Alert record: type 21, version, length 2, level fatal (2), description.
        assert!(reply.len() >= 7, "{reply:?}");
        assert_eq!(reply[0], 21, "not an alert: {reply:?}");
        assert_eq!(reply[5], 2);
        assert_eq!(
            AlertDescription::from(reply[6]),
            AlertDescription::ProtocolVersion
        );
    }
}

/// A ClientHello for `version` (e.g. `[3, 2]` = TLS 1.1) without a supported_versions
/// extension, otherwise acceptable (SNI, groups, signature schemes), so that the version is the
/// only thing wrong with it.
fn legacy_client_hello(version: [u8; 2], sni: &str) -> Vec<u8> {
    fn with_len16(bytes: &[u8]) -> Vec<u8> {
        let mut out = u16::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }
    fn extension(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut out = kind.to_be_bytes().to_vec();
        out.extend(with_len16(data));
        out
    }
    let mut name = vec![0]; // host_name
    name.extend(with_len16(sni.as_bytes()));
    let mut extensions = extension(0x0000, &with_len16(&name)); // server_name
    extensions.extend(extension(0x000a, &with_len16(&[0, 0x1d, 0, 0x17]))); // x25519, P-256
    extensions.extend(extension(0x000b, &[1, 0])); // uncompressed points
    extensions.extend(extension(0x000d, &with_len16(&[4, 3, 8, 4]))); // ecdsa_p256, rsa_pss

    let mut body = version.to_vec();
    body.extend_from_slice(&[7; 32]); // random
    body.push(0); // empty session id
    body.extend(with_len16(&[0xc0, 0x2b, 0xc0, 0x09, 0x00, 0x2f])); // a GCM suite, two CBC
    body.extend_from_slice(&[1, 0]); // null compression
    body.extend(with_len16(&extensions));
    let mut handshake = vec![1, 0]; // ClientHello, 24-bit length
    handshake.extend(with_len16(&body));
    let mut record = vec![22, 3, 1];
    record.extend(with_len16(&handshake));
    record
}

#[tokio::test]
async fn origin_client_trusts_its_ca_file_and_nothing_else() {
    let s = site(None);
    let addr = serve(server_config(&s.store, ALPN).unwrap()).await;
    let files = tempfile::tempdir().unwrap();

    let right = s.ca.write(files.path(), "right.pem");
    let client = client_config(Some(&right), false, ALPN).unwrap();
    let seen = connect(client, addr, "api.example").await.unwrap();
    assert_eq!(seen.serial, s.api);

    let wrong = TestCa::new().write(files.path(), "wrong.pem");
    let client = client_config(Some(&wrong), false, ALPN).unwrap();
    let err = connect(client, addr, "api.example").await.unwrap_err();
    assert_eq!(
        rustls_error(&err),
        Some(&rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer
        )),
        "{err}"
    );

    // The default roots do not know a test CA either.
    let client = client_config(None, false, ALPN).unwrap();
    assert!(connect(client, addr, "api.example").await.is_err());

    // insecure_skip_verify accepts it, even for a name it does not cover.
    let client = client_config(Some(&wrong), true, ALPN).unwrap();
    let seen = connect(client.clone(), addr, "api.example").await.unwrap();
    assert_eq!(seen.serial, s.api);
}

#[test]
fn a_bad_ca_file_is_an_error_naming_it() {
    let files = tempfile::tempdir().unwrap();
    let missing = files.path().join("missing.pem");
    let empty = files.path().join("empty.pem");
    std::fs::write(&empty, "no pem here\n").unwrap();
    let torn = files.path().join("torn.pem");
    let pem = TestCa::new().pem;
    std::fs::write(&torn, &pem[..pem.len() / 2]).unwrap();

    let err = client_config(Some(&missing), false, ALPN).unwrap_err();
    assert!(matches!(err, TlsConfigError::CaRead { .. }), "{err:?}");
    let err = client_config(Some(&empty), false, ALPN).unwrap_err();
    assert!(matches!(err, TlsConfigError::CaEmpty { .. }), "{err:?}");
    let err = client_config(Some(&torn), false, ALPN).unwrap_err();
    assert!(matches!(err, TlsConfigError::CaPem { .. }), "{err:?}");
    for (path, err) in [
        (&missing, client_config(Some(&missing), false, ALPN)),
        (&empty, client_config(Some(&empty), false, ALPN)),
        (&torn, client_config(Some(&torn), false, ALPN)),
    ] {
        let text = err.unwrap_err().to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
    }
}

#[test]
fn configs_carry_the_alpn_and_resumption_settings() {
    let s = site(None);
    let server = server_config(&s.store, ALPN).unwrap();
    assert_eq!(
        server.alpn_protocols,
        [b"h2".to_vec(), b"http/1.1".to_vec()]
    );
    assert!(server.ticketer.enabled());
    let client = client_config(None, false, &[b"http/1.1"]).unwrap();
    assert_eq!(client.alpn_protocols, [b"http/1.1".to_vec()]);
}
