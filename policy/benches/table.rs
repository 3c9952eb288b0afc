//! Compile of a 1,000,000-host table, and `decide` on an empty table vs a 1,000,000-host one
//! (the forwarding cost must not depend on the table size).
//!
//! Method: `CARGO_TARGET_DIR=/work/target-policy cargo bench -p portcullis-policy --bench table`
//! (release profile, criterion defaults except 10 samples for the compile). The policy is built
//! in code: one order per 1000 exact names `h{i}.example`, plus the contract orders.

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use portcullis_policy::{CompiledPolicy, Coverage, HostRule, Policy, RequestFacts};

const CONTRACT: &str = include_str!("../tests/fixtures/contract.yaml");

fn big_policy(n: usize) -> Policy {
    let Ok(mut p) = Policy::parse(CONTRACT, "contract.yaml") else {
        panic!("contract does not parse")
    };
    let template = p.orders[0].clone();
    let mut i = 0;
    while i < n {
        let mut o = template.clone();
        o.id = format!("BULK-{i}");
        let end = (i + 1000).min(n);
        o.scope.hosts = (i..end)
            .map(|j| HostRule {
                name: format!("h{j}.example"),
                unicode: None,
                coverage: Coverage::Exact,
            })
            .collect();
        p.orders.push(o);
        i = end;
    }
    p
}

fn empty_policy() -> Policy {
    let Ok(mut p) = Policy::parse(CONTRACT, "contract.yaml") else {
        panic!("contract does not parse")
    };
    p.orders.clear();
    p
}

fn now() -> SystemTime {
    // 2026-12-01T00:00:00Z: both contract orders are active.
    UNIX_EPOCH + Duration::from_secs(1_796_083_200)
}

fn facts<'a>(host: &'a str, path: &'a str, country: Option<[u8; 2]>) -> RequestFacts<'a> {
    RequestFacts {
        host,
        path,
        country,
        sni: Some(host),
        now: now(),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    g.bench_function("1M hosts", |b| {
        b.iter_batched(
            || big_policy(1_000_000),
            CompiledPolicy::compile,
            BatchSize::LargeInput,
        )
    });
    g.finish();

    let empty = CompiledPolicy::compile(empty_policy());
    let small = CompiledPolicy::compile(big_policy(0));
    let big = CompiledPolicy::compile(big_policy(1_000_000));
    let mut g = c.benchmark_group("decide");
    let allowed = facts("www.shop.example", "/assets/app.js?v=3", Some(*b"DE"));
    g.bench_function("empty table, allowed host", |b| {
        b.iter(|| empty.decide(black_box(&allowed)).is_blocked())
    });
    g.bench_function("contract table (2 orders), allowed host", |b| {
        b.iter(|| small.decide(black_box(&allowed)).is_blocked())
    });
    g.bench_function("1M table, allowed host", |b| {
        b.iter(|| big.decide(black_box(&allowed)).is_blocked())
    });
    let path_miss = facts("files.example", "/shared/other/file.zip", Some(*b"DE"));
    g.bench_function("1M table, listed host, path out of scope", |b| {
        b.iter(|| big.decide(black_box(&path_miss)).is_blocked())
    });
    let hit = facts("h765432.example", "/", None);
    g.bench_function("1M table, blocked host", |b| {
        b.iter(|| big.decide(black_box(&hit)).is_blocked())
    });
    let deep = facts("a.b.c.d.www.pirate.example", "/", None);
    g.bench_function("1M table, blocked by subdomain rule (6 labels)", |b| {
        b.iter(|| big.decide(black_box(&deep)).is_blocked())
    });
    g.bench_function("1M table, decide_sni allowed", |b| {
        b.iter(|| {
            big.decide_sni(black_box("www.shop.example"), None, now())
                .is_some()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
