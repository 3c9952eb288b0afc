//! A 1,000,000-host table compiles (time printed, never asserted: timing is the bench's job) and
//! answers like a small one.

mod common;

use std::time::Instant;

use common::*;
use portcullis_policy::CompiledPolicy;

#[test]
fn million_hosts() {
    let p = big_policy(1_000_000);
    let start = Instant::now();
    let c = CompiledPolicy::compile(p);
    let took = start.elapsed();
    println!(
        "compiled {} host names in {took:?} (this build profile)",
        c.host_count()
    );
    assert_eq!(c.host_count(), 1_000_002);
    assert!(
        c.decide(&facts("h999999.example", "/", None, "2026-12-01T00:00:00Z"))
            .is_blocked()
    );
    assert!(
        c.decide(&facts("H0.EXAMPLE.", "/", None, "2026-12-01T00:00:00Z"))
            .is_blocked()
    );
    assert!(
        !c.decide(&facts(
            "h1000000.example",
            "/",
            None,
            "2026-12-01T00:00:00Z"
        ))
        .is_blocked()
    );
    assert!(
        c.decide(&facts(
            "x.pirate.example",
            "/",
            None,
            "2026-12-01T00:00:00Z"
        ))
        .is_blocked()
    );
}
