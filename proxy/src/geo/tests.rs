use std::net::IpAddr;
use std::path::Path;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;
use crate::config::{Cidr, Config, ConfigErrorKind, GeoipConfig};

// The harness crate's writer, included rather than depended on (that would build this crate
// twice); its own tests come along and run here too.
#[allow(dead_code, unreachable_pub)]
#[path = "../../../tests/src/mmdb.rs"]
mod mmdb;

const HEADER: HeaderName = HeaderName::from_static("cf-ipcountry");

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A database and a `Geo` over it trusting `127.0.0.0/8` and `2001:db8:ffff::/48`.
fn geo(dir: &Path) -> Geo {
    let mut w = mmdb::MmdbWriter::new("GeoIP2-Country");
    w.insert_countries(&[
        ("127.0.0.2/32", "DE"),
        ("127.0.0.3/32", "us"), // lowercase in the data, uppercase out
        ("::1/128", "FR"),
        ("192.0.2.0/24", "DE"),
        ("198.51.100.0/24", "US"),
        ("2001:db8::/48", "NL"),
        ("203.0.113.1/32", "XX"),
        ("203.0.113.2/32", "T1"),
    ])
    .unwrap();
    w.insert("203.0.113.3/32", &mmdb::Value::registered_country("GB"))
        .unwrap();
    let path = dir.join("country.mmdb");
    w.write_to(&path).unwrap();
    Geo::new(Some(&GeoipConfig {
        mmdb: Some(path),
        trusted_proxies: vec![
            Cidr::parse("127.0.0.0/8").unwrap(),
            Cidr::parse("2001:db8:ffff::/48").unwrap(),
        ],
        country_header: HEADER,
    }))
    .unwrap()
}

fn code(s: &str) -> Option<[u8; 2]> {
    let b = s.as_bytes();
    Some([b[0], b[1]])
}

fn headers(pairs: &[(&str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_static(v),
        );
    }
    h
}

#[test]
fn peer_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let g = geo(dir.path());
    // IPv4, IPv6, IPv4-mapped IPv6 (a dual-stack socket's view of an IPv4 peer).
    assert_eq!(g.peer_country(ip("127.0.0.2")), code("DE"));
    assert_eq!(g.peer_country(ip("192.0.2.200")), code("DE"));
    assert_eq!(g.peer_country(ip("127.0.0.3")), code("US"), "uppercased");
    assert_eq!(g.peer_country(ip("::1")), code("FR"));
    assert_eq!(g.peer_country(ip("2001:db8:0:1::5")), code("NL"));
    assert_eq!(g.peer_country(ip("::ffff:127.0.0.2")), code("DE"));
    assert_eq!(g.peer_country(ip("::ffff:198.51.100.1")), code("US"));
    // registered_country when there is no country.
    assert_eq!(g.peer_country(ip("203.0.113.3")), code("GB"));
    // Misses, and codes that are not a country.
    assert_eq!(g.peer_country(ip("127.0.0.1")), None);
    assert_eq!(g.peer_country(ip("10.0.0.1")), None);
    assert_eq!(g.peer_country(ip("2001:db9::1")), None);
    assert_eq!(g.peer_country(ip("203.0.113.1")), None, "XX");
    assert_eq!(g.peer_country(ip("203.0.113.2")), None, "T1");
}

#[test]
fn without_a_database_every_country_is_unknown() {
    let g = Geo::disabled();
    assert_eq!(g.peer_country(ip("127.0.0.2")), None);
    assert!(!g.is_trusted(ip("127.0.0.1")));
    let mut h = headers(&[("cf-ipcountry", "DE")]);
    assert_eq!(g.client_country(ip("127.0.0.1"), &mut h), None);
    assert!(
        !h.contains_key("cf-ipcountry"),
        "stripped even when disabled"
    );
    // Trusted proxies without a database: only their header names a country.
    let g = Geo::new(Some(&GeoipConfig {
        mmdb: None,
        trusted_proxies: vec![Cidr::parse("127.0.0.0/8").unwrap()],
        country_header: HEADER,
    }))
    .unwrap();
    let mut h = headers(&[("cf-ipcountry", "de")]);
    assert_eq!(g.client_country(ip("127.0.0.1"), &mut h), code("DE"));
    assert_eq!(
        g.client_country(ip("127.0.0.1"), &mut HeaderMap::new()),
        None
    );
}

