//! Config errors: each names the file, the line and the key path (`sites[1].origins[0]`), so an
//! operator can go straight to the mistake. `check` prints all of them, not just the first.

use std::fmt;
use std::path::PathBuf;

/// Everything wrong with one config file.
#[derive(Debug)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

/// One problem, located.
#[derive(Debug)]
pub struct ConfigError {
    /// The config file, when the config came from one.
    pub file: Option<PathBuf>,
    /// 1-based line of the offending value, when known.
    pub line: Option<u32>,
    /// Key path, e.g. `sites[1].hosts[0]`; empty for whole-file errors.
    pub key: String,
    pub kind: ConfigErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigErrorKind {
    #[error("cannot read the file")]
    Read(#[source] std::io::Error),
    #[error("invalid YAML or schema: {0}")]
    Yaml(#[source] serde_saphyr::Error),
    #[error("{value:?} is not a duration (use a whole number with ms, s, m or h, e.g. \"10s\")")]
    BadDuration { value: String },
    #[error("{value:?} is not a size (use bytes, or a whole number with KiB, MiB or GiB)")]
    BadSize { value: String },
    #[error("{value:?} is not an IP address with a port (e.g. \"127.0.0.1:8080\")")]
    BadAddress {
        value: String,
        #[source]
        source: std::net::AddrParseError,
    },
    #[error("address {value} is used twice (also at {other})")]
    DuplicateAddress { value: String, other: String },
    #[error("must not be empty")]
    Empty,
    #[error("must be greater than zero")]
    Zero,
    #[error("{value} is more than the maximum of {max}")]
    TooLarge { value: u64, max: u64 },
    #[error("{value:?} is not a valid host name")]
    BadHost {
        value: String,
        #[source]
        source: portcullis_policy::HostError,
    },
    #[error("{value:?} must not carry a port: a site is chosen by host name only")]
    HostWithPort { value: String },
    #[error("host {host:?} is already served by {other}")]
    DuplicateHost { host: String, other: String },
    #[error("{value:?} is not a valid origin URL: {reason}")]
    BadOrigin { value: String, reason: &'static str },
    #[error(
        "{value:?} is not a valid site name (letters, digits, '-' and '_', not starting with '_')"
    )]
    BadName { value: String },
    #[error("site name {value:?} is used twice")]
    DuplicateName { value: String },
    #[error("cannot read token file {path}")]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("token file {path} is empty")]
    EmptyToken { path: PathBuf },
    #[error("{value:?} is not a log level (error, warn, info, debug, trace)")]
    BadLevel { value: String },
    #[error("a listener with tls: true needs the top-level tls: section (certs_dir)")]
    TlsWithoutSection,
    #[error("tls: is set but no listener has tls: true (add one, or remove the section)")]
    TlsSectionUnused,
    #[error("redirect_https needs a listener with tls: true to redirect to")]
    RedirectWithoutTls,
    #[error("redirect_https is for plain listeners; this listener has tls: true")]
    RedirectOnTls,
    #[error("{}", path.display())]
    Certs {
        /// The certificate file (or the directory) the problem is about.
        path: PathBuf,
        #[source]
        source: portcullis_certs::LoadErrorKind,
    },
    #[error("unusable origin TLS settings")]
    OriginTls(#[source] portcullis_certs::TlsConfigError),
    #[error("{value:?} is not a DNS name or IP address to verify an origin certificate against")]
    BadServerName { value: String },
    #[error("origin_tls is set but no origin of this site is https://")]
    OriginTlsUnused,
    #[error(
        "{value:?} is not an address block like \"127.0.0.0/8\" or \"::1\" (host bits must be zero)"
    )]
    BadCidr { value: String },
    /// The GeoIP database is missing or not a MaxMind DB; the source names the file.
    #[error("unusable GeoIP database")]
    Mmdb(#[source] crate::geo::GeoError),
    #[error("{value} is not a fraction between 0 and 1")]
    BadFraction { value: f64 },
    #[error("{value:?} is not a valid header name")]
    BadHeaderName { value: String },
    #[error("unusable trusted key")]
    Key(#[source] crate::bundle::KeyError),
    #[error("key {id} is listed twice (also as {other})")]
    DuplicateKey { id: String, other: String },
    #[error("{value:?} is not a policy source (file, etcd)")]
    BadSource { value: String },
    #[error("required {why}")]
    Required { why: &'static str },
    #[error("not used {why}")]
    NotUsed { why: &'static str },
    #[error("bad etcd endpoint: {reason}")]
    BadEtcdEndpoint { reason: String },
    #[error("{value:?} is not a key prefix (start with '/', no trailing '/', no spaces)")]
    BadEtcdPrefix { value: String },
    #[error("{value:?}: a lease TTL is whole seconds, at least 2s")]
    BadLeaseTtl { value: String },
    #[error("{value:?} is not a node id (1 to 64 bytes of letters, digits, '-', '_' and '.')")]
    BadNodeId { value: String },
    #[error("{value:?} is not a rate (a size per second, e.g. \"1KiB/s\"; 0 turns it off)")]
    BadRate { value: String },
    #[error("burst must be at least 1 when requests_per_second is above 0")]
    BurstZero,
    #[error("{value:?} is not the name of a site in sites:")]
    UnknownSite { value: String },
    #[error("insecure_skip_verify accepts any certificate, so ca_file would be ignored; set one")]
    InsecureWithCa,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{}:{line}: ", file.display())?,
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            (None, Some(line)) => write!(f, "line {line}: ")?,
            (None, None) => {}
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.kind)?;
        // The YAML error renders its own snippet; other sources add the cause chain.
        if !matches!(self.kind, ConfigErrorKind::Yaml(_)) {
            let mut source = std::error::Error::source(&self.kind);
            while let Some(cause) = source {
                write!(f, ": {cause}")?;
                source = cause.source();
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(
            f,
            "{n} error{} in the config:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
