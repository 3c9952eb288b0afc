//! TLS termination on client connections: the handshake, with its unknown-SNI answer and its
//! deadline, and certificate hot reload (directory watch and SIGHUP) with its metrics.
//!
//! The rustls `ServerConfig` is built once per proxy from `portcullis_certs::server_config`; its
//! resolver follows the [`CertStore`], so a reload changes the certificates served on the next
//! handshake without losing the session cache or the ticket keys (resumption keeps working).
//!
//! What it does not: choose HTTP/1.1 or HTTP/2 (the server does, from [`TlsInfo::h2`]), or
//! check the request's Host against the certificate (the pipeline does, per request).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_certs::{
    CertEntry, CertStore, LoadErrors, ReloadSummary, TlsConfigError, WatchError, WatchGuard,
};
use rustls::ServerConfig;
use rustls::server::Acceptor;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::TlsConfig;
use crate::geo::Geo;
use crate::metrics::{HandshakeResult, TlsMetrics, TlsVersion};
use crate::policy::PolicyRuntime;

/// ALPN protocols offered, in preference order.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// A fatal `unrecognized_name` alert (RFC 6066 §3) as one plaintext TLS record: content type
/// alert (21), legacy version 1.2, length 2, level fatal (2), description 112. rustls on its own
/// would answer an unresolvable SNI with `access_denied`, which tells the client nothing.
const UNRECOGNIZED_NAME_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70];

/// A fatal `access_denied` alert (RFC 8446 §6.2), for a name a legal order refuses.
const ACCESS_DENIED_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31];

/// What a TLS connection was set up with; its requests are checked against it.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// The certificate chosen for the ClientHello's SNI (or the default).
    pub cert: Arc<CertEntry>,
    /// ALPN chose `h2`.
    pub h2: bool,
    pub version: TlsVersion,
    /// The ClientHello's SNI as sent (policy checks it against the request's host).
    pub sni: Option<Box<str>>,
}

