//! Fixtures: a test CA minting leaves with rcgen, pair writers, a TLS echo server on
//! `127.0.0.1:0`, a client that reports what it saw, and `eventually`.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use portcullis_certs::{CertStore, provider};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, ProtocolVersion, RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

pub(crate) const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// A throwaway CA.
pub(crate) struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub(crate) pem: String,
    pub(crate) der: CertificateDer<'static>,
}

/// A leaf certificate and its key, as PEM, with the serial rustls will show.
#[derive(Clone)]
pub(crate) struct Leaf {
    pub(crate) cert: String,
    pub(crate) key: String,
    pub(crate) serial: String,
}

static SERIAL: AtomicU64 = AtomicU64::new(1000);

impl TestCa {
    pub(crate) fn new() -> TestCa {
        // A distinct name per CA, so a client trusting another test CA fails on the issuer,
        // not on a signature by a same-named CA.
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("portcullis test CA {serial}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf for `names`, valid now.
    pub(crate) fn leaf(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        self.leaf_with(names, key, |_| {})
    }

    /// A leaf for `names` with `key`, after `tweak` edits the parameters.
    pub(crate) fn leaf_with(
        &self,
        names: &[&str],
        key: KeyPair,
        tweak: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        params.serial_number = Some(SerialNumber::from(serial));
        tweak(&mut params);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            serial: serial_of(cert.der()),
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A leaf whose validity ended in 2020.
    pub(crate) fn expired_leaf(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        self.leaf_with(names, key, |p| {
            p.not_before = rcgen::date_time_ymd(2019, 1, 1);
            p.not_after = rcgen::date_time_ymd(2020, 1, 1);
        })
    }

    /// Writes the CA certificate to `dir/name`.
    pub(crate) fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.pem).unwrap();
        path
    }

    /// A client trusting only this CA, offering `versions`, with the given resumption.
    pub(crate) fn client(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
        resumption: Resumption,
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.resumption = resumption;
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// The serial as x509-parser prints it, for comparing what a handshake served.
pub(crate) fn serial_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.raw_serial_as_string()
}

/// Writes `dir/label.crt` + `dir/label.key` (the key first, as a deploy would).
pub(crate) fn write_pair(dir: &Path, label: &str, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{label}.crt")),
        dir.join(format!("{label}.key")),
    );
    std::fs::write(&key, &leaf.key).unwrap();
    std::fs::write(&cert, &leaf.cert).unwrap();
    (cert, key)
}

/// Writes `dir/name/cert.pem` + `dir/name/key.pem`.
pub(crate) fn write_folder(dir: &Path, name: &str, leaf: &Leaf) -> PathBuf {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("key.pem"), &leaf.key).unwrap();
    std::fs::write(folder.join("cert.pem"), &leaf.cert).unwrap();
    folder
}

/// Replaces `path` by writing a hidden sibling and renaming it over (what deploy tools do).
pub(crate) fn replace_atomically(path: &Path, contents: &str) {
    let name = path.file_name().unwrap().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The serial of the certificate `store` would serve for `sni`.
pub(crate) fn served_serial(store: &CertStore, sni: &str) -> Option<String> {
    let entry = store.lookup(Some(sni))?;
    Some(serial_of(&entry.certified_key().cert[0]))
}

/// Polls `check` every 20 ms until it holds; panics after 10 s. The bound is generous because
/// a loaded CI machine can be slow; a pass is usually a few hundred ms (the debounce).
pub(crate) fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A TLS server on `127.0.0.1:0` that sends `hello` on each connection and closes it.
pub(crate) async fn serve(config: Arc<ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tls.write_all(b"hello").await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    addr
}

/// What a client saw on one connection.
#[derive(Debug)]
pub(crate) struct Seen {
    pub(crate) serial: String,
    pub(crate) kind: Option<HandshakeKind>,
    pub(crate) version: Option<ProtocolVersion>,
    pub(crate) alpn: Option<Vec<u8>>,
}

/// Connects with `sni`, reads to the end (which also takes in TLS 1.3 tickets), reports.
pub(crate) async fn connect(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    sni: &str,
) -> io::Result<Seen> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).map_err(io::Error::other)?;
    let mut tls = TlsConnector::from(config).connect(name, tcp).await?;
    let mut body = Vec::new();
    tls.read_to_end(&mut body).await?;
    assert_eq!(body, b"hello");
    let (_, conn) = tls.get_ref();
    let chain = conn.peer_certificates().unwrap_or_default();
    Ok(Seen {
        serial: chain.first().map(|c| serial_of(c)).unwrap_or_default(),
        kind: conn.handshake_kind(),
        version: conn.protocol_version(),
        alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
    })
}

/// The rustls error inside an I/O error from tokio-rustls, if that is what it is.
pub(crate) fn rustls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}
