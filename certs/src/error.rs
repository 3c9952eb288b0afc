//! Errors. A certificate problem always names the file it is about, so an operator can go straight
//! to it; loading reports every problem at once ([`LoadErrors`]), not just the first.

use std::fmt;
use std::path::PathBuf;

/// Everything wrong with a certificate directory. Displays one problem per line.
#[derive(Debug)]
pub struct LoadErrors {
    /// Each problem, in directory order (pairs sorted by label), then cross-pair problems.
    pub errors: Vec<LoadError>,
}

/// One problem with one file (or with the directory itself).
#[derive(Debug)]
pub struct LoadError {
    /// The file the problem is about; the directory for directory-wide problems.
    pub path: PathBuf,
    /// What is wrong.
    pub kind: LoadErrorKind,
}

/// What can be wrong with a certificate directory or one of its pairs.
#[derive(Debug, thiserror::Error)]
pub enum LoadErrorKind {
    /// The directory cannot be listed.
    #[error("cannot read the certificate directory")]
    ReadDir(#[source] std::io::Error),
    /// A file cannot be read.
    #[error("cannot read the file")]
    Read(#[source] std::io::Error),
    /// The file is not valid PEM (also what a half-written file usually looks like).
    #[error("invalid PEM")]
    Pem(#[source] rustls_pki_types::pem::Error),
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("no certificate in the file")]
    NoCertificate,
    /// The key file holds no private key block (PKCS#8, SEC1 or PKCS#1).
    #[error("no private key in the file")]
    NoKey,
    /// The certificate's DER does not parse.
    #[error("invalid certificate")]
    Certificate(#[source] x509_parser::error::X509Error),
    /// The key parses as PEM but the crypto provider cannot use it.
    #[error("unsupported private key")]
    Key(#[source] rustls::Error),
    /// `NAME.crt` without `NAME.key`, or a folder without `cert.pem`/`key.pem`.
    #[error("missing its pair: {missing} does not exist")]
    MissingPair {
        /// The file that should be there.
        missing: PathBuf,
    },
    /// The private key does not belong to the certificate.
    #[error("the private key does not match the certificate {cert}")]
    KeyMismatch {
        /// The certificate file of the pair.
        cert: PathBuf,
    },
    /// The leaf certificate's `notAfter` is in the past.
    #[error("certificate expired at {not_after} (unix seconds)")]
    Expired {
        /// `notAfter`, unix seconds.
        not_after: i64,
    },
    /// The leaf has no DNS subject alternative name to serve.
    #[error("certificate has no DNS subject alternative name")]
    NoDnsName,
    /// Two pairs claim the same name (exact or wildcard).
    #[error("name {name:?} is also served by {other}")]
    DuplicateName {
        /// The canonical name.
        name: String,
        /// The other pair's certificate file.
        other: PathBuf,
    },
    /// Two pairs have the same label (e.g. `a.crt` and a folder `a/`).
    #[error("label {label:?} is also used by {other}")]
    DuplicateLabel {
        /// The label.
        label: String,
        /// The other pair's certificate file.
        other: PathBuf,
    },
    /// The directory holds no certificate pair at all.
    #[error("no certificate pairs (NAME.crt + NAME.key, or NAME/cert.pem + NAME/key.pem)")]
    Empty,
    /// `default_cert` matches no label and no name.
    #[error("default certificate {0:?} matches no pair label and no certificate name")]
    UnknownDefault(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.kind)?;
        write_causes(f, &self.kind)
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{n} error{} in the certificates:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

impl LoadErrors {
    /// Whether any error is about `path` (tests and log filters).
    pub fn mentions(&self, path: &std::path::Path) -> bool {
        self.errors.iter().any(|e| e.path == path)
    }
}

/// Appends `: cause` for each source below `err`, so one line tells the whole story.
fn write_causes(f: &mut fmt::Formatter<'_>, err: &dyn std::error::Error) -> fmt::Result {
    let mut source = err.source();
    while let Some(cause) = source {
        write!(f, ": {cause}")?;
        source = cause.source();
    }
    Ok(())
}

/// Building a rustls server or client config failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// rustls refused the provider/version combination or the ticketer failed to start.
    #[error("cannot build the TLS config")]
    Rustls(#[source] rustls::Error),
    /// The CA file cannot be read.
    #[error("{}: cannot read the CA file", path.display())]
    CaRead {
        /// The CA file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The CA file is not valid PEM.
    #[error("{}: invalid PEM in the CA file", path.display())]
    CaPem {
        /// The CA file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A CA certificate was rejected as a trust anchor.
    #[error("{}: unusable CA certificate", path.display())]
    CaCert {
        /// The CA file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rustls::Error,
    },
    /// The CA file holds no certificate.
    #[error("{}: no certificate in the CA file", path.display())]
    CaEmpty {
        /// The CA file.
        path: PathBuf,
    },
}

/// Starting the directory watcher failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}", path.display())]
pub struct WatchError {
    /// The directory.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: notify::Error,
}

/// Generating dev certificates failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// No host was given.
    #[error("no host names given")]
    NoHosts,
    /// A host is not a DNS name, a `*.` wildcard or an IP address.
    #[error("{0:?} is not a host name, a wildcard (*.example.com) or an IP address")]
    BadHost(String),
    /// Only one of `ca.pem` / `ca-key.pem` exists; refusing to replace a CA the user may trust.
    #[error("{} exists but {} does not; remove it or restore the pair", present.display(), missing.display())]
    HalfCa {
        /// The file that exists.
        present: PathBuf,
        /// The file that does not.
        missing: PathBuf,
    },
    /// The existing CA cannot be used.
    #[error("{}: cannot use the existing CA", path.display())]
    BadCa {
        /// `ca.pem` or `ca-key.pem`.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// rcgen failed to make a key or certificate.
    #[error("cannot generate the certificate")]
    Rcgen(#[source] rcgen::Error),
    /// Reading or writing a file failed.
    #[error("{}: file error", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
