//! The certificate store: the current [`CertSet`] behind one `ArcSwap`, replaced as a whole by a
//! successful reload and left alone by a failed one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::server::ResolvesServerCert;

use crate::error::LoadErrors;
use crate::load::load_set;
use crate::resolve::{CertEntry, CertSet, Resolver};

/// Hot-reloadable certificates from one directory. Cheap to clone; clones share the set.
#[derive(Clone)]
pub struct CertStore {
    set: Arc<ArcSwap<CertSet>>,
    source: Arc<Source>,
}

/// Where the set comes from, and the lock that keeps two reloads from interleaving.
#[derive(Debug)]
struct Source {
    dir: PathBuf,
    default_cert: Option<String>,
    reloading: Mutex<()>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("dir", &self.source.dir)
            .field("default_cert", &self.source.default_cert)
            .field("pairs", &self.set.load().entries.len())
            .finish()
    }
}

/// What a successful reload changed, by pair label (each list sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Number of pairs now loaded.
    pub pairs: usize,
    /// Labels that are new.
    pub added: Vec<String>,
    /// Labels that are gone.
    pub removed: Vec<String>,
    /// Labels whose certificate chain changed.
    pub changed: Vec<String>,
}

impl ReloadSummary {
    /// True when the reload found nothing different.
    pub fn is_unchanged(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// One valid pair, as `check` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairSummary {
    /// File stem or folder name.
    pub label: String,
    /// The certificate file.
    pub cert: PathBuf,
    /// The key file.
    pub key: PathBuf,
    /// Served names (canonical SANs).
    pub names: Vec<String>,
    /// `notAfter`, unix seconds.
    pub not_after: i64,
}

impl CertStore {
    /// Loads every pair in `dir`. Any bad pair fails the whole load; all problems come back at
    /// once. `default_cert` serves handshakes whose SNI matches nothing, or that carry none; it
    /// names a pair label (file stem or folder name) or, failing that, one of a pair's names
    /// (a SAN as written, wildcards included, e.g. `*.shop.example`).
    pub fn load(dir: &Path, default_cert: Option<&str>) -> Result<CertStore, LoadErrors> {
        let set = load_set(dir, default_cert)?;
        tracing::info!(dir = %dir.display(), pairs = set.entries.len(), "certificates loaded");
        Ok(CertStore {
            set: Arc::new(ArcSwap::from_pointee(set)),
            source: Arc::new(Source {
                dir: dir.to_owned(),
                default_cert: default_cert.map(str::to_owned),
                reloading: Mutex::new(()),
            }),
        })
    }

    /// Re-reads the directory. All-or-nothing: on any error the last good set stays in service
    /// and the errors come back (the caller logs and counts them).
    pub fn reload(&self) -> Result<ReloadSummary, LoadErrors> {
        // A poisoned lock only means another reload panicked; the set itself is still whole.
        let _guard = self
            .source
            .reloading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let new = load_set(&self.source.dir, self.source.default_cert.as_deref())?;
        let old = self.set.load_full();
        let summary = diff(&old, &new);
        self.set.store(Arc::new(new));
        Ok(summary)
    }

    /// A rustls resolver over this store; it follows reloads.
    pub fn resolver(&self) -> Arc<dyn ResolvesServerCert> {
        Arc::new(Resolver {
            set: Arc::clone(&self.set),
        })
    }

    /// The entry a handshake with this SNI would get: exact name, then wildcard, then default.
    /// The SNI is canonicalised (ASCII-lowercase, one trailing dot removed).
    pub fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertEntry>> {
        self.set.load().lookup(sni).cloned()
    }

    /// `(label, notAfter unix seconds)` for each loaded pair, sorted by label.
    pub fn expiries(&self) -> Vec<(String, i64)> {
        self.set
            .load()
            .entries
            .iter()
            .map(|e| (e.label().to_owned(), e.not_after()))
            .collect()
    }

    /// Every loaded pair, sorted by label.
    pub fn entries(&self) -> Vec<Arc<CertEntry>> {
        self.set.load().entries.clone()
    }

    /// The directory this store reads.
    pub fn dir(&self) -> &Path {
        &self.source.dir
    }
}

/// Validates `dir` as [`CertStore::load`] would, without keeping anything: for `portcullis
/// check`. Every problem comes back, each naming its file.
pub fn check_dir(dir: &Path, default_cert: Option<&str>) -> Result<Vec<PairSummary>, LoadErrors> {
    let set = load_set(dir, default_cert)?;
    Ok(set
        .entries
        .iter()
        .map(|e| PairSummary {
            label: e.label().to_owned(),
            cert: e.cert_path().to_owned(),
            key: e.key_path().to_owned(),
            names: e.names().to_vec(),
            not_after: e.not_after(),
        })
        .collect())
}

fn diff(old: &CertSet, new: &CertSet) -> ReloadSummary {
    let by_label = |set: &CertSet| -> HashMap<String, Arc<CertEntry>> {
        set.entries
            .iter()
            .map(|e| (e.label().to_owned(), Arc::clone(e)))
            .collect()
    };
    let (before, after) = (by_label(old), by_label(new));
    let mut summary = ReloadSummary {
        pairs: new.entries.len(),
        ..ReloadSummary::default()
    };
    // Entries are sorted by label, so the lists come out sorted.
    for entry in &new.entries {
        match before.get(entry.label()) {
            None => summary.added.push(entry.label().to_owned()),
            Some(was) if was.certified_key().cert != entry.certified_key().cert => {
                summary.changed.push(entry.label().to_owned());
            }
            Some(_) => {}
        }
    }
    for entry in &old.entries {
        if !after.contains_key(entry.label()) {
            summary.removed.push(entry.label().to_owned());
        }
    }
    summary
}
