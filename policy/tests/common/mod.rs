//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::time::SystemTime;

use portcullis_policy::{CompiledPolicy, Policy, RequestFacts};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn at(rfc3339: &str) -> SystemTime {
    match OffsetDateTime::parse(rfc3339, &Rfc3339) {
        Ok(t) => t.into(),
        Err(e) => panic!("{rfc3339}: {e}"),
    }
}

pub fn odt(rfc3339: &str) -> OffsetDateTime {
    match OffsetDateTime::parse(rfc3339, &Rfc3339) {
        Ok(t) => t,
        Err(e) => panic!("{rfc3339}: {e}"),
    }
}

pub fn policy(text: &str) -> Policy {
    match Policy::parse(text, "test.yaml") {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

pub fn compiled(text: &str) -> CompiledPolicy {
    CompiledPolicy::compile(policy(text))
}

pub fn contract() -> CompiledPolicy {
    compiled(include_str!("../fixtures/contract.yaml"))
}

pub fn facts<'a>(
    host: &'a str,
    path: &'a str,
    country: Option<&str>,
    now: &str,
) -> RequestFacts<'a> {
    RequestFacts {
        host,
        path,
        country: country.map(|c| {
            let b = c.as_bytes();
            [b[0], b[1]]
        }),
        sni: None,
        now: at(now),
    }
}

/// One order in YAML with the given extra scope lines and action, for building test files.
pub fn order(id: &str, scope: &str, action: &str, extra: &str) -> String {
    format!(
        r#"  - id: "{id}"
    authority: {{ name: "Court <of> \"Tests\" & Co", type: court, jurisdiction: "DE" }}
    legal_basis: "Law §1 <script>alert(1)</script>"
    reference: "REF-{id}"
    issued_at: "2026-01-01T00:00:00Z"
    effective_from: "2026-01-02T00:00:00Z"
    expires_at: null
    notice_url: "https://notices.example/{id}"
    disclosure: public
    mode: enforce
{extra}    scope:
{scope}
    action: {action}
"#
    )
}

pub fn file(orders: &[String]) -> String {
    format!(
        "serial: 7\nblocked_by: \"https://edge.example.net/legal\"\norders:\n{}",
        orders.concat()
    )
}

/// A policy with `n` exact host names (`h{i}.example`, one order per 1000 hosts) plus the
/// contract's two orders, built in code (parsing a million-host YAML file is not what is measured).
pub fn big_policy(n: usize) -> Policy {
    let mut p = policy(include_str!("../fixtures/contract.yaml"));
    let template = p.orders[0].clone();
    let mut i = 0;
    while i < n {
        let mut o = template.clone();
        o.id = format!("BULK-{i}");
        let end = (i + 1000).min(n);
        o.scope.hosts = (i..end)
            .map(|j| portcullis_policy::HostRule {
                name: format!("h{j}.example"),
                unicode: None,
                coverage: portcullis_policy::Coverage::Exact,
            })
            .collect();
        p.orders.push(o);
        i = end;
    }
    p
}
