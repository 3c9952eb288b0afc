//! Canonical authority: the per-request normalisation every request pays
//! before routing. The common shape (already lowercase, no port) must not
//! allocate; the others show what a port, a trailing dot, upper case or an
//! IPv6 literal cost, and how fast a hostile value is refused.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_policy::canonical_host;

fn bench_canonical_host(c: &mut Criterion) {
    let mut group = c.benchmark_group("canonical_host");
    for (name, host) in [
        ("lowercase", "bench.example"),
        ("with_port", "bench.example:8080"),
        ("uppercase", "Shop.Example.COM"),
        ("trailing_dot_port", "shop.example.com.:443"),
        (
            "long",
            "a-rather-long-label.another-label.third-label.example.co.uk",
        ),
        ("ipv6_port", "[2001:db8::1]:8443"),
        ("ipv4", "127.0.0.1"),
        ("refused_userinfo", "user@bench.example"),
    ] {
        group.bench_function(name, |b| b.iter(|| canonical_host(black_box(host)).is_ok()));
    }
    group.finish();
}

criterion_group!(benches, bench_canonical_host);
criterion_main!(benches);
