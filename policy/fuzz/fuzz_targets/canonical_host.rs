//! `canonical_host` on arbitrary input: it must never panic, and what it accepts must be a
//! fixed point (canonicalising the result again gives the same host), lowercase, without a
//! port, and made only of the bytes a host may contain.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_policy::canonical_host;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(host) = canonical_host(raw) {
        assert!(!host.is_empty());
        assert!(!host.bytes().any(|b| b.is_ascii_uppercase()), "{host:?}");
        assert!(
            host.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.[]:".contains(&b)),
            "{host:?}"
        );
        if !host.starts_with('[') {
            assert!(!host.contains(':'), "port left in {host:?}");
        }
        let again = canonical_host(&host).map(|h| h.into_owned());
        assert_eq!(again.as_deref(), Ok(host.as_ref()), "not a fixed point");
    }
});
