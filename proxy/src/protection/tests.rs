use std::net::IpAddr;
use std::path::Path;

use http::HeaderMap;

use super::*;
use crate::metrics::Metrics;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn xff(v: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("x-forwarded-for", v.parse().unwrap());
    h
}

#[test]
fn client_keys_are_ipv4_addresses_and_ipv6_slash_64s() {
    assert_eq!(
        ClientKey::of(ip("192.0.2.7")),
        ClientKey::V4([192, 0, 2, 7])
    );
    assert_eq!(
        ClientKey::of(ip("::ffff:192.0.2.7")),
        ClientKey::V4([192, 0, 2, 7]),
        "IPv4-mapped IPv6 is the IPv4 client"
    );
    let a = ClientKey::of(ip("2001:db8:1:2:aaaa::1"));
    let b = ClientKey::of(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"));
    let c = ClientKey::of(ip("2001:db8:1:3::1"));
    assert_eq!(a, b, "one /64, one client");
    assert_ne!(a, c);
}

#[test]
fn forwarded_for_names_the_client_only_behind_a_trusted_peer() {
    let trusted = [
        Cidr::parse("127.0.0.0/8").unwrap(),
        Cidr::parse("10.0.0.0/8").unwrap(),
    ];
    let h = xff("198.51.100.1, 203.0.113.9, 10.1.1.1");
    // Right-most untrusted entry; 10.1.1.1 is another trusted hop.
    assert_eq!(client_ip(ip("127.0.0.1"), &h, &trusted), ip("203.0.113.9"));
    // From an untrusted peer the header means nothing.
    assert_eq!(client_ip(ip("192.0.2.1"), &h, &trusted), ip("192.0.2.1"));
    // Several header lines: the last line's entries come first.
    let mut two = xff("198.51.100.1");
    two.append("x-forwarded-for", "10.0.0.5".parse().unwrap());
    assert_eq!(
        client_ip(ip("127.0.0.1"), &two, &trusted),
        ip("198.51.100.1")
    );
    // Ports as some proxies write them; junk falls back to the peer.
    assert_eq!(
        client_ip(ip("127.0.0.1"), &xff("[2001:db8::1]:443"), &trusted),
        ip("2001:db8::1")
    );
    assert_eq!(
        client_ip(ip("127.0.0.1"), &xff("not-an-address"), &trusted),
        ip("127.0.0.1")
    );
    assert_eq!(
        client_ip(ip("127.0.0.1"), &HeaderMap::new(), &trusted),
        ip("127.0.0.1")
    );
}

fn config(protection: &str) -> Config {
    let yaml = format!(
        "listeners:\n  - address: \"127.0.0.1:0\"\nsites:\n  - name: shop\n    hosts: [shop.example]\n    origins: [\"http://127.0.0.1:1\"]\n  - name: api\n    hosts: [api.example]\n    origins: [\"http://127.0.0.1:1\"]\n{protection}"
    );
    Config::from_yaml(&yaml, Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn without_the_section_nothing_is_checked() {
    let p = Arc::new(Protection::new(&config(""), &Metrics::new().protection));
    let live = p.live();
    for _ in 0..1000 {
        assert!(p.admit(ip("192.0.2.1")).unwrap().is_none());
        assert_eq!(
            p.check_request(&live, ip("192.0.2.1"), &HeaderMap::new(), Some("shop")),
            Ok(())
        );
    }
    assert_eq!(p.tracked(), 0);
}

#[test]
fn rate_per_client_with_a_per_site_override() {
    let cfg = config(
        "protection:\n  per_client: { requests_per_second: 1, burst: 2 }\n  per_site:\n    api: { requests_per_second: 1, burst: 4 }\n",
    );
    let p = Arc::new(Protection::new(&cfg, &Metrics::new().protection));
    let live = p.live();
    let h = HeaderMap::new();
    let a = ip("192.0.2.1");
    assert_eq!(p.check_request(&live, a, &h, Some("shop")), Ok(()));
    assert_eq!(p.check_request(&live, a, &h, Some("shop")), Ok(()));
    assert!(matches!(
        p.check_request(&live, a, &h, Some("shop")),
        Err(Refusal::Rate { retry_after: 1 })
    ));
    // Another client has its own bucket; the api site its own, larger one.
    assert_eq!(
        p.check_request(&live, ip("192.0.2.2"), &h, Some("shop")),
        Ok(())
    );
    for _ in 0..4 {
        assert_eq!(p.check_request(&live, a, &h, Some("api")), Ok(()));
    }
    assert!(p.check_request(&live, a, &h, Some("api")).is_err());
}

#[test]
fn deny_and_connection_cap_at_accept() {
    let cfg = config(
        "protection:\n  per_client: { max_connections: 2 }\n  deny: [\"203.0.113.0/24\"]\n  trusted_proxies: [\"10.0.0.0/8\"]\n",
    );
    let p = Arc::new(Protection::new(&cfg, &Metrics::new().protection));
    assert_eq!(p.admit(ip("203.0.113.5")).err(), Some(Rejected::Deny));
    let one = p.admit(ip("192.0.2.1")).unwrap();
    let two = p.admit(ip("192.0.2.1")).unwrap();
    assert!(one.is_some() && two.is_some());
    assert_eq!(p.admit(ip("192.0.2.1")).err(), Some(Rejected::Connections));
    drop(one);
    assert!(p.admit(ip("192.0.2.1")).unwrap().is_some());
    // A trusted proxy carries many clients: not capped at accept.
    let held: Vec<_> = (0..5).map(|_| p.admit(ip("10.0.0.1")).unwrap()).collect();
    assert!(held.iter().all(Option::is_none));
    // Its client on the deny list: refused per request.
    let live = p.live();
    assert_eq!(
        p.check_request(&live, ip("10.0.0.1"), &xff("203.0.113.77"), Some("shop")),
        Err(Refusal::Deny)
    );
}

#[test]
fn refusals_answer_with_retry_after_and_a_static_body() {
    let id = HeaderValue::from_static("id");
    let r = Refusal::Rate { retry_after: 7 }.response(&id);
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    let s = Refusal::Shed.response(&id);
    assert_eq!(s.status(), 503);
    assert_eq!(s.headers()["retry-after"], "1");
    let d = Refusal::Deny.response(&id);
    assert_eq!(d.status(), 403);
    assert!(d.headers().get("retry-after").is_none());
}

#[test]
fn an_h2_connection_trips_after_its_reset_burst() {
    let r = Arc::new(H2Resets::default());
    for _ in 0..H2_RESET_BURST as usize {
        StreamWatch::new(r.clone());
    }
    assert!(!r.done.load(std::sync::atomic::Ordering::Relaxed));
    // Answered streams cost nothing.
    StreamWatch::new(r.clone()).answered();
    assert!(!r.done.load(std::sync::atomic::Ordering::Relaxed));
    drop(StreamWatch::new(r.clone()));
    assert!(r.done.load(std::sync::atomic::Ordering::Relaxed));
}
