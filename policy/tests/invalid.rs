//! One fixture per validation rule: each must be refused with exactly these messages (file,
//! line, order id, key path), every error of a file at once.

use portcullis_policy::Policy;

fn errors(name: &str) -> Vec<String> {
    let path = format!(
        "{}/tests/fixtures/invalid/{name}.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => panic!("{path}: {e}"),
    };
    match Policy::parse(&text, "policy.yaml") {
        Ok(_) => panic!("{name} was accepted"),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

const EXPECTED: &[(&str, &[&str])] = &[
    (
        "countries_empty",
        &[
            "policy.yaml:31: orders[1] (DE-LG-HH-2026-0099): scope.countries: an empty countries list would make the order global: omit countries for a global order",
        ],
    ),
    (
        "country_not_iso",
        &[
            "policy.yaml:31: orders[1] (DE-LG-HH-2026-0099): scope.countries[0]: \"Germany\" is not an ISO 3166-1 alpha-2 code",
        ],
    ),
    (
        "country_yaml11_boolean",
        &[
            "policy.yaml:31: orders[1] (DE-LG-HH-2026-0099): scope.countries[1]: false is not an ISO 3166-1 alpha-2 code: YAML reads an unquoted NO, Y, ON, OFF… as a boolean, so quote every country code (\"NO\")",
        ],
    ),
    (
        "duplicate_id",
        &[
            "policy.yaml:18: orders[1] (US-SDNY-2026-CV-0142): id: order id \"US-SDNY-2026-CV-0142\" is used twice (also orders[0])",
        ],
    ),
    (
        "duplicate_key",
        &[
            "policy.yaml:21: orders[1] (DE-LG-HH-2026-0099): legal_basis: duplicate key \"legal_basis\" (first at line 20)",
        ],
    ),
    (
        "effective_not_before_expiry",
        &[
            "policy.yaml:24: orders[1] (DE-LG-HH-2026-0099): effective_from: effective_from (2026-11-02T00:00:00Z) must be before expires_at (2026-11-02T00:00:00Z)",
        ],
    ),
    (
        "expires_at_missing",
        &["policy.yaml:4: orders[0] (US-SDNY-2026-CV-0142): expires_at: required key is missing"],
    ),
    (
        "host_invalid_idna",
        &[
            "policy.yaml:29: orders[1] (DE-LG-HH-2026-0099): scope.hosts[0].name: \"xn--zz-.example\" is not a valid host name after IDNA (UTS #46) processing",
        ],
    ),
    (
        "host_ip_address",
        &[
            "policy.yaml:29: orders[1] (DE-LG-HH-2026-0099): scope.hosts[0].name: \"203.0.113.7\" is an IP address: orders name hosts, never addresses (shared IPs over-block)",
        ],
    ),
    (
        "host_public_suffix",
        &[
            "policy.yaml:29: orders[1] (DE-LG-HH-2026-0099): scope.hosts[0].name: \"co.uk\" is a public suffix: blocking it would block every site under it",
        ],
    ),
    (
        "many_errors_at_once",
        &[
            "policy.yaml:2: blocked_by: \"http://edge.example.net/legal\" must be an https:// URL",
            "policy.yaml:8: orders[0] (US-SDNY-2026-CV-0142): issued_at: \"yesterday\" is not an RFC 3339 time with an offset (e.g. \"2026-11-21T00:00:00Z\"): the 'year' component could not be parsed",
            "policy.yaml:27: orders[1] (DE-LG-HH-2026-0099): mode: \"enforced\" is not one of: enforce, dry_run",
            "policy.yaml:29: orders[1] (DE-LG-HH-2026-0099): scope.hosts[0].name: \"10.0.0.1\" is an IP address: orders name hosts, never addresses (shared IPs over-block)",
            "policy.yaml:31: orders[1] (DE-LG-HH-2026-0099): scope.countries[0]: \"Germany\" is not an ISO 3166-1 alpha-2 code",
            "policy.yaml:31: orders[1] (DE-LG-HH-2026-0099): scope.countries[2]: false is not an ISO 3166-1 alpha-2 code: YAML reads an unquoted NO, Y, ON, OFF… as a boolean, so quote every country code (\"NO\")",
        ],
    ),
    (
        "notice_url_not_https",
        &[
            "policy.yaml:25: orders[1] (DE-LG-HH-2026-0099): notice_url: \"http://lumendatabase.org/notices/00000002\" must be an https:// URL",
        ],
    ),
    (
        "on_unknown_country_missing",
        &[
            "policy.yaml:31: orders[1] (DE-LG-HH-2026-0099): scope.on_unknown_country: countries is set, so on_unknown_country (block or allow) must be set too",
        ],
    ),
    (
        "refuse_tls_with_paths",
        &[
            "policy.yaml:33: orders[1] (DE-LG-HH-2026-0099): action.type: refuse_tls is decided in the TLS handshake, where no path is known: drop scope.paths",
        ],
    ),
    (
        "sealed_redirect",
        &[
            "policy.yaml:17: orders[0] (US-SDNY-2026-CV-0142): action.type: a sealed order cannot redirect to its notice_url (that would disclose it)",
        ],
    ),
    (
        "serial_not_positive",
        &["policy.yaml:1: serial: must be a whole number greater than zero"],
    ),
    (
        "status_code",
        &[
            "policy.yaml:17: orders[0] (US-SDNY-2026-CV-0142): action.code: status must be 403 or 404",
        ],
    ),
    (
        "time_without_offset",
        &[
            "policy.yaml:22: orders[1] (DE-LG-HH-2026-0099): issued_at: \"2026-11-01T00:00:00\" is not an RFC 3339 time with an offset (e.g. \"2026-11-21T00:00:00Z\"): the 'offset hour' component could not be parsed",
        ],
    ),
    (
        "unknown_key",
        &[
            "policy.yaml:29: orders[1] (DE-LG-HH-2026-0099): scope.host_names: unknown key \"host_names\" (expected one of: hosts, paths, countries, on_unknown_country)",
        ],
    ),
    (
        "wildcard_over_public_suffix",
        &[
            "policy.yaml:29: orders[1] (DE-LG-HH-2026-0099): scope.hosts[0].name: \"*.com\" is a wildcard over a public suffix",
        ],
    ),
];

#[test]
fn each_rule_has_a_fixture_and_its_message() {
    for (name, want) in EXPECTED {
        assert_eq!(errors(name), *want, "{name}");
    }
    let dir = format!("{}/tests/fixtures/invalid", env!("CARGO_MANIFEST_DIR"));
    let count = std::fs::read_dir(dir).map_or(0, |d| d.count());
    assert_eq!(
        count,
        EXPECTED.len() + 1,
        "a fixture without an expected message"
    );
}

#[test]
fn yaml_syntax_error_is_located() {
    let got = errors("yaml_syntax");
    assert_eq!(got.len(), 1);
    assert!(
        got[0].starts_with("policy.yaml:30: invalid YAML: "),
        "{}",
        got[0]
    );
}

#[test]
fn never_panics_on_truncations() {
    let text = include_str!("fixtures/contract.yaml");
    for end in (0..text.len()).filter(|&i| text.is_char_boundary(i)) {
        let _ = Policy::parse(&text[..end], "t.yaml");
    }
}
