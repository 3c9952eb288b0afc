//! Reading a certificate directory: find the pairs, parse and check each one, and index them into
//! a [`CertSet`]. Every problem is collected; nothing here panics on file content.
//!
//! Accepted layout: `NAME.crt` + `NAME.key`, or a folder `NAME/` with `cert.pem` + `key.pem`.
//! Hidden entries (leading `.`, e.g. editor swap files, Kubernetes `..data`) and other files are
//! ignored.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

use crate::error::{LoadError, LoadErrorKind, LoadErrors};
use crate::resolve::{CertEntry, CertSet, canonical_name};

/// The two files of one pair, before they are read.
#[derive(Debug)]
struct PairFiles {
    label: String,
    cert: PathBuf,
    key: PathBuf,
}

/// Reads `dir` and builds a set: all-or-nothing, every problem reported.
pub(crate) fn load_set(dir: &Path, default_cert: Option<&str>) -> Result<CertSet, LoadErrors> {
    let mut errors = Vec::new();
    let pairs = scan(dir, &mut errors);
    let now = unix_now();
    let entries: Vec<CertEntry> = pairs
        .into_iter()
        .filter_map(|p| load_pair(p, now, &mut errors))
        .collect();
    if entries.is_empty() && errors.is_empty() {
        errors.push(LoadError {
            path: dir.to_owned(),
            kind: LoadErrorKind::Empty,
        });
    }
    let set = CertSet::build(dir, entries, default_cert, &mut errors);
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(LoadErrors { errors })
    }
}

/// Lists the pairs in `dir`, sorted by label. Half pairs and label clashes become errors.
fn scan(dir: &Path, errors: &mut Vec<LoadError>) -> Vec<PairFiles> {
    let err = |path: &Path, kind| LoadError {
        path: path.to_owned(),
        kind,
    };
    let read = match fs::read_dir(dir) {
        Ok(read) => read,
        Err(e) => {
            errors.push(err(dir, LoadErrorKind::ReadDir(e)));
            return Vec::new();
        }
    };
    // label -> (cert, key) for file pairs; folders are complete or an error on their own.
    let mut files: BTreeMap<String, (Option<PathBuf>, Option<PathBuf>)> = BTreeMap::new();
    let mut folders: BTreeMap<String, PairFiles> = BTreeMap::new();
    for entry in read {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                errors.push(err(dir, LoadErrorKind::ReadDir(e)));
                continue;
            }
        };
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            tracing::warn!(path = %path.display(), "ignoring a file name that is not UTF-8");
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        // Follows symlinks: a swapped link is judged by what it points at now.
        let is_dir = fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false);
        if is_dir {
            let (cert, key) = (path.join("cert.pem"), path.join("key.pem"));
            match (cert.exists(), key.exists()) {
                (true, true) => {
                    folders.insert(
                        name.clone(),
                        PairFiles {
                            label: name,
                            cert,
                            key,
                        },
                    );
                }
                (true, false) => {
                    errors.push(err(&cert, LoadErrorKind::MissingPair { missing: key }));
                }
                (false, true) => {
                    errors.push(err(&key, LoadErrorKind::MissingPair { missing: cert }));
                }
                (false, false) => {}
            }
            continue;
        }
        let (stem, ext) = match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => (stem, ext),
            _ => continue,
        };
        let slot = files.entry(stem.to_owned()).or_default();
        match ext {
            "crt" => slot.0 = Some(path),
            "key" => slot.1 = Some(path),
            _ => {}
        }
    }
    let mut pairs = Vec::new();
    for (label, slot) in files {
        match slot {
            (Some(cert), Some(key)) => {
                if let Some(folder) = folders.get(&label) {
                    let other = folder.cert.clone();
                    errors.push(err(&cert, LoadErrorKind::DuplicateLabel { label, other }));
                    continue;
                }
                pairs.push(PairFiles { label, cert, key });
            }
            (Some(cert), None) => {
                let missing = cert.with_extension("key");
                errors.push(err(&cert, LoadErrorKind::MissingPair { missing }));
            }
            (None, Some(key)) => {
                let missing = key.with_extension("crt");
                errors.push(err(&key, LoadErrorKind::MissingPair { missing }));
            }
            (None, None) => {}
        }
    }
    pairs.extend(folders.into_values());
    pairs.sort_by(|a, b| a.label.cmp(&b.label));
    pairs
}

