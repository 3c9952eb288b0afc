//! Validation of the `policy:` section (where the legal-order file and the state directory
//! are, how long a newly blocked connection may live) and the `geoip:` section (the country
//! database, the proxies trusted to name the client's country, and the header they use).
//!
//! The policy file itself is not read here: at start-up a broken file falls back to the last
//! good copy in `state_dir` (policy.rs), while `portcullis check` reports its errors.

use std::net::IpAddr;
use std::time::Duration;

use http::HeaderName;
use serde_saphyr::Spanned;

use super::raw::{RawGeoip, RawPolicy};
use super::validate::Validator;
use super::{ConfigErrorKind, GeoipConfig, PolicyConfig, PolicySource};

/// Default of `policy.close_grace`.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Default of `policy.check_interval`: the hash check that catches a missed watch event.
pub(super) const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Default of `geoip.country_header`.
pub(super) const COUNTRY_HEADER: &str = "cf-ipcountry";

/// An address block, `192.0.2.0/24` or `2001:db8::/32`; a bare address is a /32 or /128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `addr/prefix` or a bare address. The host bits must be zero, so a typo like
    /// `10.0.0.1/8` is caught rather than silently widened.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        let cidr = Cidr { addr, prefix };
        cidr.contains(addr).then_some(())?;
        (mask(addr, prefix) == bits(addr)).then_some(cidr)
    }

    /// Whether `ip` is inside the block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == bits(self.addr)
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn mask(ip: IpAddr, prefix: u8) -> u128 {
    let width = if ip.is_ipv4() { 32 } else { 128 };
    let host_bits = u32::from(width - prefix.min(width));
    let m = if host_bits >= 128 {
        0
    } else {
        (u128::MAX << host_bits) & (u128::MAX >> (128 - u32::from(width)))
    };
    bits(ip) & m
}

