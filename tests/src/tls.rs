//! TLS for tests: a certificate directory signed by a test CA ([`TestCerts`]), a rustls client
//! that trusts it ([`TlsClient`], on the one crypto provider, `portcullis_certs::provider()`),
//! and the command-line clients users reach for (`curl`, `openssl s_client`).
//!
//! A missing command-line tool fails the test with the Debian package to install; it never
//! skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::client::{DEFAULT_TIMEOUT, H1, H2};

/// A certificate directory (a temp dir) with a dev CA in `ca.pem`, filled by [`TestCerts::add`].
#[derive(Debug)]
pub struct TestCerts {
    dir: tempfile::TempDir,
}

impl TestCerts {
    /// An empty directory; the CA is made by the first [`TestCerts::add`].
    pub fn new() -> anyhow::Result<TestCerts> {
        Ok(TestCerts {
            dir: tempfile::tempdir().context("creating a certificate dir")?,
        })
    }

    /// Writes (or atomically replaces) the pair `<first host>.crt`/`.key` for `hosts`, signed
    /// by the directory's CA (a `*` in the label becomes `_`).
    pub fn add(&self, hosts: &[&str]) -> anyhow::Result<portcullis_certs::Generated> {
        let hosts: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
        portcullis_certs::generate(&hosts, self.dir.path()).context("generating a test cert")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate to trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The leaf certificate of the pair `label`, as served on the wire.
    pub fn leaf(&self, label: &str) -> anyhow::Result<CertificateDer<'static>> {
        let path = self.dir.path().join(format!("{label}.crt"));
        let pem = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let leaf = CertificateDer::pem_slice_iter(&pem)
            .next()
            .context("no certificate in the file")??;
        Ok(leaf)
    }

    /// Replaces `name` in the directory with `contents` by an atomic rename, the way
    /// deployment tools do.
    pub fn replace_file(&self, name: &str, contents: &[u8]) -> anyhow::Result<()> {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents)?;
        std::fs::rename(&tmp, self.dir.path().join(name))?;
        Ok(())
    }
}

/// A rustls client trusting one CA file.
#[derive(Debug, Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
}

impl TlsClient {
    /// Trusts `ca`, offers `alpn` (empty: no ALPN). Its session cache is shared by every
    /// connection it makes, so a second connection can resume.
    pub fn new(ca: &Path, alpn: &[&[u8]]) -> anyhow::Result<TlsClient> {
        let config = portcullis_certs::client_config(Some(ca), false, alpn)?;
        Ok(TlsClient { config })
    }

    /// The same client without the SNI extension (the name is still verified).
    pub fn without_sni(&self) -> TlsClient {
        let mut config = (*self.config).clone();
        config.enable_sni = false;
        TlsClient {
            config: Arc::new(config),
        }
    }

    /// Connects to `addr` and handshakes for `name` (SNI and verification).
    pub async fn connect(
        &self,
        addr: std::net::SocketAddr,
        name: &str,
    ) -> anyhow::Result<TlsStream<TcpStream>> {
        let server_name = ServerName::try_from(name.to_owned())?;
        let connector = TlsConnector::from(Arc::clone(&self.config));
        let handshake = async {
            let tcp = TcpStream::connect(addr).await?;
            anyhow::Ok(connector.connect(server_name, tcp).await?)
        };
        tokio::time::timeout(DEFAULT_TIMEOUT, handshake)
            .await
            .map_err(|_| anyhow::anyhow!("TLS handshake with {addr} for {name}: no answer"))?
    }

    /// HTTP/1.1 over TLS for `name`; fails if ALPN chose `h2` (offer `http/1.1` only, or no
    /// ALPN, to get HTTP/1.1).
    pub async fn h1(&self, addr: std::net::SocketAddr, name: &str) -> anyhow::Result<H1> {
        let stream = self.connect(addr, name).await?;
        anyhow::ensure!(
            stream.get_ref().1.alpn_protocol() != Some(b"h2"),
            "ALPN chose h2: this client offers h2, use one offering http/1.1 for HTTP/1.1"
        );
        H1::handshake(stream).await
    }

    /// HTTP/2 over TLS for `name`; fails unless ALPN chose `h2`.
    pub async fn h2(&self, addr: std::net::SocketAddr, name: &str) -> anyhow::Result<H2> {
        let stream = self.connect(addr, name).await?;
        let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        anyhow::ensure!(
            alpn.as_deref() == Some(b"h2"),
            "ALPN chose {:?}, not h2",
            alpn.map(|a| String::from_utf8_lossy(&a).into_owned())
        );
        H2::handshake(stream, "https").await
    }
}

/// The leaf certificate the server presented.
pub fn peer_leaf(stream: &TlsStream<TcpStream>) -> anyhow::Result<CertificateDer<'static>> {
    let certs = stream
        .get_ref()
        .1
        .peer_certificates()
        .context("no peer certificates")?;
    Ok(certs.first().context("empty chain")?.clone().into_owned())
}

/// A command-line tool, or an error naming the Debian package that provides it.
pub fn tool(cmd: &str, package: &str) -> anyhow::Result<Command> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(cmd).is_file()))
        .unwrap_or(false);
    if !found {
        bail!(
            "`{cmd}` is not installed: scripts/install-deps.sh installs it (Debian package \
             `{package}`; `apt-get install -y {package}`)"
        );
    }
    Ok(Command::new(cmd))
}

/// What a command printed, and whether it succeeded.
#[derive(Debug)]
pub struct ToolOutput {
    pub success: bool,
    /// stdout then stderr.
    pub text: String,
}

/// Runs a prepared command off the runtime (stdin empty), within [`DEFAULT_TIMEOUT`].
pub async fn run_tool(mut cmd: Command) -> anyhow::Result<ToolOutput> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let run = tokio::task::spawn_blocking(move || cmd.output());
    let out = tokio::time::timeout(DEFAULT_TIMEOUT, run)
        .await
        .map_err(|_| anyhow::anyhow!("{what} did not finish"))???;
    Ok(ToolOutput {
        success: out.status.success(),
        text: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

/// `openssl s_client -connect addr` plus `args` (e.g. `-servername x`, `-tls1_1`).
pub async fn s_client(addr: std::net::SocketAddr, args: &[&str]) -> anyhow::Result<ToolOutput> {
    let mut cmd = tool("openssl", "openssl")?;
    cmd.arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .args(args);
    run_tool(cmd).await
}

/// `curl` for `https://{host}:{port}{path}` resolved to `addr`, trusting `ca`, plus `args`.
/// The body is followed by a line with the HTTP version and one with the status.
pub async fn curl_https(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
    ca: &Path,
    args: &[&str],
) -> anyhow::Result<ToolOutput> {
    let mut cmd = tool("curl", "curl")?;
    cmd.args(["-sS", "--max-time", "20", "--cacert"])
        .arg(ca)
        .arg("--resolve")
        .arg(format!("{host}:{}:{}", addr.port(), addr.ip()))
        .args(["-w", "\n%{http_version}\n%{http_code}"])
        .args(args)
        .arg(format!("https://{host}:{}{path}", addr.port()));
    run_tool(cmd).await
}
