//! The config file exactly as written: serde structs that refuse unknown keys and keep each
//! value's line so validation errors can point at it. Nothing here is trusted; `config.rs` turns
//! it into validated types.

use serde::Deserialize;
use serde_saphyr::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub(crate) node_id: Option<Spanned<String>>,
    pub(crate) listeners: Spanned<Vec<Spanned<RawListener>>>,
    #[serde(default)]
    pub(crate) admin: Option<Spanned<RawAdmin>>,
    #[serde(default)]
    pub(crate) limits: Option<Spanned<RawLimits>>,
    #[serde(default)]
    pub(crate) logging: Option<Spanned<RawLogging>>,
    #[serde(default)]
    pub(crate) tls: Option<Spanned<RawTls>>,
    #[serde(default)]
    pub(crate) policy: Option<Spanned<RawPolicy>>,
    #[serde(default)]
    pub(crate) geoip: Option<Spanned<RawGeoip>>,
    #[serde(default)]
    pub(crate) cache: Option<Spanned<RawCache>>,
    #[serde(default)]
    pub(crate) protection: Option<Spanned<RawProtection>>,
    pub(crate) sites: Spanned<Vec<Spanned<RawSite>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawListener {
    pub(crate) address: Spanned<String>,
    #[serde(default)]
    pub(crate) tls: Option<Spanned<bool>>,
    #[serde(default)]
    pub(crate) redirect_https: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub(crate) certs_dir: Spanned<String>,
    #[serde(default)]
    pub(crate) default_cert: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) handshake_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    #[serde(default)]
    pub(crate) file: Option<Spanned<String>>,
    pub(crate) state_dir: Spanned<String>,
    #[serde(default)]
    pub(crate) close_grace: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) check_interval: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) source: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) trusted_keys: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub(crate) etcd: Option<Spanned<RawEtcd>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEtcd {
    pub(crate) endpoints: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(crate) prefix: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) lease_ttl: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGeoip {
    #[serde(default)]
    pub(crate) mmdb: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) trusted_proxies: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(crate) country_header: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCache {
    #[serde(default)]
    pub(crate) max_size: Option<Spanned<Scalar>>,
    #[serde(default)]
    pub(crate) max_object_size: Option<Spanned<Scalar>>,
    #[serde(default)]
    pub(crate) heuristic_fraction: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOriginTls {
    #[serde(default)]
    pub(crate) ca_file: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) server_name: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) insecure_skip_verify: Option<Spanned<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub(crate) address: Spanned<String>,
    #[serde(default)]
    pub(crate) token_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    #[serde(default)]
    pub(crate) max_connections: Option<Spanned<u64>>,
    #[serde(default)]
    pub(crate) header_read_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) idle_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) max_request_body: Option<Spanned<Scalar>>,
    #[serde(default)]
    pub(crate) max_header_size: Option<Spanned<Scalar>>,
    #[serde(default)]
    pub(crate) min_body_rate: Option<Spanned<Scalar>>,
    #[serde(default)]
    pub(crate) min_body_rate_grace: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) h2_max_concurrent_streams: Option<Spanned<u64>>,
    #[serde(default)]
    pub(crate) max_header_list_size: Option<Spanned<Scalar>>,
}

/// The `protection:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProtection {
    #[serde(default)]
    pub(crate) trusted_proxies: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(crate) per_client: Option<Spanned<RawPerClient>>,
    #[serde(default)]
    pub(crate) per_site: Option<Spanned<std::collections::BTreeMap<String, Spanned<RawRate>>>>,
    #[serde(default)]
    pub(crate) deny: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(crate) max_tracked_clients: Option<Spanned<u64>>,
    #[serde(default)]
    pub(crate) shed: Option<Spanned<RawShed>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPerClient {
    #[serde(default)]
    pub(crate) requests_per_second: Option<Spanned<u64>>,
    #[serde(default)]
    pub(crate) burst: Option<Spanned<u64>>,
    #[serde(default)]
    pub(crate) max_connections: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRate {
    pub(crate) requests_per_second: Spanned<u64>,
    #[serde(default)]
    pub(crate) burst: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawShed {
    #[serde(default)]
    pub(crate) max_inflight_requests: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLogging {
    #[serde(default)]
    pub(crate) access_log: Option<Spanned<bool>>,
    #[serde(default)]
    pub(crate) level: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSite {
    pub(crate) name: Spanned<String>,
    pub(crate) hosts: Spanned<Vec<Spanned<String>>>,
    pub(crate) origins: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(crate) connect_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) response_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) h2: Option<Spanned<bool>>,
    #[serde(default)]
    pub(crate) origin_down_for: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) origin_tls: Option<Spanned<RawOriginTls>>,
    #[serde(default)]
    pub(crate) cache: Option<Spanned<bool>>,
}

/// A size may be written as a bare number of bytes or as a string with a unit.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Scalar {
    Int(u64),
    Str(String),
}
