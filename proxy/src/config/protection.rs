//! Validation of the `protection:` section (per-client rate limits and connection caps, per-site
//! rates, the deny list, the client-state bound, load shedding) and of `limits.min_body_rate`.

use serde_saphyr::Spanned;

use super::raw::{RawPerClient, RawProtection, RawRate, RawShed, Scalar};
use super::validate::Validator;
use super::{Cidr, ConfigErrorKind, ProtectionConfig, RateLimit, SiteConfig};

/// Upper bound of rates, bursts and counts in this section: far above what one node serves, and
/// small enough for the token buckets' `f32` arithmetic to stay exact to well under a token.
const MAX_COUNT: u64 = 10_000_000;

impl Validator<'_> {
    pub(super) fn protection_section(
        &mut self,
        raw: Spanned<RawProtection>,
        sites: &[SiteConfig],
    ) -> ProtectionConfig {
        let RawProtection {
            trusted_proxies,
            per_client,
            per_site,
            deny,
            max_tracked_clients,
            shed,
        } = raw.value;
        let d = ProtectionConfig::default();
        let trusted_proxies = trusted_proxies.map(|l| self.cidrs(&l, "protection.trusted_proxies"));
        let (per_client, max_connections) = match per_client {
            Some(p) => {
                let RawPerClient {
                    requests_per_second,
                    burst,
                    max_connections,
                } = p.value;
                let rate = self.rate(
                    requests_per_second.as_ref(),
                    burst.as_ref(),
                    "protection.per_client",
                );
                let max_connections = max_connections.map_or(0, |m| {
                    self.count(&m, "protection.per_client.max_connections")
                });
                (rate, max_connections)
            }
            None => (d.per_client, d.max_connections),
        };
        let mut out_sites = Vec::new();
        for (name, r) in per_site.map(|p| p.value).unwrap_or_default() {
            let key = format!("protection.per_site.{name}");
            if !sites.iter().any(|s| s.name == name) {
                let kind = ConfigErrorKind::UnknownSite {
                    value: name.clone(),
                };
                self.err(&r, key.clone(), kind);
                continue;
            }
            let RawRate {
                requests_per_second,
                burst,
            } = &r.value;
            let rate = self.rate(Some(requests_per_second), burst.as_ref(), &key);
            out_sites.push((name, rate));
        }
        let deny = deny.map_or_else(Vec::new, |l| self.cidrs(&l, "protection.deny"));
        let max_tracked_clients = match max_tracked_clients {
            Some(m) if m.value == 0 => {
                self.err(&m, "protection.max_tracked_clients", ConfigErrorKind::Zero);
                d.max_tracked_clients
            }
            Some(m) if m.value > 100 * MAX_COUNT => {
                let kind = ConfigErrorKind::TooLarge {
                    value: m.value,
                    max: 100 * MAX_COUNT,
                };
                self.err(&m, "protection.max_tracked_clients", kind);
                d.max_tracked_clients
            }
            Some(m) => usize::try_from(m.value).unwrap_or(d.max_tracked_clients),
            None => d.max_tracked_clients,
        };
        let shed_max_inflight = match shed {
            Some(s) => {
                let RawShed {
                    max_inflight_requests,
                } = s.value;
                max_inflight_requests.map_or(0, |m| {
                    self.count(&m, "protection.shed.max_inflight_requests") as usize
                })
            }
            None => 0,
        };
        ProtectionConfig {
            trusted_proxies,
            per_client,
            max_connections,
            per_site: out_sites,
            deny,
            max_tracked_clients,
            shed_max_inflight,
        }
    }

    fn cidrs(&mut self, list: &[Spanned<String>], key: &str) -> Vec<Cidr> {
        let mut out = Vec::with_capacity(list.len());
        for (i, c) in list.iter().enumerate() {
            match Cidr::parse(c.value.trim()) {
                Some(cidr) => out.push(cidr),
                None => {
                    let kind = ConfigErrorKind::BadCidr {
                        value: c.value.clone(),
                    };
                    self.err(c, format!("{key}[{i}]"), kind);
                }
            }
        }
        out
    }

    /// A count up to [`MAX_COUNT`]; 0 is allowed (off).
    fn count(&mut self, raw: &Spanned<u64>, key: &str) -> u32 {
        if raw.value > MAX_COUNT {
            let kind = ConfigErrorKind::TooLarge {
                value: raw.value,
                max: MAX_COUNT,
            };
            self.err(raw, key, kind);
            return 0;
        }
        raw.value as u32
    }

    /// `requests_per_second` (0 = off) and `burst` (default: one second's worth; at least 1
    /// when the rate is on).
    fn rate(
        &mut self,
        rps: Option<&Spanned<u64>>,
        burst: Option<&Spanned<u64>>,
        key: &str,
    ) -> RateLimit {
        let requests_per_second =
            rps.map_or(0, |r| self.count(r, &format!("{key}.requests_per_second")));
        let burst = match burst {
            Some(b) => {
                let n = self.count(b, &format!("{key}.burst"));
                if n == 0 && requests_per_second > 0 {
                    self.err(b, format!("{key}.burst"), ConfigErrorKind::BurstZero);
                }
                n
            }
            None => requests_per_second,
        };
        RateLimit {
            requests_per_second,
            burst,
        }
    }

    /// `limits.min_body_rate`: a size per second (`"1KiB/s"`); `0` or `"0/s"` turns it off.
    pub(super) fn body_rate(&mut self, raw: &Spanned<Scalar>) -> Option<u64> {
        let bad = |v: &mut Self, value: String| {
            v.err(
                raw,
                "limits.min_body_rate",
                ConfigErrorKind::BadRate { value },
            );
            None
        };
        match &raw.value {
            Scalar::Int(0) => None,
            Scalar::Int(n) => bad(self, n.to_string()),
            Scalar::Str(s) => match s.trim().strip_suffix("/s") {
                Some(size) => match super::units::parse_size(size) {
                    Some(0) => None,
                    Some(n) => Some(n),
                    None => bad(self, s.clone()),
                },
                None => bad(self, s.clone()),
            },
        }
    }
}