#[test]
fn disabled_strips_the_config_default_header() {
    let cfg = Config::from_yaml(
        "listeners: [{address: \"127.0.0.1:0\"}]\n\
         geoip: {trusted_proxies: [\"10.0.0.0/8\"]}\n\
         sites: [{name: a, hosts: [a.example], origins: [\"http://127.0.0.1:1\"]}]\n",
        Path::new("."),
    )
    .unwrap();
    assert_eq!(
        cfg.geoip.unwrap().country_header,
        Geo::disabled().header,
        "the same default"
    );
}

#[test]
fn a_trusted_proxy_s_country_header_wins() {
    let dir = tempfile::tempdir().unwrap();
    let g = geo(dir.path());
    for peer in ["127.0.0.2", "::ffff:127.0.0.9", "2001:db8:ffff::1"] {
        assert!(g.is_trusted(ip(peer)), "{peer}");
        let mut h = headers(&[("cf-ipcountry", "jp"), ("x-forwarded-for", "192.0.2.1")]);
        assert_eq!(g.client_country(ip(peer), &mut h), code("JP"), "{peer}");
        assert_eq!(h["cf-ipcountry"], "jp", "kept for the origin");
    }
    // "XX" is the proxy saying it does not know: unknown, not looked up.
    let mut h = headers(&[("cf-ipcountry", "XX"), ("x-forwarded-for", "192.0.2.1")]);
    assert_eq!(g.client_country(ip("127.0.0.1"), &mut h), None);
    let mut h = headers(&[("cf-ipcountry", " xx ")]);
    assert_eq!(g.client_country(ip("127.0.0.2"), &mut h), None);
}

#[test]
fn malformed_country_headers_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let g = geo(dir.path());
    let bad: [&[&'static str]; 7] = [
        &["T1"],
        &["D"],
        &["DEU"],
        &[""],
        &["D1"],
        &["DE", "US"], // two lines: which one?
        &["DE,US"],
    ];
    for values in bad {
        let mut h = headers(&[("x-forwarded-for", "198.51.100.7")]);
        for v in values {
            h.append(HEADER, HeaderValue::from_static(v));
        }
        // Falls through to X-Forwarded-For, then the peer.
        assert_eq!(
            g.client_country(ip("127.0.0.1"), &mut h),
            code("US"),
            "{values:?}"
        );
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, HeaderValue::from_static(v));
        }
        assert_eq!(
            g.client_country(ip("127.0.0.2"), &mut h),
            code("DE"),
            "{values:?}"
        );
    }
    let mut h = HeaderMap::new();
    h.insert(
        HEADER,
        HeaderValue::from_bytes(b"\xc4\x8e\xc4\x98").unwrap(),
    );
    assert_eq!(g.client_country(ip("127.0.0.2"), &mut h), code("DE"));
}

