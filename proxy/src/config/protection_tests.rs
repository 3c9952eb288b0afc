//! The `protection:` section and the new `limits:` keys: the issue's contract text verbatim,
//! the defaults, and every error with its key and line.

use std::path::Path;
use std::time::Duration;

use super::*;

const SITES: &str = "sites:\n  - name: shop\n    hosts: [\"shop.example\"]\n    origins: [\"http://127.0.0.1:1\"]\n";

const CONTRACT: &str = r#"listeners:
  - address: "127.0.0.1:0"
protection:
  trusted_proxies: ["127.0.0.0/8"]  # optional here too: whose X-Forwarded-For names the client
  per_client:                        # a client = an IPv4 address or an IPv6 /64
    requests_per_second: 100         # token bucket; 0 = off
    burst: 200
    max_connections: 256             # concurrent connections per client
  per_site:                          # optional per-site override, by site name
    shop: { requests_per_second: 5000, burst: 10000 }
  deny: ["203.0.113.0/24"]           # static CIDR deny list → 403, checked at accept where possible
  max_tracked_clients: 1000000       # memory bound for per-client state (oldest evicted)
  shed:
    max_inflight_requests: 20000     # beyond it: 503 with Retry-After, from the cheapest path
limits:
  min_body_rate: "1KiB/s"            # slow-body (R.U.D.Y.) guard after a grace period
  h2_max_concurrent_streams: 256
  max_header_list_size: "64KiB"
"#;

fn load(yaml: &str) -> Result<Config, Vec<String>> {
    Config::from_yaml(yaml, Path::new("."))
        .map_err(|e| e.errors.iter().map(ToString::to_string).collect())
}

#[test]
fn the_contract_text_loads_verbatim() {
    let cfg = load(&format!("{CONTRACT}{SITES}")).unwrap_or_else(|e| panic!("{e:#?}"));
    let p = &cfg.protection;
    assert_eq!(
        p.trusted_proxies,
        Some(vec![Cidr::parse("127.0.0.0/8").unwrap()])
    );
    assert_eq!(
        p.per_client,
        RateLimit {
            requests_per_second: 100,
            burst: 200
        }
    );
    assert_eq!(p.max_connections, 256);
    assert_eq!(
        p.per_site,
        vec![(
            "shop".to_owned(),
            RateLimit {
                requests_per_second: 5000,
                burst: 10000
            }
        )]
    );
    assert_eq!(p.deny, vec![Cidr::parse("203.0.113.0/24").unwrap()]);
    assert_eq!(p.max_tracked_clients, 1_000_000);
    assert_eq!(p.shed_max_inflight, 20_000);
    assert_eq!(cfg.limits.min_body_rate, Some(1024));
    assert_eq!(cfg.limits.min_body_rate_grace, Duration::from_secs(5));
    assert_eq!(cfg.limits.h2_max_concurrent_streams, 256);
    assert_eq!(cfg.limits.max_header_list_size, 64 << 10);
}

#[test]
fn without_the_section_everything_is_off() {
    let cfg = load(&format!(
        "listeners:\n  - address: \"127.0.0.1:0\"\n{SITES}"
    ))
    .unwrap();
    assert_eq!(cfg.protection, ProtectionConfig::default());
    assert_eq!(cfg.protection.per_client.requests_per_second, 0);
    assert_eq!(cfg.protection.max_connections, 0);
    assert_eq!(cfg.protection.shed_max_inflight, 0);
    assert_eq!(cfg.limits.min_body_rate, None);
    // The h2 header list cap follows max_header_size unless set.
    let cfg = load(&format!(
        "listeners:\n  - address: \"127.0.0.1:0\"\nlimits:\n  max_header_size: \"128KiB\"\n{SITES}"
    ))
    .unwrap();
    assert_eq!(cfg.limits.max_header_list_size, 128 << 10);
    // A rate without a burst gets a second's worth.
    let cfg = load(&format!(
        "listeners:\n  - address: \"127.0.0.1:0\"\nprotection:\n  per_client: {{ requests_per_second: 7 }}\n{SITES}"
    ))
    .unwrap();
    assert_eq!(cfg.protection.per_client.burst, 7);
}

#[test]
fn every_protection_error_names_key_and_line() {
    let base = "listeners:\n  - address: \"127.0.0.1:0\"\n";
    let cases: [(&str, &str, u32); 10] = [
        ("protection:\n  colour: red\n", "unknown field `colour`", 4),
        (
            "protection:\n  per_client: { requests_per_second: 5, burst: 0 }\n",
            "protection.per_client.burst: burst must be at least 1",
            4,
        ),
        (
            "protection:\n  per_site:\n    nope: { requests_per_second: 5 }\n",
            "protection.per_site.nope: \"nope\" is not the name of a site",
            5,
        ),
        (
            "protection:\n  deny: [\"10.0.0.1/8\"]\n",
            "protection.deny[0]: \"10.0.0.1/8\" is not an address block",
            4,
        ),
        (
            "protection:\n  trusted_proxies: [\"proxy.example\"]\n",
            "protection.trusted_proxies[0]",
            4,
        ),
        (
            "protection:\n  max_tracked_clients: 0\n",
            "protection.max_tracked_clients: must be greater than zero",
            4,
        ),
        (
            "protection:\n  shed: { max_inflight_requests: 99999999999 }\n",
            "protection.shed.max_inflight_requests: 99999999999 is more than the maximum",
            4,
        ),
        (
            "limits:\n  min_body_rate: \"1KiB\"\n",
            "limits.min_body_rate: \"1KiB\" is not a rate",
            4,
        ),
        (
            "limits:\n  h2_max_concurrent_streams: 0\n",
            "limits.h2_max_concurrent_streams: must be greater than zero",
            4,
        ),
        (
            "limits:\n  max_header_list_size: \"1KiB\"\n",
            "limits.max_header_list_size",
            4,
        ),
    ];
    for (section, want, line) in cases {
        let yaml = format!("{base}{section}{SITES}");
        let errs = load(&yaml)
            .err()
            .unwrap_or_else(|| panic!("no error for:\n{yaml}"));
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "want {want:?} in {errs:#?}"
        );
        assert!(
            errs.iter().any(|e| e.contains(&format!("line {line}"))),
            "want line {line} in {errs:#?}"
        );
    }
}
