//! Policy file errors: each names the file, the line, the order (index and id) and the key path,
//! e.g. `policy.yaml:14: orders[1] (DE-LG-HH-2026-0099): scope.countries[0]: "Germany" is not an
//! ISO 3166-1 alpha-2 code`. [`PolicyErrors`] holds all of them; a file with any error changes
//! nothing.

use std::fmt;

/// Everything wrong with one policy file, in file order.
#[derive(Debug)]
pub struct PolicyErrors {
    pub errors: Vec<PolicyError>,
}

/// One problem, located.
#[derive(Debug)]
pub struct PolicyError {
    /// The label the caller gave ([`Policy::parse`](crate::Policy::parse)'s `file_label`).
    pub file: String,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// `orders[i]` and its id (when it has a readable one), for problems inside an order.
    pub order: Option<(usize, Option<String>)>,
    /// Key path, relative to the order when there is one (`scope.countries[0]`).
    pub key: String,
    pub kind: PolicyErrorKind,
}

/// What is wrong.
#[derive(Debug, thiserror::Error)]
pub enum PolicyErrorKind {
    #[error("invalid YAML: {0}")]
    Yaml(#[source] serde_saphyr::Error),
    #[error("invalid JSON: {message}")]
    Json { message: String },
    #[error("unknown key {key:?} (expected one of: {expected})")]
    UnknownKey { key: String, expected: &'static str },
    #[error("duplicate key {key:?} (first at line {first_line})")]
    DuplicateKey { key: String, first_line: u32 },
    #[error("mapping keys must be strings")]
    NonStringKey,
    #[error("required key is missing")]
    Missing,
    #[error("expected {expected}, found {found}")]
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    #[error("must not be empty")]
    Empty,
    #[error("{hint}")]
    EmptyList { hint: &'static str },
    #[error("{value:?} is not one of: {expected}")]
    NotOneOf {
        value: String,
        expected: &'static str,
    },
    #[error("must be a whole number greater than zero")]
    BadSerial,
    #[error(
        "{value:?} is not a valid order id (letters, digits, '.', '_', '-', ':', '/'; at most 128)"
    )]
    BadId { value: String },
    #[error("order id {id:?} is used twice (also orders[{first}])")]
    DuplicateId { id: String, first: usize },
    #[error("{value:?} is not an RFC 3339 time with an offset (e.g. \"2026-11-21T00:00:00Z\")")]
    BadTime {
        value: String,
        #[source]
        source: time::error::Parse,
    },
    #[error("effective_from ({from}) must be before expires_at ({until})")]
    NotBeforeExpiry { from: String, until: String },
    #[error("{value:?} is not an ISO 3166-1 alpha-2 code")]
    BadCountry { value: String },
    #[error(
        "{found} is not an ISO 3166-1 alpha-2 code: YAML reads an unquoted NO, Y, ON, OFF… as a \
         boolean, so quote every country code (\"NO\")"
    )]
    CountryNotString { found: String },
    #[error("{value:?} must be an https:// URL")]
    NotHttps { value: String },
    #[error("{value:?} is not a usable URL: {reason}")]
    BadUrl { value: String, reason: &'static str },
    #[error(
        "{value:?} is an IP address: orders name hosts, never addresses (shared IPs over-block)"
    )]
    IpHost { value: String },
    #[error("{value:?} is a public suffix: blocking it would block every site under it")]
    PublicSuffix { value: String },
    #[error("{value:?} is a wildcard over a public suffix")]
    WildcardOverPublicSuffix { value: String },
    #[error("{value:?}: a wildcard may only be a leading \"*.\" label")]
    BadWildcard { value: String },
    #[error("{value:?} is not a valid host name after IDNA (UTS #46) processing")]
    Idna {
        value: String,
        #[source]
        source: idna::Errors,
    },
    #[error("{value:?} is not a valid host name")]
    BadHost {
        value: String,
        #[source]
        source: crate::HostError,
    },
    #[error("{value:?} must be a bare host name (no port, scheme or path)")]
    NotBareHost { value: String },
    #[error("{value:?} is not a usable path prefix: {reason}")]
    BadPath { value: String, reason: &'static str },
    #[error("countries is set, so on_unknown_country (block or allow) must be set too")]
    UnknownCountryMissing,
    #[error("on_unknown_country has no effect without countries")]
    UnknownCountryUnused,
    #[error("status must be 403 or 404")]
    BadStatus,
    #[error("code is only for action type status")]
    CodeUnused,
    #[error("refuse_tls is decided in the TLS handshake, where no path is known: drop scope.paths")]
    RefuseTlsWithPaths,
    #[error("a sealed order cannot redirect to its notice_url (that would disclose it)")]
    SealedRedirect,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file)?;
        if let Some(line) = self.line {
            write!(f, "{line}:")?;
        }
        match &self.order {
            Some((i, Some(id))) => write!(f, " orders[{i}] ({id}):")?,
            Some((i, None)) => write!(f, " orders[{i}]:")?,
            None => {}
        }
        if !self.key.is_empty() {
            write!(f, " {}:", self.key)?;
        }
        write!(f, " {}", self.kind)?;
        // The YAML error renders its own snippet and idna's error says only "Errors"; other
        // causes are appended, once each (time's parse error repeats its inner message).
        if matches!(
            self.kind,
            PolicyErrorKind::Yaml(_) | PolicyErrorKind::Idna { .. }
        ) {
            return Ok(());
        }
        let mut last = String::new();
        let mut source = std::error::Error::source(&self.kind);
        while let Some(cause) = source {
            let text = cause.to_string();
            if text != last {
                write!(f, ": {text}")?;
            }
            last = text;
            source = cause.source();
        }
        Ok(())
    }
}

impl std::error::Error for PolicyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        writeln!(
            f,
            "{n} error{} in the policy:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}