/// Reads, parses and checks one pair. Certificate and key problems are both reported.
fn load_pair(files: PairFiles, now: i64, errors: &mut Vec<LoadError>) -> Option<CertEntry> {
    let cert = read_leaf(&files.cert, now);
    let key = read_key(&files.key);
    let (cert, key) = match (cert, key) {
        (Ok(cert), Ok(key)) => (cert, key),
        (cert, key) => {
            errors.extend(cert.err());
            errors.extend(key.err());
            return None;
        }
    };
    let (chain, names, not_after) = cert;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        Ok(()) => {}
        // Only keys that cannot report their public key land here; none do with aws-lc-rs.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            tracing::debug!(key = %files.key.display(), "key cannot be matched to its certificate");
        }
        Err(rustls::Error::InconsistentKeys(_)) => {
            let kind = LoadErrorKind::KeyMismatch {
                cert: files.cert.clone(),
            };
            errors.push(LoadError {
                path: files.key,
                kind,
            });
            return None;
        }
        Err(e) => {
            errors.push(LoadError {
                path: files.key,
                kind: LoadErrorKind::Key(e),
            });
            return None;
        }
    }
    Some(CertEntry::new(
        files.label,
        names,
        not_after,
        files.cert,
        files.key,
        Arc::new(certified),
    ))
}

type Leaf = (Vec<CertificateDer<'static>>, Vec<String>, i64);

/// The chain, the served names (canonical, deduplicated) and `notAfter` of a certificate file.
fn read_leaf(path: &Path, now: i64) -> Result<Leaf, LoadError> {
    let err = |kind| LoadError {
        path: path.to_owned(),
        kind,
    };
    let bytes = fs::read(path).map_err(|e| err(LoadErrorKind::Read(e)))?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(LoadErrorKind::Pem(e)))?;
    let Some(leaf) = chain.first() else {
        return Err(err(LoadErrorKind::NoCertificate));
    };
    let x509 = match x509_parser::parse_x509_certificate(leaf) {
        Ok((_, x509)) => x509,
        Err(x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e)) => {
            return Err(err(LoadErrorKind::Certificate(e)));
        }
        Err(x509_parser::nom::Err::Incomplete(_)) => {
            let e = x509_parser::error::X509Error::InvalidCertificate;
            return Err(err(LoadErrorKind::Certificate(e)));
        }
    };
    let not_after = x509.validity().not_after.timestamp();
    if not_after < now {
        return Err(err(LoadErrorKind::Expired { not_after }));
    }
    let san = x509
        .subject_alternative_name()
        .map_err(|e| err(LoadErrorKind::Certificate(e)))?;
    let mut names: Vec<String> = Vec::new();
    for general in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
        let GeneralName::DNSName(raw) = general else {
            continue;
        };
        let name = canonical_name(raw).into_owned();
        if !usable_name(&name) {
            tracing::warn!(cert = %path.display(), name = %raw, "ignoring a SAN that cannot be served (only leading '*.' wildcards are)");
            continue;
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Err(err(LoadErrorKind::NoDnsName));
    }
    Ok((chain, names, not_after))
}

/// A name we can index: no empty labels, and a `*` only as the whole first label.
fn usable_name(name: &str) -> bool {
    let rest = name.strip_prefix("*.").unwrap_or(name);
    !rest.is_empty() && rest.split('.').all(|l| !l.is_empty() && !l.contains('*'))
}

/// The private key of a key file, loaded by the provider.
fn read_key(path: &Path) -> Result<Arc<dyn rustls::sign::SigningKey>, LoadError> {
    let err = |kind| LoadError {
        path: path.to_owned(),
        kind,
    };
    let bytes = fs::read(path).map_err(|e| err(LoadErrorKind::Read(e)))?;
    let der = match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(der) => der,
        Err(pem::Error::NoItemsFound) => return Err(err(LoadErrorKind::NoKey)),
        Err(e) => return Err(err(LoadErrorKind::Pem(e))),
    };
    crate::provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| err(LoadErrorKind::Key(e)))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
