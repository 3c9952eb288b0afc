//! The policy file from issue #5 loads verbatim.

use portcullis_policy::{Action, Coverage, Mode, Policy, UnknownCountry};

#[test]
fn contract_file_loads() {
    let text = include_str!("fixtures/contract.yaml");
    let policy = match Policy::parse(text, "contract.yaml") {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(policy.serial, 2026112601);
    assert_eq!(policy.blocked_by, "https://edge.example.net/legal");
    assert_eq!(policy.orders.len(), 2);
    let us = &policy.orders[0];
    assert_eq!(us.id, "US-SDNY-2026-CV-0142");
    assert_eq!(us.authority.jurisdiction.as_str(), "US");
    assert_eq!(us.expires_at, None);
    assert_eq!(us.scope.hosts[0].name, "pirate.example");
    assert_eq!(us.scope.hosts[0].coverage, Coverage::WithSubdomains);
    assert_eq!(us.action, Action::Unavailable451);
    let de = &policy.orders[1];
    assert_eq!(de.mode, Mode::Enforce);
    assert_eq!(de.scope.hosts[0].coverage, Coverage::Exact);
    assert_eq!(de.scope.paths[0].prefix, "/shared/abc123/");
    assert_eq!(de.scope.countries[0].as_str(), "DE");
    assert_eq!(de.scope.on_unknown_country, Some(UnknownCountry::Allow));
    assert_eq!(de.line, 18);
}
