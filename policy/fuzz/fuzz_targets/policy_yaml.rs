//! The policy parser on arbitrary input: it must never panic; what it accepts must compile and
//! answer a request; what it refuses must say why with at least one located error.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use portcullis_policy::{CompiledPolicy, Policy, RequestFacts};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Policy::parse(text, "fuzz.yaml") {
        Ok(policy) => {
            let compiled = CompiledPolicy::compile(policy);
            let facts = RequestFacts {
                host: "www.example.com",
                path: "/a/../b?c",
                country: Some(*b"DE"),
                sni: Some("example.org"),
                now: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            };
            let _ = compiled.decide(&facts);
            let _ = compiled.explain(&facts);
        }
        Err(errors) => {
            assert!(!errors.errors.is_empty());
            for e in &errors.errors {
                assert!(e.to_string().starts_with("fuzz.yaml:"), "{e}");
            }
        }
    }
});
