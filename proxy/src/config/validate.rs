//! Validation of the raw config: every value checked, every error collected with its line and
//! key path. Raw structs are destructured exhaustively so a new key cannot slip through.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde_saphyr::Spanned;

use super::origin::parse_origin;
use super::raw::{RawAdmin, RawCache, RawConfig, RawLimits, RawLogging, RawSite, Scalar};
use super::units;
use super::{
    AdminConfig, CacheConfig, Config, ConfigError, ConfigErrorKind, Limits, Logging,
    MIN_HEADER_SIZE, OriginConfig, PolicyConfig, PolicySource, SiteConfig,
};

/// Upper bound of `limits.max_connections`: far above what one machine holds open, and within
/// what the connection semaphore can count.
const MAX_CONNECTIONS: u64 = 10_000_000;

pub(super) struct Validator<'a> {
    pub(super) base: &'a Path,
    pub(super) errors: Vec<ConfigError>,
}

fn line<T>(s: &Spanned<T>) -> u32 {
    s.referenced.line() as u32
}

impl Validator<'_> {
    pub(super) fn err<T>(
        &mut self,
        at: &Spanned<T>,
        key: impl Into<String>,
        kind: ConfigErrorKind,
    ) {
        self.errors.push(ConfigError {
            file: None,
            line: Some(line(at)),
            key: key.into(),
            kind,
        });
    }

    pub(super) fn config(&mut self, raw: RawConfig) -> Config {
        let RawConfig {
            node_id,
            listeners,
            admin,
            limits,
            logging,
            tls,
            policy,
            geoip,
            cache,
            protection,
            sites,
        } = raw;
        let mut seen_addrs: HashMap<SocketAddr, String> = HashMap::new();
        if listeners.value.is_empty() {
            self.err(&listeners, "listeners", ConfigErrorKind::Empty);
        }
        let out_listeners = self.listeners(listeners.value, tls.as_ref(), &mut seen_addrs);
        let tls = tls.and_then(|t| self.tls_section(&t));
        let node_id_given = node_id.is_some();
        let node_id = node_id.and_then(|n| self.node_id(&n));
        let policy = policy
            .and_then(|p| {
                let section = self.policy_section(&p);
                if let Some(PolicySource::Etcd(_)) = section.as_ref().map(|s| &s.source) {
                    if !node_id_given {
                        let why = "with policy.source: etcd (the name this node reports under, <prefix>/nodes/<node_id>)";
                        self.err(&p, "node_id", ConfigErrorKind::Required { why });
                        return None;
                    }
                }
                section
            })
            .map(|p| PolicyConfig {
                node_id: node_id.clone(),
                ..p
            });
        let geoip = geoip.and_then(|g| self.geoip_section(&g));
        let admin = admin.and_then(|a| self.admin(a.value, &mut seen_addrs));
        let limits = limits.map_or_else(Limits::default, |l| self.limits(l.value));
        let logging = logging.map_or_else(Logging::default, |l| self.logging(l.value));
        let cache = cache.map_or_else(CacheConfig::default, |c| self.cache(c.value));
        if sites.value.is_empty() {
            self.err(&sites, "sites", ConfigErrorKind::Empty);
        }
        let mut names: HashMap<String, ()> = HashMap::new();
        let mut hosts: HashMap<String, String> = HashMap::new();
        let out_sites = sites
            .value
            .into_iter()
            .enumerate()
            .filter_map(|(i, s)| self.site(i, s.value, &mut names, &mut hosts))
            .collect::<Vec<_>>();
        let protection = protection.map_or_else(super::ProtectionConfig::default, |p| {
            self.protection_section(p, &out_sites)
        });
        Config {
            source: None,
            node_id,
            listeners: out_listeners,
            admin,
            limits,
            logging,
            tls,
            policy,
            geoip,
            cache,
            protection,
            sites: out_sites,
        }
    }

    pub(super) fn address(
        &mut self,
        raw: &Spanned<String>,
        key: &str,
        seen: &mut HashMap<SocketAddr, String>,
    ) -> Option<SocketAddr> {
        match raw.value.parse::<SocketAddr>() {
            Ok(addr) => {
                // Port 0 means "any free port" and may legitimately repeat (tests use it).
                if addr.port() != 0 {
                    if let Some(other) = seen.get(&addr) {
                        let kind = ConfigErrorKind::DuplicateAddress {
                            value: raw.value.clone(),
                            other: other.clone(),
                        };
                        self.err(raw, key, kind);
                        return None;
                    }
                    seen.insert(addr, key.to_owned());
                }
                Some(addr)
            }
            Err(source) => {
                let kind = ConfigErrorKind::BadAddress {
                    value: raw.value.clone(),
                    source,
                };
                self.err(raw, key, kind);
                None
            }
        }
    }

    fn admin(
        &mut self,
        raw: RawAdmin,
        seen: &mut HashMap<SocketAddr, String>,
    ) -> Option<AdminConfig> {
        let RawAdmin {
            address,
            token_file,
        } = raw;
        let address = self.address(&address, "admin.address", seen);
        let token = token_file.and_then(|f| {
            let path = self.base.join(&f.value);
            match std::fs::read_to_string(&path) {
                Ok(t) if t.trim().is_empty() => {
                    self.err(&f, "admin.token_file", ConfigErrorKind::EmptyToken { path });
                    None
                }
                Ok(t) => Some(t.trim().to_owned()),
                Err(source) => {
                    let kind = ConfigErrorKind::TokenFile { path, source };
                    self.err(&f, "admin.token_file", kind);
                    None
                }
            }
        });
        Some(AdminConfig {
            address: address?,
            token,
        })
    }

    pub(super) fn duration(
        &mut self,
        raw: Option<Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Duration {
        let Some(raw) = raw else { return default };
        match units::parse_duration(&raw.value) {
            Some(d) => d,
            None => {
                let value = raw.value.clone();
                self.err(&raw, key, ConfigErrorKind::BadDuration { value });
                default
            }
        }
    }

    pub(super) fn size(&mut self, raw: &Spanned<Scalar>, key: &str) -> Option<u64> {
        match &raw.value {
            Scalar::Int(n) => Some(*n),
            Scalar::Str(s) => {
                let parsed = units::parse_size(s);
                if parsed.is_none() {
                    let kind = ConfigErrorKind::BadSize { value: s.clone() };
                    self.err(raw, key, kind);
                }
                parsed
            }
        }
    }

    fn cache(&mut self, raw: RawCache) -> CacheConfig {
        let RawCache {
            max_size,
            max_object_size,
            heuristic_fraction,
        } = raw;
        let d = CacheConfig::default();
        let size = |v: &mut Self, raw: Option<Spanned<Scalar>>, key: &str, default: u64| {
            let Some(raw) = raw else { return default };
            match v.size(&raw, key) {
                Some(0) => {
                    v.err(&raw, key, ConfigErrorKind::Zero);
                    default
                }
                Some(n) => n,
                None => default,
            }
        };
        let max_size = size(self, max_size, "cache.max_size", d.max_size);
        let max_object_size = size(
            self,
            max_object_size,
            "cache.max_object_size",
            d.max_object_size,
        );
        let heuristic_fraction = match heuristic_fraction {
            None => d.heuristic_fraction,
            Some(f) if (0.0..=1.0).contains(&f.value) => f.value,
            Some(f) => {
                let kind = ConfigErrorKind::BadFraction { value: f.value };
                self.err(&f, "cache.heuristic_fraction", kind);
                d.heuristic_fraction
            }
        };
        CacheConfig {
            max_size,
            max_object_size,
            heuristic_fraction,
        }
    }

    fn limits(&mut self, raw: RawLimits) -> Limits {
        let RawLimits {
            max_connections,
            header_read_timeout,
            idle_timeout,
            max_request_body,
            max_header_size,
            min_body_rate,
            min_body_rate_grace,
            h2_max_concurrent_streams,
            max_header_list_size,
        } = raw;
        let d = Limits::default();
        let max_connections = match max_connections {
            Some(n) if n.value == 0 => {
                self.err(&n, "limits.max_connections", ConfigErrorKind::Zero);
                d.max_connections
            }
            // The connection semaphore (and the drain that waits on it) counts in u32.
            Some(n) if n.value > MAX_CONNECTIONS => {
                let kind = ConfigErrorKind::TooLarge {
                    value: n.value,
                    max: MAX_CONNECTIONS,
                };
                self.err(&n, "limits.max_connections", kind);
                d.max_connections
            }
            Some(n) => usize::try_from(n.value).unwrap_or(d.max_connections),
            None => d.max_connections,
        };
        let max_request_body = match max_request_body {
            Some(raw) => match self.size(&raw, "limits.max_request_body") {
                Some(0) => None,
                Some(n) => Some(n),
                None => d.max_request_body,
            },
            None => d.max_request_body,
        };
        let max_header_size = match max_header_size {
            Some(raw) => match self.size(&raw, "limits.max_header_size") {
                Some(n) if n >= MIN_HEADER_SIZE => usize::try_from(n).unwrap_or(usize::MAX),
                Some(n) => {
                    let kind = ConfigErrorKind::BadSize {
                        value: format!("{n} (minimum is 8KiB)"),
                    };
                    self.err(&raw, "limits.max_header_size", kind);
                    d.max_header_size
                }
                None => d.max_header_size,
            },
            None => d.max_header_size,
        };
        Limits {
            max_connections,
            header_read_timeout: self.duration(
                header_read_timeout,
                "limits.header_read_timeout",
                d.header_read_timeout,
            ),
            idle_timeout: self.duration(idle_timeout, "limits.idle_timeout", d.idle_timeout),
            max_request_body,
            max_header_size,
            min_body_rate: min_body_rate.and_then(|r| self.body_rate(&r)),
            min_body_rate_grace: self.duration(
                min_body_rate_grace,
                "limits.min_body_rate_grace",
                d.min_body_rate_grace,
            ),
            h2_max_concurrent_streams: match h2_max_concurrent_streams {
                Some(n) if n.value == 0 => {
                    self.err(
                        &n,
                        "limits.h2_max_concurrent_streams",
                        ConfigErrorKind::Zero,
                    );
                    d.h2_max_concurrent_streams
                }
                Some(n) => u32::try_from(n.value).unwrap_or_else(|_| {
                    let kind = ConfigErrorKind::TooLarge {
                        value: n.value,
                        max: u64::from(u32::MAX),
                    };
                    self.err(&n, "limits.h2_max_concurrent_streams", kind);
                    d.h2_max_concurrent_streams
                }),
                None => d.h2_max_concurrent_streams,
            },
            max_header_list_size: match max_header_list_size {
                Some(raw) => match self.size(&raw, "limits.max_header_list_size") {
                    Some(n) if (MIN_HEADER_SIZE..=u64::from(u32::MAX)).contains(&n) => n as u32,
                    Some(n) => {
                        let kind = ConfigErrorKind::BadSize {
                            value: format!("{n} (between 8KiB and 4GiB)"),
                        };
                        self.err(&raw, "limits.max_header_list_size", kind);
                        d.max_header_list_size
                    }
                    None => d.max_header_list_size,
                },
                None => u32::try_from(max_header_size).unwrap_or(u32::MAX),
            },
        }
    }

    fn logging(&mut self, raw: RawLogging) -> Logging {
        let RawLogging { access_log, level } = raw;
        let d = Logging::default();
        let level = match level {
            Some(l) => {
                let v = l.value.to_ascii_lowercase();
                if ["error", "warn", "info", "debug", "trace"].contains(&v.as_str()) {
                    v
                } else {
                    let value = l.value.clone();
                    self.err(&l, "logging.level", ConfigErrorKind::BadLevel { value });
                    d.level
                }
            }
            None => d.level,
        };
        Logging {
            access_log: access_log.map_or(d.access_log, |a| a.value),
            level,
        }
    }

    fn site(
        &mut self,
        i: usize,
        raw: RawSite,
        names: &mut HashMap<String, ()>,
        all_hosts: &mut HashMap<String, String>,
    ) -> Option<SiteConfig> {
        let RawSite {
            name,
            hosts,
            origins,
            connect_timeout,
            response_timeout,
            h2,
            origin_down_for,
            origin_tls,
            cache,
        } = raw;
        let before = self.errors.len();
        let valid_name = !name.value.is_empty()
            && !name.value.starts_with('_')
            && name
                .value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name {
            let kind = ConfigErrorKind::BadName {
                value: name.value.clone(),
            };
            self.err(&name, format!("sites[{i}].name"), kind);
        } else if names.insert(name.value.clone(), ()).is_some() {
            let kind = ConfigErrorKind::DuplicateName {
                value: name.value.clone(),
            };
            self.err(&name, format!("sites[{i}].name"), kind);
        }
        if hosts.value.is_empty() {
            self.err(&hosts, format!("sites[{i}].hosts"), ConfigErrorKind::Empty);
        }
        let mut out_hosts = Vec::new();
        for (j, h) in hosts.value.iter().enumerate() {
            let key = format!("sites[{i}].hosts[{j}]");
            if let Some(host) = self.host(h, &key, all_hosts) {
                out_hosts.push(host);
            }
        }
        if origins.value.is_empty() {
            self.err(
                &origins,
                format!("sites[{i}].origins"),
                ConfigErrorKind::Empty,
            );
        }
        let mut out_origins = Vec::new();
        for (j, o) in origins.value.iter().enumerate() {
            match parse_origin(&o.value) {
                Ok((authority, tls)) => out_origins.push(OriginConfig {
                    url: o.value.clone(),
                    authority,
                    tls,
                }),
                Err(reason) => {
                    let kind = ConfigErrorKind::BadOrigin {
                        value: o.value.clone(),
                        reason,
                    };
                    self.err(o, format!("sites[{i}].origins[{j}]"), kind);
                }
            }
        }
        let connect_timeout = self.duration(
            connect_timeout,
            &format!("sites[{i}].connect_timeout"),
            Duration::from_secs(5),
        );
        let response_timeout = self.duration(
            response_timeout,
            &format!("sites[{i}].response_timeout"),
            Duration::from_secs(60),
        );
        let origin_down_for = self.duration(
            origin_down_for,
            &format!("sites[{i}].origin_down_for"),
            Duration::from_secs(10),
        );
        let origin_tls = origin_tls.and_then(|t| self.origin_tls(i, &t, &out_origins));
        (self.errors.len() == before).then(|| SiteConfig {
            name: name.value,
            hosts: out_hosts,
            origins: out_origins,
            connect_timeout,
            response_timeout,
            h2: h2.is_some_and(|h| h.value),
            origin_down_for,
            origin_tls,
            cache: cache.is_some_and(|c| c.value),
        })
    }

    fn host(
        &mut self,
        raw: &Spanned<String>,
        key: &str,
        all_hosts: &mut HashMap<String, String>,
    ) -> Option<String> {
        let host = match portcullis_policy::canonical_host(&raw.value) {
            Ok(h) => h.into_owned(),
            Err(source) => {
                let kind = ConfigErrorKind::BadHost {
                    value: raw.value.clone(),
                    source,
                };
                self.err(raw, key, kind);
                return None;
            }
        };
        let has_port = if raw.value.starts_with('[') {
            raw.value.contains("]:")
        } else {
            raw.value.contains(':')
        };
        if has_port {
            let kind = ConfigErrorKind::HostWithPort {
                value: raw.value.clone(),
            };
            self.err(raw, key, kind);
            return None;
        }
        if let Some(other) = all_hosts.get(&host) {
            let kind = ConfigErrorKind::DuplicateHost {
                host,
                other: other.clone(),
            };
            self.err(raw, key, kind);
            return None;
        }
        all_hosts.insert(host.clone(), key.to_owned());
        Some(host)
    }
}
