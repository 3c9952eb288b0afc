//! Site routing: host → site, the lookup every request does after
//! canonicalising its authority. The table is built the way the proxy builds
//! it, from a YAML config, so the bench follows the real shape.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::Config;
use portcullis::metrics::Metrics;
use portcullis::route::SiteTable;
use portcullis_policy::canonical_host;

/// A config with `n` sites of three hosts each.
fn config_yaml(n: usize) -> String {
    let mut y = String::from(
        "listeners:\n  - address: \"127.0.0.1:8080\"\nlogging:\n  access_log: false\nsites:\n",
    );
    for i in 0..n {
        let _ = write!(
            y,
            "  - name: site{i}\n    hosts: [\"site{i}.example\", \"www.site{i}.example\", \"shop{i}.example.com\"]\n    origins: [\"http://127.0.0.1:9000\"]\n"
        );
    }
    y
}

fn bench_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("site_lookup");
    for sites in [1, 1000] {
        let cfg = match Config::from_yaml(&config_yaml(sites), Path::new(".")) {
            Ok(cfg) => cfg,
            Err(e) => panic!("bench config must be valid: {e:?}"),
        };
        let table = SiteTable::new(&cfg.sites, &Metrics::new()).expect("sites");
        let last = format!("shop{}.example.com", sites - 1);
        group.bench_function(format!("{sites}_sites/hit"), |b| {
            b.iter(|| table.lookup(black_box(last.as_str())).is_some())
        });
        group.bench_function(format!("{sites}_sites/miss"), |b| {
            b.iter(|| table.lookup(black_box("unknown.example")).is_some())
        });
        // What a request pays from raw Host header to site.
        let raw = format!("Shop{}.Example.com:443", sites - 1);
        group.bench_function(format!("{sites}_sites/canonical_then_lookup"), |b| {
            b.iter(|| {
                canonical_host(black_box(raw.as_str()))
                    .ok()
                    .and_then(|h| table.lookup(&h).map(|s| s.origins.len()))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_lookup);
criterion_main!(benches);