impl Validator<'_> {
    pub(super) fn policy_section(&mut self, raw: &Spanned<RawPolicy>) -> Option<PolicyConfig> {
        let RawPolicy {
            file,
            state_dir,
            close_grace,
            check_interval,
            source,
            trusted_keys,
            etcd,
        } = &raw.value;
        let before = self.errors.len();
        let from_etcd = match source {
            None => false,
            Some(s) => match s.value.trim() {
                "file" => false,
                "etcd" => true,
                _ => {
                    let value = s.value.clone();
                    self.err(s, "policy.source", ConfigErrorKind::BadSource { value });
                    false
                }
            },
        };
        let keys_listed = trusted_keys.is_some();
        let trusted_keys = trusted_keys
            .as_ref()
            .map(|k| self.trusted_keys(k))
            .unwrap_or_default();
        let file = match (file, from_etcd) {
            (Some(f), false) => {
                if f.value.trim().is_empty() {
                    self.err(f, "policy.file", ConfigErrorKind::Empty);
                }
                Some(self.base.join(&f.value))
            }
            (None, false) => {
                let why = "with policy.source: file (the default): the legal-order file to enforce";
                self.err(raw, "policy.file", ConfigErrorKind::Required { why });
                None
            }
            (Some(f), true) => {
                let why = "with policy.source: etcd (the policy comes from <prefix>/policy; remove policy.file)";
                self.err(f, "policy.file", ConfigErrorKind::NotUsed { why });
                None
            }
            (None, true) => None,
        };
        let source = match (etcd, from_etcd) {
            (Some(e), true) => self.etcd_section(e).map(PolicySource::Etcd),
            (None, true) => {
                let why = "with policy.source: etcd (endpoints, prefix)";
                self.err(raw, "policy.etcd", ConfigErrorKind::Required { why });
                None
            }
            (Some(e), false) => {
                let why = "unless policy.source is etcd";
                self.err(e, "policy.etcd", ConfigErrorKind::NotUsed { why });
                None
            }
            (None, false) => Some(PolicySource::File),
        };
        if from_etcd && !keys_listed {
            let why = "with policy.source: etcd (bundles from etcd must be signed: list the public keys they may be signed with)";
            self.err(
                raw,
                "policy.trusted_keys",
                ConfigErrorKind::Required { why },
            );
        }
        if state_dir.value.trim().is_empty() {
            self.err(state_dir, "policy.state_dir", ConfigErrorKind::Empty);
        }
        let close_grace = self.duration(close_grace.clone(), "policy.close_grace", CLOSE_GRACE);
        let check_interval = match check_interval {
            Some(c) => {
                let d = self.duration(Some(c.clone()), "policy.check_interval", CHECK_INTERVAL);
                if d.is_zero() {
                    self.err(c, "policy.check_interval", ConfigErrorKind::Zero);
                }
                d
            }
            None => CHECK_INTERVAL,
        };
        let source = source?;
        (self.errors.len() == before).then(|| PolicyConfig {
            file,
            state_dir: self.base.join(&state_dir.value),
            close_grace,
            check_interval,
            source,
            trusted_keys,
            node_id: None,
        })
    }

    /// `policy.trusted_keys`: every key loaded now, so `check` refuses what start-up would.
    fn trusted_keys(
        &mut self,
        raw: &Spanned<Vec<Spanned<String>>>,
    ) -> Vec<crate::bundle::TrustedKey> {
        if raw.value.is_empty() {
            // An empty list would trust nothing, or (read loosely) everything: neither is meant.
            self.err(raw, "policy.trusted_keys", ConfigErrorKind::Empty);
        }
        let mut keys: Vec<crate::bundle::TrustedKey> = Vec::new();
        for (i, k) in raw.value.iter().enumerate() {
            let key = format!("policy.trusted_keys[{i}]");
            if k.value.trim().is_empty() {
                self.err(k, key, ConfigErrorKind::Empty);
                continue;
            }
            match crate::bundle::load_public_key(&self.base.join(&k.value)) {
                Ok(loaded) => {
                    if let Some(other) = keys.iter().find(|o| o.id == loaded.id) {
                        let kind = ConfigErrorKind::DuplicateKey {
                            id: loaded.id.clone(),
                            other: other.path.display().to_string(),
                        };
                        self.err(k, key, kind);
                    } else {
                        keys.push(loaded);
                    }
                }
                Err(e) => self.err(k, key, ConfigErrorKind::Key(e)),
            }
        }
        keys
    }

    /// The top-level `node_id`: a name safe in logs, audit records and (later) store keys.
    pub(super) fn node_id(&mut self, raw: &Spanned<String>) -> Option<String> {
        let v = &raw.value;
        let ok = !v.is_empty()
            && v.len() <= 64
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if ok {
            Some(v.clone())
        } else {
            let value = v.clone();
            self.err(raw, "node_id", ConfigErrorKind::BadNodeId { value });
            None
        }
    }

    pub(super) fn geoip_section(&mut self, raw: &Spanned<RawGeoip>) -> Option<GeoipConfig> {
        let RawGeoip {
            mmdb,
            trusted_proxies,
            country_header,
        } = &raw.value;
        let before = self.errors.len();
        let mmdb = match mmdb {
            Some(m) if m.value.trim().is_empty() => {
                self.err(m, "geoip.mmdb", ConfigErrorKind::Empty);
                None
            }
            Some(m) => {
                // Opened as the proxy will open it, so `check` refuses what start-up would.
                let path = self.base.join(&m.value);
                match crate::geo::open_mmdb(&path) {
                    Ok(_) => Some(path),
                    Err(e) => {
                        self.err(m, "geoip.mmdb", ConfigErrorKind::Mmdb(e));
                        None
                    }
                }
            }
            None => None,
        };
        let mut trusted = Vec::new();
        for (i, p) in trusted_proxies.iter().flatten().enumerate() {
            match Cidr::parse(p.value.trim()) {
                Some(c) => trusted.push(c),
                None => self.err(
                    p,
                    format!("geoip.trusted_proxies[{i}]"),
                    ConfigErrorKind::BadCidr {
                        value: p.value.clone(),
                    },
                ),
            }
        }
        let country_header = match country_header {
            Some(h) => match HeaderName::from_bytes(h.value.trim().as_bytes()) {
                Ok(name) if !h.value.trim().is_empty() => Some(name),
                _ => {
                    self.err(
                        h,
                        "geoip.country_header",
                        ConfigErrorKind::BadHeaderName {
                            value: h.value.clone(),
                        },
                    );
                    None
                }
            },
            None => Some(HeaderName::from_static(COUNTRY_HEADER)),
        };
        (self.errors.len() == before).then(|| GeoipConfig {
            mmdb,
            trusted_proxies: trusted,
            country_header: country_header.unwrap_or(HeaderName::from_static(COUNTRY_HEADER)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing_and_containment() {
        let c = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(c.contains("127.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!c.contains("128.0.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let one = Cidr::parse("10.1.2.3").unwrap();
        assert!(one.contains("10.1.2.3".parse().unwrap()));
        assert!(!one.contains("10.1.2.4".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::".parse().unwrap()));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        assert!(
            Cidr::parse("::/0")
                .unwrap()
                .contains("::1".parse().unwrap())
        );
        // Host bits set, prefix too long, junk.
        assert_eq!(Cidr::parse("10.0.0.1/8"), None);
        assert_eq!(Cidr::parse("10.0.0.0/33"), None);
        assert_eq!(Cidr::parse("10.0.0.0/"), None);
        assert_eq!(Cidr::parse("example.com"), None);
    }
}
