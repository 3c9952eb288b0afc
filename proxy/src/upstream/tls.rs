//! TLS to origins: the client configs of a site's `https://` origins and the stream type an
//! origin connection runs on, plain or TLS.
//!
//! Verification is always on (webpki roots, or the site's `origin_tls.ca_file`) unless the
//! operator wrote `insecure_skip_verify: true`, which is logged as a warning at start-up. SNI and
//! the verified name are the origin URL's host, or `origin_tls.server_name`.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::OriginTlsConfig;

/// Why a site's origin TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OriginTlsError {
    #[error("origin TLS client configuration")]
    Config(#[from] portcullis_certs::TlsConfigError),
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
}

/// Client configs for one site's `https://` origins (shared by its origins, so TLS sessions
/// resume across connections).
#[derive(Clone)]
pub struct SiteTls {
    h1: Arc<ClientConfig>,
    h2: Arc<ClientConfig>,
    server_name: Option<String>,
}

impl fmt::Debug for SiteTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SiteTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl SiteTls {
    /// `cfg` is the site's `origin_tls` (defaults when absent).
    pub fn new(site: &str, cfg: Option<&OriginTlsConfig>) -> Result<SiteTls, OriginTlsError> {
        let default = OriginTlsConfig::default();
        let cfg = cfg.unwrap_or(&default);
        if cfg.insecure_skip_verify {
            tracing::warn!(
                site,
                "origin_tls.insecure_skip_verify is set: this site's origin certificates are NOT \
                 verified; anyone on the path to the origin can read and change its traffic"
            );
        }
        let ca = cfg.ca_file.as_deref();
        Ok(SiteTls {
            h1: portcullis_certs::client_config(ca, cfg.insecure_skip_verify, &[b"http/1.1"])?,
            h2: portcullis_certs::client_config(ca, cfg.insecure_skip_verify, &[b"h2"])?,
            server_name: cfg.server_name.clone(),
        })
    }

    /// What one origin at `host` needs to open TLS connections.
    pub fn for_origin(&self, host: &str) -> Result<OriginTls, OriginTlsError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        // An IPv6 literal comes from the URL with its brackets.
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(bare.to_owned())
            .map_err(|_| OriginTlsError::ServerName(name.to_owned()))?;
        Ok(OriginTls {
            h1: TlsConnector::from(self.h1.clone()),
            h2: TlsConnector::from(self.h2.clone()),
            server_name,
        })
    }
}

/// TLS settings of one `https://` origin.
#[derive(Clone)]
pub struct OriginTls {
    h1: TlsConnector,
    h2: TlsConnector,
    server_name: ServerName<'static>,
}

impl fmt::Debug for OriginTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OriginTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl OriginTls {
    /// The TLS handshake on a connected socket; ALPN offers `h2` or `http/1.1` only.
    pub async fn connect(&self, stream: TcpStream, h2: bool) -> io::Result<TlsStream<TcpStream>> {
        let connector = if h2 { &self.h2 } else { &self.h1 };
        connector.connect(self.server_name.clone(), stream).await
    }
}

/// An origin connection's byte stream.
#[derive(Debug)]
pub enum OriginIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl OriginIo {
    fn tcp(&self) -> &TcpStream {
        match self {
            OriginIo::Plain(s) => s,
            OriginIo::Tls(s) => s.get_ref().0,
        }
    }

    /// Whether the socket is open with nothing to read: the state of a healthy idle pooled
    /// connection. Peeks without consuming, so a TLS stream is left intact.
    pub fn looks_idle(&self) -> bool {
        let mut probe = [0u8; 1];
        let mut buf = ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        matches!(self.tcp().poll_peek(&mut cx, &mut buf), Poll::Pending)
    }
}

impl AsyncRead for OriginIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            OriginIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            OriginIo::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for OriginIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            OriginIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            OriginIo::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            OriginIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            OriginIo::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            OriginIo::Plain(s) => s.is_write_vectored(),
            OriginIo::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            OriginIo::Plain(s) => Pin::new(s).poll_flush(cx),
            OriginIo::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            OriginIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            OriginIo::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
