//! Configuration: the YAML file an operator writes, validated into types the proxy can trust.
//!
//! Parse, don't poke: [`raw`] mirrors the file and refuses unknown keys; [`Config::from_yaml`]
//! checks every value, collects every error (with file, line and key path) and only then returns
//! a [`Config`]. Raw structs are destructured exhaustively, so a new key does not compile until it
//! is validated here.

mod error;
mod fleet;
mod origin;
mod policy;
mod protection;
mod raw;
mod tls;
mod units;
mod validate;

pub use units::parse_duration;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{ConfigError, ConfigErrorKind, ConfigErrors};
pub use policy::Cidr;
use raw::RawConfig;
use validate::Validator;

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from, if any (relative paths inside it resolve against its folder).
    pub source: Option<PathBuf>,
    /// This node's name (`node_id`), written into every audit record; `None` when not set.
    pub node_id: Option<String>,
    pub listeners: Vec<ListenerConfig>,
    pub admin: Option<AdminConfig>,
    pub limits: Limits,
    pub logging: Logging,
    /// Certificates for the `tls: true` listeners; present exactly when such a listener is.
    pub tls: Option<TlsConfig>,
    /// Legal orders; without this section nothing is ever blocked.
    pub policy: Option<PolicyConfig>,
    /// Where the client's country comes from; without it, countries are unknown.
    pub geoip: Option<GeoipConfig>,
    /// The shared HTTP cache's bounds; the defaults apply when the section is absent. Only sites
    /// with `cache: true` use it.
    pub cache: CacheConfig,
    /// Attack protection (per-client rate limits, connection caps, deny list, shedding); all
    /// off when the section is absent.
    pub protection: ProtectionConfig,
    pub sites: Vec<SiteConfig>,
}

/// A token bucket's refill rate and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Tokens added per second; 0 = no limit.
    pub requests_per_second: u32,
    /// The most tokens a bucket holds (requests allowed at once after a quiet spell).
    pub burst: u32,
}

/// The `protection:` section (see docs/config.md, "protection").
#[derive(Debug, Clone, PartialEq)]
pub struct ProtectionConfig {
    /// Peers whose X-Forwarded-For names the client; `None` = `geoip.trusted_proxies`.
    pub trusted_proxies: Option<Vec<Cidr>>,
    /// `per_client.requests_per_second` / `burst`.
    pub per_client: RateLimit,
    /// `per_client.max_connections`: concurrent connections per client; 0 = no cap.
    pub max_connections: u32,
    /// `per_site`: a site's own rate, by site name (validated to exist).
    pub per_site: Vec<(String, RateLimit)>,
    /// Clients refused outright: closed at accept, or 403 when named by a trusted proxy.
    pub deny: Vec<Cidr>,
    /// The most clients whose state is kept (oldest evicted first).
    pub max_tracked_clients: usize,
    /// `shed.max_inflight_requests`: beyond it, 503 with Retry-After; 0 = off.
    pub shed_max_inflight: usize,
}

impl Default for ProtectionConfig {
    fn default() -> Self {
        ProtectionConfig {
            trusted_proxies: None,
            per_client: RateLimit {
                requests_per_second: 0,
                burst: 0,
            },
            max_connections: 0,
            per_site: Vec::new(),
            deny: Vec::new(),
            max_tracked_clients: 1_000_000,
            shed_max_inflight: 0,
        }
    }
}

/// The `cache:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// Memory for stored responses (bodies and headers), in bytes.
    pub max_size: u64,
    /// Larger responses stream through uncached.
    pub max_object_size: u64,
    /// RFC 9111 §4.2.2 heuristic freshness: this fraction of the time since `Last-Modified`
    /// (0 disables it).
    pub heuristic_fraction: f64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_size: 512 << 20,
            max_object_size: 16 << 20,
            heuristic_fraction: 0.1,
        }
    }
}

/// The `policy:` section.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// The legal-order file (POLICY-SPEC.md), hot-reloaded; resolved against the config's folder.
    /// Present exactly when `source` is [`PolicySource::File`].
    pub file: Option<PathBuf>,
    /// Holds `policy.last-good.yaml` (used at start-up when the file is broken) and
    /// `audit.jsonl`; created if missing.
    pub state_dir: PathBuf,
    /// The longest an exchange of a newly blocked host (download, WebSocket, HTTP/2 stream)
    /// keeps running after the change.
    pub close_grace: Duration,
    /// How often the file's hash is compared with the running one, in case a watch event was
    /// missed.
    pub check_interval: Duration,
    /// Where the policy comes from (`source`: the file, or etcd).
    pub source: PolicySource,
    /// `trusted_keys`, loaded: when not empty, the file must be a bundle signed by one of them
    /// (see [`crate::bundle`]); empty means plain policy files, as before.
    pub trusted_keys: Vec<crate::bundle::TrustedKey>,
    /// The node's name for audit records (the top-level `node_id`).
    pub node_id: Option<String>,
}

/// `policy.source`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PolicySource {
    /// `policy.file`, watched and hash-checked.
    #[default]
    File,
    /// Signed bundles at `<prefix>/policy` in etcd, watched (see [`crate::fleet`]).
    Etcd(EtcdConfig),
}

/// `policy.etcd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `http://host:port` URLs of the cluster's members, tried in order on every (re)connect.
    pub endpoints: Vec<String>,
    /// Key prefix: the bundle is at `<prefix>/policy`, node reports at `<prefix>/nodes/<id>`.
    pub prefix: String,
    /// TTL of the lease the node's report is written with (a stopped node's report goes after
    /// it); kept alive every third of it.
    pub lease_ttl: Duration,
}

