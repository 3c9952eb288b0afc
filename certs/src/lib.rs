//! TLS for Portcullis: the certificate store, SNI resolution with hot reload, the rustls server
//! and origin-client configs, and dev certificates.
//!
//! It does not know about HTTP, listeners or metrics: the proxy builds a [`CertStore`] from its
//! certificate directory, hands [`server_config`] to its TLS acceptor and [`client_config`] to its
//! origin connector, and exports [`CertStore::expiries`] as it sees fit.
//!
//! One crypto provider for the whole process, aws-lc-rs ([`provider`]); every config is built
//! with it explicitly, never with rustls' process-wide default.
//!
//! Layout:
//! - `load`: reading a certificate directory into a set (every problem reported, naming its file).
//! - `resolve`: [`CertEntry`], the exact → wildcard → default lookup, the rustls resolver.
//! - `store`: [`CertStore`] (one `ArcSwap`, all-or-nothing reload) and [`check_dir`].
//! - `watch`: the debounced directory watcher.
//! - `config`: [`server_config`] and [`client_config`].
//! - `generate`: dev CA and leaf certificates.
//! - `error`: the error types.

mod config;
mod error;
mod generate;
mod load;
mod resolve;
mod store;
mod watch;

use std::sync::{Arc, OnceLock};

pub use config::{PROTOCOL_VERSIONS, client_config, server_config};
pub use error::{GenerateError, LoadError, LoadErrorKind, LoadErrors, TlsConfigError, WatchError};
pub use generate::{Generated, generate};
pub use resolve::CertEntry;
pub use store::{CertStore, PairSummary, ReloadSummary, check_dir};
pub use watch::WatchGuard;

/// The crypto provider every config here is built with: aws-lc-rs (handshake and bulk speed,
/// post-quantum key exchange). One instance, shared.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider())))
}
