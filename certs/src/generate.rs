//! Dev certificates: a local CA the user trusts once, and a leaf for the hosts they test with.
//!
//! The CA lives in `out/ca.pem` + `out/ca-key.pem` and is reused when both exist, so running
//! `generate` again (new hosts) does not ask the user to trust a new CA. The CA files do not form
//! a pair (`ca.pem` is not `*.crt`), so `out` can be the proxy's certificate directory.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};

use crate::error::GenerateError;

/// CA lifetime: long, since the user trusts it by hand.
const CA_DAYS: i64 = 3650;
/// Leaf lifetime: within the 825 days Apple platforms accept for TLS server certificates.
const LEAF_DAYS: i64 = 825;

/// The files [`generate`] wrote or reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// `out/ca.pem`: trust this.
    pub ca_cert: PathBuf,
    /// `out/ca-key.pem` (mode 0600).
    pub ca_key: PathBuf,
    /// Whether an existing CA was reused rather than created.
    pub ca_reused: bool,
    /// `out/<first host>.crt` (a `*` in the host becomes `_`).
    pub cert: PathBuf,
    /// `out/<first host>.key` (mode 0600).
    pub key: PathBuf,
}

/// Writes a dev CA (or reuses the one in `out`) and one ECDSA P-256 leaf whose SANs are `hosts`.
/// Hosts may be DNS names, `*.` wildcards or IP addresses; a certificate directory serves only the
/// DNS ones.
pub fn generate(hosts: &[String], out: &Path) -> Result<Generated, GenerateError> {
    let Some(first) = hosts.first() else {
        return Err(GenerateError::NoHosts);
    };
    for host in hosts {
        if !valid_host(host) {
            return Err(GenerateError::BadHost(host.clone()));
        }
    }
    fs::create_dir_all(out).map_err(|source| io_err(out, source))?;
    let now = now();
    let ca_cert = out.join("ca.pem");
    let ca_key = out.join("ca-key.pem");
    let (issuer, ca_reused) = match (ca_cert.exists(), ca_key.exists()) {
        (true, true) => (load_ca(&ca_cert, &ca_key)?, true),
        (false, false) => (new_ca(&ca_cert, &ca_key, now)?, false),
        (true, false) => {
            return Err(GenerateError::HalfCa {
                present: ca_cert,
                missing: ca_key,
            });
        }
        (false, true) => {
            return Err(GenerateError::HalfCa {
                present: ca_key,
                missing: ca_cert,
            });
        }
    };

    let mut params = CertificateParams::new(hosts.to_vec()).map_err(GenerateError::Rcgen)?;
    params.distinguished_name.push(DnType::CommonName, first);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(LEAF_DAYS);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(GenerateError::Rcgen)?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(GenerateError::Rcgen)?;

    let stem = first.replace('*', "_");
    let cert_path = out.join(format!("{stem}.crt"));
    let key_path = out.join(format!("{stem}.key"));
    // Key first: a watcher that sees the new certificate must find its key already there.
    write_atomic(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_atomic(&cert_path, cert.pem().as_bytes(), false)?;
    tracing::info!(cert = %cert_path.display(), ca = %ca_cert.display(), ca_reused, "dev certificate written");
    Ok(Generated {
        ca_cert,
        ca_key,
        ca_reused,
        cert: cert_path,
        key: key_path,
    })
}

fn new_ca(
    cert_path: &Path,
    key_path: &Path,
    now: OffsetDateTime,
) -> Result<Issuer<'static, KeyPair>, GenerateError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(GenerateError::Rcgen)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "Portcullis dev CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Portcullis (development only)");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(CA_DAYS);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(GenerateError::Rcgen)?;
    let cert = params.self_signed(&key).map_err(GenerateError::Rcgen)?;
    write_atomic(key_path, key.serialize_pem().as_bytes(), true)?;
    write_atomic(cert_path, cert.pem().as_bytes(), false)?;
    Ok(Issuer::new(params, key))
}

fn load_ca(cert_path: &Path, key_path: &Path) -> Result<Issuer<'static, KeyPair>, GenerateError> {
    let read = |path: &Path| fs::read_to_string(path).map_err(|source| io_err(path, source));
    let bad = |path: &Path| {
        let path = path.to_owned();
        move |source| GenerateError::BadCa { path, source }
    };
    let key = KeyPair::from_pem(&read(key_path)?).map_err(bad(key_path))?;
    Issuer::from_ca_cert_pem(&read(cert_path)?, key).map_err(bad(cert_path))
}

/// A DNS name (optionally with a leading `*.`) or an IP address. Also keeps the host usable as
/// a file name: no `/`, no leading `.`.
fn valid_host(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok() {
        return true;
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Writes to a hidden temporary file in the same directory, then renames: readers (and the
/// certificate watcher) never see a half-written file.
fn write_atomic(path: &Path, contents: &[u8], secret: bool) -> Result<(), GenerateError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if secret {
        options.mode(0o600);
    }
    let result = options.open(&tmp).and_then(|mut file| {
        if secret {
            // `mode` only applies when the file is created; a stale temp file keeps its own.
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(contents)?;
        file.sync_all()
    });
    result.map_err(|source| io_err(&tmp, source))?;
    fs::rename(&tmp, path).map_err(|source| io_err(path, source))
}

fn io_err(path: &Path, source: std::io::Error) -> GenerateError {
    GenerateError::Io {
        path: path.to_owned(),
        source,
    }
}

fn now() -> OffsetDateTime {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
        .unwrap_or(0);
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::valid_host;

    #[test]
    fn hosts_that_could_escape_the_directory_are_refused() {
        for bad in [
            "",
            "../etc/passwd",
            "a/b",
            ".hidden",
            "a..b",
            "*",
            "*.",
            "a.*.b",
            "-a",
        ] {
            assert!(!valid_host(bad), "{bad:?}");
        }
        for good in [
            "localhost",
            "*.shop.example",
            "a-b.example",
            "127.0.0.1",
            "::1",
        ] {
            assert!(valid_host(good), "{good:?}");
        }
    }
}