impl EtcdConfig {
    /// `<prefix>/policy`.
    pub fn policy_key(&self) -> String {
        format!("{}/policy", self.prefix)
    }

    /// `<prefix>/nodes/`.
    pub fn nodes_prefix(&self) -> String {
        format!("{}/nodes/", self.prefix)
    }
}

/// The `geoip:` section.
#[derive(Debug, Clone)]
pub struct GeoipConfig {
    /// A MaxMind-format country database, looked up on the peer address.
    pub mmdb: Option<PathBuf>,
    /// Peers allowed to name the client's country (`country_header`) and address
    /// (X-Forwarded-For); from anyone else both are removed.
    pub trusted_proxies: Vec<Cidr>,
    /// The header a trusted proxy names the country in (default `CF-IPCountry`).
    pub country_header: http::HeaderName,
}

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub address: SocketAddr,
    /// `false`: plain HTTP, HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on the same port.
    /// `true`: TLS 1.2/1.3, then HTTP/2 or HTTP/1.1 as ALPN decides.
    pub tls: bool,
    /// Plain listeners only: answer every request for a known site with a 308 to `https://`.
    pub redirect_https: bool,
}

/// The `tls:` section: where the certificates are and how long a handshake may take.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Resolved against the config file's folder; validated (every pair loads) at load time.
    pub certs_dir: PathBuf,
    /// Served when the client sends no SNI, or one no certificate covers: a pair label or a
    /// certificate name.
    pub default_cert: Option<String>,
    /// From accepting the TCP connection to the end of the TLS handshake.
    pub handshake_timeout: Duration,
}

/// `sites[].origin_tls`: how to verify `https://` origins (used by `upstream::tls`).
#[derive(Debug, Clone, Default)]
pub struct OriginTlsConfig {
    /// Trust anchors (PEM) instead of the webpki roots; resolved against the config's folder.
    pub ca_file: Option<PathBuf>,
    /// The name sent as SNI and verified in the origin's certificate, instead of the URL's host.
    pub server_name: Option<String>,
    /// Accept any origin certificate. Dangerous; logged loudly.
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub address: SocketAddr,
    /// Bearer token required by endpoints that change state; read from `token_file`.
    pub token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// `None` means unlimited (`0` in the file).
    pub max_request_body: Option<u64>,
    pub max_header_size: usize,
    /// Request bodies slower than this many bytes per second (on average since the body
    /// started, once `min_body_rate_grace` has passed) are cut; `None` = no minimum.
    pub min_body_rate: Option<u64>,
    pub min_body_rate_grace: Duration,
    /// HTTP/2: streams a client may have open at once on one connection.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2: the largest header list (HPACK-decoded, RFC 9113 §6.5.2) accepted; it also
    /// bounds CONTINUATION floods. Defaults to `max_header_size`.
    pub max_header_list_size: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_request_body: Some(100 << 20),
            max_header_size: 64 << 10,
            min_body_rate: None,
            min_body_rate_grace: Duration::from_secs(5),
            h2_max_concurrent_streams: 256,
            max_header_list_size: 64 << 10,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Logging {
    pub access_log: bool,
    pub level: String,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            access_log: true,
            level: "info".to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SiteConfig {
    pub name: String,
    /// Canonical host names (lowercase, no port, no trailing dot).
    pub hosts: Vec<String>,
    pub origins: Vec<OriginConfig>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// Speak HTTP/2 (prior knowledge) to the origins instead of HTTP/1.1.
    pub h2: bool,
    /// How long an origin that refused a connection is skipped.
    pub origin_down_for: Duration,
    /// TLS settings for `https://` origins; `None` when the site has no `origin_tls` key.
    pub origin_tls: Option<OriginTlsConfig>,
    /// Responses for this site go through the shared cache.
    pub cache: bool,
}

#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// As written, for logs.
    pub url: String,
    /// `host:port`, port always present (80 for `http://`, 443 for `https://` by default).
    pub authority: http::uri::Authority,
    /// Written as `https://`.
    pub tls: bool,
}

/// Hard cap on the header block: hyper cannot buffer less than 8 KiB.
const MIN_HEADER_SIZE: u64 = 8 << 10;

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            errors: vec![ConfigError {
                file: Some(path.to_owned()),
                line: None,
                key: String::new(),
                kind: ConfigErrorKind::Read(e),
            }],
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut cfg = Config::from_yaml(&text, base).map_err(|mut errs| {
            for e in &mut errs.errors {
                e.file = Some(path.to_owned());
            }
            errs
        })?;
        cfg.source = Some(path.to_owned());
        Ok(cfg)
    }

    /// Validates YAML text; relative paths resolve against `base`.
    pub fn from_yaml(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
        let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| ConfigErrors {
            errors: vec![ConfigError {
                file: None,
                line: e.location().map(|l| l.line() as u32),
                key: String::new(),
                kind: ConfigErrorKind::Yaml(e),
            }],
        })?;
        let mut v = Validator {
            base,
            errors: Vec::new(),
        };
        let cfg = v.config(raw);
        if v.errors.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigErrors { errors: v.errors })
        }
    }
}

#[cfg(test)]
mod bundle_tests;
#[cfg(test)]
mod protection_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
