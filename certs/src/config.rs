//! rustls configs: the server side over a [`CertStore`], the client side for origins. Both are
//! built on [`provider()`](crate::provider), never the process-wide default (P1), and offer
//! TLS 1.2 and 1.3 only.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::server::ServerSessionMemoryCache;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::error::TlsConfigError;
use crate::store::CertStore;

/// The protocol versions offered on both sides. TLS 1.0 and 1.1 are not implemented by rustls at
/// all; listing these two keeps it so if a future rustls grows anything else.
pub static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Sessions kept for TLS 1.2 session-id resumption (and TLS 1.3 clients that do not take
/// tickets). Each entry is a few hundred bytes.
const SESSION_CACHE_ENTRIES: usize = 4096;

/// The server config: TLS 1.2 + 1.3, the given ALPN list in preference order, certificates from
/// `store` chosen per handshake by SNI.
///
/// Resumption works both ways: stateless tickets (TLS 1.3, and TLS 1.2 clients that ask) from the
/// provider's rotating ticketer, and a stateful session cache for TLS 1.2 session ids. Build the
/// config once: the resolver follows reloads, so certificates change without losing the ticket
/// keys or the cache.
pub fn server_config(
    store: &CertStore,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let mut config = ServerConfig::builder_with_provider(crate::provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(TlsConfigError::Rustls)?
        .with_no_client_auth()
        .with_cert_resolver(store.resolver());
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(TlsConfigError::Rustls)?;
    Ok(Arc::new(config))
}

/// The client config for origin connections: TLS 1.2 + 1.3, the given ALPN list.
///
/// Trust comes from `ca_file` (PEM, one or more certificates) when given, else from the Mozilla
/// roots in `webpki-roots`. `insecure_skip_verify` accepts any certificate for any name (the
/// handshake signature is still checked, which proves nothing about identity); the caller must
/// log that loudly.
pub fn client_config(
    ca_file: Option<&Path>,
    insecure_skip_verify: bool,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let provider = crate::provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(TlsConfigError::Rustls)?;
    let mut config = if insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert { provider }))
            .with_no_client_auth()
    } else {
        let roots = match ca_file {
            Some(path) => roots_from_file(path)?,
            None => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let bytes = fs::read(path).map_err(|source| TlsConfigError::CaRead {
        path: path.to_owned(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|source| TlsConfigError::CaPem {
            path: path.to_owned(),
            source,
        })?;
        roots.add(cert).map_err(|source| TlsConfigError::CaCert {
            path: path.to_owned(),
            source,
        })?;
    }
    if roots.is_empty() {
        return Err(TlsConfigError::CaEmpty {
            path: path.to_owned(),
        });
    }
    Ok(roots)
}

/// Accepts every certificate. Only for `insecure_skip_verify`.
#[derive(Debug)]
struct AcceptAnyCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