/// Setting up TLS termination failed (at start-up only; reloads never fail the proxy).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot load the certificates")]
    Certs(#[source] LoadErrors),
    #[error("cannot build the TLS server config")]
    Config(#[source] TlsConfigError),
}

/// The TLS side of one proxy: certificates, the one server config, the handshake deadline.
#[derive(Debug)]
pub struct Tls {
    config: Arc<ServerConfig>,
    store: CertStore,
    handshake_timeout: Duration,
    metrics: TlsMetrics,
    /// Legal orders with `refuse_tls` abort the handshake by SNI.
    policy: Option<Arc<PolicyRuntime>>,
    geo: Arc<Geo>,
}

impl Tls {
    /// Loads the certificate directory and builds the server config.
    pub fn new(
        cfg: &TlsConfig,
        metrics: &TlsMetrics,
        policy: Option<Arc<PolicyRuntime>>,
        geo: Arc<Geo>,
    ) -> Result<Tls, TlsSetupError> {
        let store = CertStore::load(&cfg.certs_dir, cfg.default_cert.as_deref())
            .map_err(TlsSetupError::Certs)?;
        let config =
            portcullis_certs::server_config(&store, &ALPN).map_err(TlsSetupError::Config)?;
        metrics.init();
        metrics.set_expiries(&store.expiries(), &[]);
        Ok(Tls {
            config,
            store,
            handshake_timeout: cfg.handshake_timeout,
            metrics: metrics.clone(),
            policy,
            geo,
        })
    }

    /// Runs the server side of a handshake within `tls.handshake_timeout`. Every outcome is
    /// counted; failures are logged at debug level (clients fail handshakes all the time) and
    /// come back as `None`, the connection closed.
    pub async fn accept(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Option<(TlsStream<TcpStream>, TlsInfo)> {
        let deadline = Instant::now() + self.handshake_timeout;
        let failed = |result: HandshakeResult, error: &dyn std::fmt::Display| {
            tracing::debug!(%peer, result = result.as_str(), %error, "TLS handshake failed");
            self.metrics.handshake(result, TlsVersion::Unknown);
        };
        let start = match timeout_at(
            deadline,
            LazyConfigAcceptor::new(Acceptor::default(), stream),
        )
        .await
        {
            Ok(Ok(start)) => start,
            Ok(Err(e)) => {
                failed(HandshakeResult::Error, &e);
                return None;
            }
            Err(_) => {
                failed(HandshakeResult::Timeout, &"no ClientHello in time");
                return None;
            }
        };
        let sni: Option<Box<str>> = start.client_hello().server_name().map(Box::from);
        // A legal order that requires ending service for the name: no handshake at all.
        if let (Some(policy), Some(name)) = (&self.policy, sni.as_deref()) {
            let country = self.geo.peer_country(peer.ip());
            if let Some(order) =
                policy
                    .snapshot()
                    .table
                    .decide_sni(name, country, std::time::SystemTime::now())
            {
                policy.metrics.blocked(&order.id, order.action.as_str());
                tracing::info!(%peer, sni = name, order = %order.id, "TLS handshake refused by a legal order");
                failed(HandshakeResult::Refused, &"refused by a legal order");
                let mut io = start.io;
                let _ = timeout_at(deadline, async {
                    io.write_all(&ACCESS_DENIED_ALERT).await?;
                    io.shutdown().await
                })
                .await;
                return None;
            }
        }
        // The resolver inside rustls makes the same lookup; this one decides whether to go on
        // at all, and is the certificate the connection's requests are checked against.
        let Some(cert) = self.store.lookup(sni.as_deref()) else {
            failed(HandshakeResult::UnknownSni, &"no certificate for the SNI");
            let mut io = start.io;
            let _ = timeout_at(deadline, async {
                io.write_all(&UNRECOGNIZED_NAME_ALERT).await?;
                io.shutdown().await
            })
            .await;
            return None;
        };
        let stream = match timeout_at(deadline, start.into_stream(Arc::clone(&self.config))).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                failed(HandshakeResult::Error, &e);
                return None;
            }
            Err(_) => {
                failed(HandshakeResult::Timeout, &"handshake not done in time");
                return None;
            }
        };
        let (_, conn) = stream.get_ref();
        let version = match conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => TlsVersion::Tls13,
            Some(rustls::ProtocolVersion::TLSv1_2) => TlsVersion::Tls12,
            _ => TlsVersion::Unknown,
        };
        let h2 = conn.alpn_protocol() == Some(b"h2");
        self.metrics.handshake(HandshakeResult::Success, version);
        Some((
            stream,
            TlsInfo {
                cert,
                h2,
                version,
                sni,
            },
        ))
    }

    /// Re-reads the certificate directory (SIGHUP). A failure keeps the last good set, is
    /// logged naming each bad file, and counted; it never stops the proxy.
    pub fn reload(&self) -> bool {
        let result = self.store.reload();
        match &result {
            Ok(summary) => tracing::info!(
                dir = %self.store.dir().display(),
                pairs = summary.pairs,
                added = ?summary.added,
                removed = ?summary.removed,
                changed = ?summary.changed,
                "certificates reloaded (SIGHUP)"
            ),
            Err(errors) => tracing::error!(
                dir = %self.store.dir().display(),
                %errors,
                "certificate reload failed; keeping the last good set"
            ),
        }
        record(&self.metrics, &self.store, &result);
        result.is_ok()
    }

    /// Watches the certificate directory and reloads on change (debounced; the watcher logs
    /// each outcome). Watching stops when the guard is dropped.
    pub fn watch(&self) -> Result<WatchGuard, WatchError> {
        let metrics = self.metrics.clone();
        let store = self.store.clone();
        self.store
            .watch(move |result| record(&metrics, &store, result))
    }
}

/// Counts a reload and refreshes the expiry gauges.
fn record(metrics: &TlsMetrics, store: &CertStore, result: &Result<ReloadSummary, LoadErrors>) {
    match result {
        Ok(summary) => {
            metrics.reload(true);
            metrics.set_expiries(&store.expiries(), &summary.removed);
        }
        Err(_) => metrics.reload(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_is_a_fatal_unrecognized_name_record() {
        let [kind, major, minor, len_hi, len_lo, level, description] = UNRECOGNIZED_NAME_ALERT;
        assert_eq!(kind, 21, "content type alert");
        assert_eq!((major, minor), (3, 3));
        assert_eq!(u16::from_be_bytes([len_hi, len_lo]), 2);
        assert_eq!(level, 2, "fatal");
        assert_eq!(
            rustls::AlertDescription::from(description),
            rustls::AlertDescription::UnrecognisedName
        );
    }
}
