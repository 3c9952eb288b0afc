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

/// The same file written as JSON (the fast path for generated tables) means the same policy, and
/// a JSON error names its line like a YAML one.
#[test]
fn contract_file_as_json_is_the_same_policy() {
    let yaml = include_str!("fixtures/contract.yaml");
    let json = r#"{
  "serial": 2026112601,
  "blocked_by": "https://edge.example.net/legal",
  "orders": [
    {
      "id": "US-SDNY-2026-CV-0142",
      "authority": { "name": "U.S. District Court for the Southern District of New York", "type": "court", "jurisdiction": "US" },
      "legal_basis": "17 U.S.C. 512(j)",
      "reference": "1:26-cv-00142",
      "issued_at": "2026-11-20T00:00:00Z",
      "effective_from": "2026-11-21T00:00:00Z",
      "expires_at": null,
      "notice_url": "https://lumendatabase.org/notices/00000001",
      "disclosure": "public",
      "mode": "enforce",
      "scope": { "hosts": [ { "name": "pirate.example", "include_subdomains": true } ] },
      "action": { "type": "unavailable_451" }
    },
    {
      "id": "DE-LG-HH-2026-0099",
      "authority": { "name": "Landgericht Hamburg", "type": "court", "jurisdiction": "DE" },
      "legal_basis": "UrhG 97",
      "reference": "310 O 99/26",
      "issued_at": "2026-11-01T00:00:00Z",
      "effective_from": "2026-11-02T00:00:00Z",
      "expires_at": "2027-11-02T00:00:00Z",
      "notice_url": "https://lumendatabase.org/notices/00000002",
      "disclosure": "public",
      "mode": "enforce",
      "scope": {
        "hosts": ["files.example"],
        "paths": [ { "prefix": "/shared/abc123/" } ],
        "countries": ["DE"],
        "on_unknown_country": "allow"
      },
      "action": { "type": "unavailable_451" }
    }
  ]
}"#;
    let (from_yaml, from_json) = match (
        Policy::parse(yaml, "contract.yaml"),
        Policy::parse(json, "contract.json"),
    ) {
        (Ok(y), Ok(j)) => (y, j),
        (y, j) => panic!(
            "{:?} {:?}",
            y.err().map(|e| e.to_string()),
            j.err().map(|e| e.to_string())
        ),
    };
    assert_eq!(from_yaml.serial, from_json.serial);
    assert!(portcullis_policy::diff(&from_yaml, &from_json).is_empty());
    assert_eq!(from_json.orders[1].line, 19);

    let broken = json.replacen(
        "\"reference\": \"310 O 99/26\",",
        "\"reference\": \"310 O 99/26\"",
        1,
    );
    let errors = match Policy::parse(&broken, "contract.json") {
        Ok(_) => panic!("a missing comma must not parse"),
        Err(e) => e.to_string(),
    };
    assert!(
        errors.contains("contract.json:24: invalid JSON"),
        "{errors}"
    );

    // Validation errors from the JSON path carry lines and key paths too.
    let bad = json.replacen("\"DE\"]", "\"Germany\"]", 1);
    let errors = match Policy::parse(&bad, "contract.json") {
        Ok(_) => panic!("a bad country must not validate"),
        Err(e) => e.to_string(),
    };
    assert!(
        errors.contains("contract.json:33: orders[1] (DE-LG-HH-2026-0099): scope.countries[0]"),
        "{errors}"
    );
}