#[test]
fn an_untrusted_peer_s_header_is_stripped_and_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let g = geo(dir.path());
    for peer in ["192.0.2.5", "::1", "2001:db8::1", "10.0.0.1"] {
        assert!(!g.is_trusted(ip(peer)), "{peer}");
        let mut h = headers(&[
            ("cf-ipcountry", "JP"),
            ("cf-ipcountry", "JP"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        let want = g.peer_country(ip(peer));
        assert_eq!(g.client_country(ip(peer), &mut h), want, "{peer}");
        assert!(!h.contains_key("cf-ipcountry"), "{peer}");
        assert!(h.contains_key("x-forwarded-for"), "forward.rs drops it");
    }
    let mut h = headers(&[("cf-ipcountry", "JP")]);
    assert_eq!(g.client_country(ip("192.0.2.5"), &mut h), code("DE"));
    assert_eq!(g.client_country(ip("10.0.0.1"), &mut h), None);
}

#[test]
fn forwarded_for_gives_the_right_most_untrusted_address() {
    let dir = tempfile::tempdir().unwrap();
    let g = geo(dir.path());
    let cases: [(&[&'static str], Option<[u8; 2]>); 11] = [
        (&["198.51.100.7"], code("US")),
        // The left-most entry is the client's own claim; the right-most untrusted one is what
        // the trusted hop saw.
        (&["192.0.2.1, 198.51.100.7"], code("US")),
        (&["192.0.2.1, 198.51.100.7, 127.0.0.5"], code("US")),
        (
            &["192.0.2.1", "198.51.100.7, 127.0.0.5", "127.0.0.6"],
            code("US"),
        ),
        (&["198.51.100.7,127.0.0.5 ,  2001:db8:ffff::9"], code("US")),
        (&["198.51.100.7:5000, [2001:db8::1]:443"], code("NL")),
        (&["2001:db8::1"], code("NL")),
        // The client address is unknown to the database: unknown, not the proxy's country.
        (&["192.0.2.1, 10.9.9.9"], None),
        // Garbage where the client should be: nothing to the left can be believed.
        (&["198.51.100.7, unknown, 127.0.0.5"], code("DE")),
        // Only trusted hops: the peer's own lookup.
        (&["127.0.0.5, 127.0.0.6"], code("DE")),
        (&[""], code("DE")),
    ];
    for (xff, want) in cases {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_static(v));
        }
        assert_eq!(g.client_country(ip("127.0.0.2"), &mut h), want, "{xff:?}");
    }
    let mut h = HeaderMap::new();
    assert_eq!(g.client_country(ip("127.0.0.2"), &mut h), code("DE"));
    assert_eq!(g.client_country(ip("127.0.0.1"), &mut h), None);
}

#[test]
fn a_missing_or_corrupt_database_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.mmdb");
    let cfg = GeoipConfig {
        mmdb: Some(missing.clone()),
        trusted_proxies: Vec::new(),
        country_header: HEADER,
    };
    let e = Geo::new(Some(&cfg)).unwrap_err();
    assert!(matches!(e, GeoError::Read { .. }), "{e:?}");
    assert!(e.to_string().contains("nope.mmdb"), "{e}");

    let corrupt = dir.path().join("corrupt.mmdb");
    std::fs::write(&corrupt, b"PK\x03\x04 this is a zip, not an mmdb").unwrap();
    let cfg = GeoipConfig {
        mmdb: Some(corrupt),
        ..cfg
    };
    let e = Geo::new(Some(&cfg)).unwrap_err();
    assert!(matches!(e, GeoError::Invalid { .. }), "{e:?}");
    assert!(e.to_string().contains("corrupt.mmdb"), "{e}");
}

fn config_with_mmdb(dir: &Path, mmdb: &str) -> Result<Config, crate::config::ConfigErrors> {
    let path = dir.join("portcullis.yaml");
    std::fs::write(
        &path,
        format!(
            "listeners: [{{address: \"127.0.0.1:0\"}}]\n\
             geoip:\n  mmdb: \"{mmdb}\"\n\
             sites: [{{name: a, hosts: [a.example], origins: [\"http://127.0.0.1:1\"]}}]\n"
        ),
    )
    .unwrap();
    Config::load(&path)
}

#[test]
fn the_config_check_opens_the_database() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("truncated.mmdb"),
        b"\xAB\xCD\xEFMaxMind.com\xe0",
    )
    .unwrap();
    std::fs::write(dir.path().join("text.mmdb"), b"not a database").unwrap();
    for (file, want) in [
        ("missing.mmdb", "cannot read"),
        ("text.mmdb", "is not a MaxMind DB"),
        ("truncated.mmdb", "is not a MaxMind DB"),
    ] {
        let errs = config_with_mmdb(dir.path(), file).unwrap_err();
        assert_eq!(errs.errors.len(), 1, "{errs}");
        let e = &errs.errors[0];
        assert!(matches!(e.kind, ConfigErrorKind::Mmdb(_)), "{e:?}");
        assert_eq!(e.key, "geoip.mmdb");
        assert_eq!(e.line, Some(3));
        let text = e.to_string();
        let full = dir.path().join(file);
        assert!(text.contains(&*full.to_string_lossy()), "{text}");
        assert!(text.contains(want), "{text}");
    }
    std::fs::write(
        dir.path().join("ok.mmdb"),
        mmdb::country_db(&[("192.0.2.0/24", "DE")]).unwrap(),
    )
    .unwrap();
    let cfg = config_with_mmdb(dir.path(), "ok.mmdb").unwrap();
    let g = Geo::new(cfg.geoip.as_ref()).unwrap();
    assert_eq!(g.peer_country(ip("192.0.2.1")), code("DE"));
}

#[test]
fn the_shipped_fixture_loads() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/geo/country-test.mmdb");
    let g = Geo::new(Some(&GeoipConfig {
        mmdb: Some(path),
        trusted_proxies: Vec::new(),
        country_header: HEADER,
    }))
    .unwrap();
    assert_eq!(g.peer_country(ip("127.0.0.2")), code("DE"));
    assert_eq!(g.peer_country(ip("127.0.0.4")), code("GB"));
    assert_eq!(g.peer_country(ip("127.0.0.1")), None);
}
