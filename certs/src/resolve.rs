//! Choosing a certificate for a server name: exact name, then a wildcard one label up, then the
//! default. Wildcards follow RFC 6125: `*.shop.example` covers `a.shop.example`, never
//! `shop.example` nor `a.b.shop.example`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::error::{LoadError, LoadErrorKind};

/// One loaded certificate pair: what it serves and the rustls key to serve it with.
pub struct CertEntry {
    label: String,
    names: Vec<String>,
    not_after: i64,
    cert_path: PathBuf,
    key_path: PathBuf,
    key: Arc<CertifiedKey>,
}

impl CertEntry {
    pub(crate) fn new(
        label: String,
        names: Vec<String>,
        not_after: i64,
        cert_path: PathBuf,
        key_path: PathBuf,
        key: Arc<CertifiedKey>,
    ) -> Self {
        CertEntry {
            label,
            names,
            not_after,
            cert_path,
            key_path,
            key,
        }
    }

    /// Whether this certificate is valid for `host` (canonicalised like an SNI), by its SANs.
    pub fn covers(&self, host: &str) -> bool {
        let host = canonical_name(host);
        self.names.iter().any(|name| match name.strip_prefix("*.") {
            Some(parent) => wildcard_parent(&host) == Some(parent),
            None => *name == host,
        })
    }

    /// The pair's label: the file stem (`NAME.crt`) or folder name (`NAME/`). Bounded by the
    /// operator's files, so it is fit for a metrics label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The DNS names served, from the certificate's SANs: canonical, wildcards as `*.parent`.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The leaf's `notAfter`, unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// The certificate file (`NAME.crt` or `NAME/cert.pem`).
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The key file (`NAME.key` or `NAME/key.pem`).
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// The chain and signing key handed to rustls.
    pub fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.key
    }
}

impl fmt::Debug for CertEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs; the chain is noise.
        f.debug_struct("CertEntry")
            .field("label", &self.label)
            .field("names", &self.names)
            .field("not_after", &self.not_after)
            .field("cert_path", &self.cert_path)
            .finish_non_exhaustive()
    }
}

/// ASCII-lowercase with one trailing dot removed; borrows when already canonical.
pub(crate) fn canonical_name(name: &str) -> Cow<'_, str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(name.to_ascii_lowercase())
    } else {
        Cow::Borrowed(name)
    }
}

/// The parent a wildcard must name to cover `host`: everything after a non-empty first label.
fn wildcard_parent(host: &str) -> Option<&str> {
    match host.split_once('.') {
        Some((first, parent)) if !first.is_empty() && !parent.is_empty() => Some(parent),
        _ => None,
    }
}

/// One consistent set of pairs and its indexes; swapped as a whole on reload.
#[derive(Debug, Default)]
pub(crate) struct CertSet {
    pub(crate) entries: Vec<Arc<CertEntry>>,
    exact: HashMap<String, Arc<CertEntry>>,
    /// Keyed by the parent: `*.shop.example` is stored under `shop.example`.
    wildcard: HashMap<String, Arc<CertEntry>>,
    default: Option<Arc<CertEntry>>,
}

impl CertSet {
    /// Indexes `entries`; names claimed twice and an unknown default go to `errors`.
    pub(crate) fn build(
        dir: &Path,
        entries: Vec<CertEntry>,
        default_cert: Option<&str>,
        errors: &mut Vec<LoadError>,
    ) -> CertSet {
        let mut set = CertSet::default();
        for entry in entries {
            let entry = Arc::new(entry);
            for name in &entry.names {
                let (index, key) = match name.strip_prefix("*.") {
                    Some(parent) => (&mut set.wildcard, parent),
                    None => (&mut set.exact, name.as_str()),
                };
                if let Some(other) = index.get(key) {
                    errors.push(LoadError {
                        path: entry.cert_path.clone(),
                        kind: LoadErrorKind::DuplicateName {
                            name: name.clone(),
                            other: other.cert_path.clone(),
                        },
                    });
                } else {
                    index.insert(key.to_owned(), Arc::clone(&entry));
                }
            }
            set.entries.push(entry);
        }
        if let Some(wanted) = default_cert {
            let canonical = canonical_name(wanted);
            let found = set.entries.iter().find(|e| e.label == wanted).or_else(|| {
                set.entries
                    .iter()
                    .find(|e| e.names.iter().any(|n| *n == canonical))
            });
            match found {
                Some(entry) => set.default = Some(Arc::clone(entry)),
                None => errors.push(LoadError {
                    path: dir.to_owned(),
                    kind: LoadErrorKind::UnknownDefault(wanted.to_owned()),
                }),
            }
        }
        set
    }

    /// Exact name, then wildcard, then default. `None` SNI gets the default.
    pub(crate) fn lookup(&self, sni: Option<&str>) -> Option<&Arc<CertEntry>> {
        let Some(sni) = sni else {
            return self.default.as_ref();
        };
        let host = canonical_name(sni);
        self.exact
            .get(&*host)
            .or_else(|| wildcard_parent(&host).and_then(|p| self.wildcard.get(p)))
            .or(self.default.as_ref())
    }
}

/// The rustls resolver: reads the current set on every handshake, so a reload reaches the next
/// handshake without rebuilding the `ServerConfig` (and its resumption state).
pub(crate) struct Resolver {
    pub(crate) set: Arc<ArcSwap<CertSet>>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("pairs", &self.set.load().entries.len())
            .finish()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let set = self.set.load();
        let entry = set.lookup(client_hello.server_name());
        if entry.is_none() {
            // rustls answers with a fatal `access_denied` alert.
            tracing::debug!(sni = ?client_hello.server_name(), "no certificate for this server name");
        }
        entry.map(|e| Arc::clone(&e.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_lowercases_and_drops_one_dot() {
        assert_eq!(canonical_name("Shop.Example."), "shop.example");
        assert_eq!(canonical_name("shop.example"), "shop.example");
        assert!(matches!(canonical_name("a.b"), Cow::Borrowed(_)));
        assert_eq!(canonical_name("a.b.."), "a.b.");
    }

    #[test]
    fn wildcard_parent_needs_a_non_empty_first_label() {
        assert_eq!(wildcard_parent("a.shop.example"), Some("shop.example"));
        assert_eq!(wildcard_parent(".shop.example"), None);
        assert_eq!(wildcard_parent("example"), None);
        assert_eq!(wildcard_parent("example."), None);
    }
}
