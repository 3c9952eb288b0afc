//! The hot path allocates nothing for a request that is not blocked: an unlisted host, a listed
//! host whose path or country is out of scope, or a dry-run match. Counted with an instrumented
//! global allocator (one test in this binary, so nothing else allocates meanwhile).

mod common;

use std::alloc::System;

use common::*;
use portcullis_policy::RequestFacts;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn no_allocation_when_not_blocked() {
    let dry = order("DRY", "      hosts: [dry.example]", "{ type: close }", "")
        .replace("mode: enforce", "mode: dry_run");
    let mut text = include_str!("fixtures/contract.yaml").to_owned();
    text.push_str(&dry);
    let p = compiled(&text);
    let now = "2026-12-01T00:00:00Z";
    let cases = [
        facts("www.shop.example", "/index.html?q=1", Some("DE"), now),
        facts("WWW.Shop.Example:443", "/a/../b//c", None, now),
        facts("files.example", "/shared/other/%2e%2e/x", Some("DE"), now),
        facts("files.example", "/shared/abc123/x", Some("US"), now),
        RequestFacts {
            sni: Some("other.example"),
            ..facts("shop.example", "/", None, now)
        },
        facts("dry.example", "/", None, now),
    ];
    for f in &cases {
        let region = Region::new(GLOBAL);
        let d = p.decide(f);
        let blocked = d.is_blocked();
        let matched = d.matched().count();
        drop(d);
        let stats = region.change();
        assert!(!blocked, "{f:?}");
        assert_eq!(stats.allocations, 0, "{f:?} allocated ({matched} matched)");
    }
    let region = Region::new(GLOBAL);
    let _ = p.decide_sni("www.shop.example", None, at(now));
    assert_eq!(region.change().allocations, 0, "decide_sni");
}
