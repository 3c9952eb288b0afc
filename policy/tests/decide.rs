//! Decisions: hosts and their bypass spellings, paths, countries, time boundaries, actions,
//! precedence, SNI.

mod common;

use common::*;
use portcullis_policy::{Action, BlockStatus, HostError, Outcome, RequestFacts, Verdict};

const NOW: &str = "2026-11-26T12:00:00Z";

fn blocked_by(v: &Verdict<'_>) -> Option<(String, Action)> {
    match v {
        Verdict::Block { order, action } => Some((order.id.clone(), *action)),
        _ => None,
    }
}

#[test]
fn host_spellings_all_hit_the_order() {
    let p = contract();
    let us = Some(("US-SDNY-2026-CV-0142".to_owned(), Action::Unavailable451));
    for host in [
        "pirate.example",
        "PIRATE.Example",
        "pirate.example.",
        "pirate.example:443",
        "Pirate.Example.:8443",
        "www.pirate.example",
        "a.b.c.pirate.example",
    ] {
        let d = p.decide(&facts(host, "/", None, NOW));
        assert_eq!(blocked_by(&d.verdict), us, "{host}");
        assert_eq!(d.matched().count(), 1);
    }
    for host in [
        "notpirate.example",
        "pirate.example.evil",
        "pirate-example",
        "example",
    ] {
        let d = p.decide(&facts(host, "/", None, NOW));
        assert_eq!(d.verdict, Verdict::Allow, "{host}");
        assert_eq!(d.matched().count(), 0);
    }
    for (host, err) in [
        ("user@pirate.example", HostError::Userinfo),
        ("pirate%2eexample", HostError::PercentEscape),
        ("pirate..example", HostError::EmptyLabel),
        ("pirate.example/x", HostError::PathSeparator),
        ("pïrate.example", HostError::NonAscii),
    ] {
        assert_eq!(
            p.decide(&facts(host, "/", None, NOW)).verdict,
            Verdict::BadHost(err)
        );
    }
}

#[test]
fn idn_orders_match_the_a_label() {
    let o = order(
        "IDN",
        "      hosts: [\"bücher.example\"]",
        "{ type: unavailable_451 }",
        "",
    );
    let p = compiled(&file(&[o]));
    assert!(
        p.decide(&facts("xn--bcher-kva.example", "/", None, NOW))
            .is_blocked()
    );
    assert!(
        p.decide(&facts("XN--BCHER-KVA.example", "/", None, NOW))
            .is_blocked()
    );
    // A U-label Host header is not a valid authority: the proxy answers 400.
    let d = p.decide(&facts("bücher.example", "/", None, NOW));
    assert_eq!(d.verdict, Verdict::BadHost(HostError::NonAscii));
}

#[test]
fn wildcard_covers_subdomains_not_apex() {
    let o = order(
        "W",
        "      hosts: [\"*.cdn.example\"]",
        "{ type: close }",
        "",
    );
    let p = compiled(&file(&[o]));
    assert!(
        p.decide(&facts("x.cdn.example", "/", None, NOW))
            .is_blocked()
    );
    assert!(
        p.decide(&facts("y.x.cdn.example", "/", None, NOW))
            .is_blocked()
    );
    assert!(!p.decide(&facts("cdn.example", "/", None, NOW)).is_blocked());
    assert!(
        !p.decide(&facts("xcdn.example", "/", None, NOW))
            .is_blocked()
    );
}

#[test]
fn path_and_country_scope() {
    let p = contract();
    let de = Some(("DE-LG-HH-2026-0099".to_owned(), Action::Unavailable451));
    for path in [
        "/shared/abc123/",
        "/shared/abc123",
        "/shared/abc123/file.zip?dl=1",
        "/shared/%61bc123/file",
        "/x/../shared/abc123/file",
        "/shared//abc123/file",
        "/shared%2fabc123/file",
        "/x/%252e%252e/shared/abc123/f",
        "/shared;v=1/abc123/f",
        "http://files.example/shared/abc123/f",
        "*",
    ] {
        let d = p.decide(&facts("files.example", path, Some("DE"), NOW));
        assert_eq!(blocked_by(&d.verdict), de, "{path}");
    }
    for path in ["/", "/shared/abc1234/", "/shared/", "/Shared/abc123/"] {
        let d = p.decide(&facts("files.example", path, Some("DE"), NOW));
        assert_eq!(d.verdict, Verdict::Allow, "{path}");
    }
    let path = "/shared/abc123/f";
    assert!(
        !p.decide(&facts("files.example", path, Some("US"), NOW))
            .is_blocked()
    );
    assert!(
        !p.decide(&facts("files.example", path, None, NOW))
            .is_blocked(),
        "unknown: allow"
    );
    assert!(
        p.decide(&facts("files.example", path, Some("de"), NOW))
            .is_blocked()
    );
    assert!(
        !p.decide(&facts("sub.files.example", path, Some("DE"), NOW))
            .is_blocked()
    );
}

#[test]
fn unknown_country_block() {
    let scope =
        "      hosts: [geo.example]\n      countries: [\"FR\"]\n      on_unknown_country: block";
    let p = compiled(&file(&[order("G", scope, "{ type: unavailable_451 }", "")]));
    assert!(p.decide(&facts("geo.example", "/", None, NOW)).is_blocked());
    assert!(
        p.decide(&facts("geo.example", "/", Some("FR"), NOW))
            .is_blocked()
    );
    assert!(
        !p.decide(&facts("geo.example", "/", Some("BE"), NOW))
            .is_blocked()
    );
}

#[test]
fn time_boundaries_without_sleeping() {
    let p = contract();
    let host = |now| {
        p.decide(&facts("pirate.example", "/", None, now))
            .is_blocked()
    };
    assert!(!host("2026-11-20T23:59:59.999999999Z"));
    assert!(host("2026-11-21T00:00:00Z"), "effective_from is inclusive");
    assert!(
        host("2100-01-01T00:00:00Z"),
        "expires_at: null never expires"
    );
    let files = |now| {
        let f = facts("files.example", "/shared/abc123/", Some("DE"), now);
        p.decide(&f).is_blocked()
    };
    assert!(!files("2026-11-01T23:59:59Z"));
    assert!(files("2026-11-02T00:00:00Z"));
    assert!(files("2027-11-01T23:59:59.999999999Z"));
    assert!(!files("2027-11-02T00:00:00Z"), "expires_at is exclusive");
    assert!(
        !files("2027-11-02T01:00:00+01:00"),
        "same instant in another offset"
    );

    let lifted = order(
        "L",
        "      hosts: [l.example]",
        "{ type: close }",
        "    lifted_at: \"2026-06-01T00:00:00Z\"\n",
    );
    let p = compiled(&file(&[lifted]));
    assert!(
        p.decide(&facts("l.example", "/", None, "2026-05-31T23:59:59Z"))
            .is_blocked()
    );
    assert!(
        !p.decide(&facts("l.example", "/", None, "2026-06-01T00:00:00Z"))
            .is_blocked()
    );
}

#[test]
fn each_action_and_most_restrictive_wins() {
    let actions = [
        ("redirect", "{ type: redirect }", Action::Redirect),
        (
            "s404",
            "{ type: status, code: 404 }",
            Action::Status(BlockStatus::NotFound404),
        ),
        (
            "s403",
            "{ type: status, code: 403 }",
            Action::Status(BlockStatus::Forbidden403),
        ),
        ("u451", "{ type: unavailable_451 }", Action::Unavailable451),
        ("close", "{ type: close }", Action::Close),
        ("tls", "{ type: refuse_tls }", Action::RefuseTls),
    ];
    // Each alone.
    for (id, yaml, want) in actions {
        let p = compiled(&file(&[order(id, "      hosts: [a.example]", yaml, "")]));
        let d = p.decide(&facts("a.example", "/", None, NOW));
        assert_eq!(blocked_by(&d.verdict), Some((id.to_owned(), want)));
    }
    // Stacked in increasing order: each new one wins; 404 and 403 rank equal, first in file wins.
    for n in 1..=actions.len() {
        let orders: Vec<String> = actions[..n]
            .iter()
            .map(|(id, yaml, _)| order(id, "      hosts: [a.example]", yaml, ""))
            .collect();
        let p = compiled(&file(&orders));
        let d = p.decide(&facts("a.example", "/", None, NOW));
        let want = match n {
            3 => ("s404", Action::Status(BlockStatus::NotFound404)),
            _ => (actions[n - 1].0, actions[n - 1].2),
        };
        assert_eq!(
            blocked_by(&d.verdict),
            Some((want.0.to_owned(), want.1)),
            "{n}"
        );
        assert_eq!(d.matched().count(), n, "every matching id is reported");
    }
}

#[test]
fn dry_run_serves_but_reports() {
    let dry = order(
        "DRY",
        "      hosts: [d.example]",
        "{ type: refuse_tls }",
        "",
    )
    .replace("mode: enforce", "mode: dry_run");
    let enforced = order("ENF", "      hosts: [d.example]", "{ type: redirect }", "");
    let p = compiled(&file(std::slice::from_ref(&dry)));
    let d = p.decide(&facts("d.example", "/", None, NOW));
    assert_eq!(d.verdict, Verdict::Allow);
    assert_eq!(
        d.dry_run().map(|o| o.id.as_str()).collect::<Vec<_>>(),
        ["DRY"]
    );
    assert_eq!(
        p.decide_sni("d.example", None, at(NOW)),
        None,
        "dry-run never refuses TLS"
    );
    // Dry-run ranks below every enforced action, even a redirect.
    let p = compiled(&file(&[dry, enforced]));
    let d = p.decide(&facts("d.example", "/", None, NOW));
    assert_eq!(
        blocked_by(&d.verdict),
        Some(("ENF".to_owned(), Action::Redirect))
    );
    assert_eq!(d.matched().count(), 2);
}

#[test]
fn sni_refuse_tls_and_misdirected() {
    let tls = order(
        "TLS",
        "      hosts: [{ name: t.example, include_subdomains: true }]",
        "{ type: refuse_tls }",
        "",
    );
    let u = order(
        "U",
        "      hosts: [u.example]",
        "{ type: unavailable_451 }",
        "",
    );
    let p = compiled(&file(&[tls, u]));
    let now = at(NOW);
    assert_eq!(
        p.decide_sni("WWW.t.example.", None, now)
            .map(|o| o.id.as_str()),
        Some("TLS")
    );
    assert_eq!(
        p.decide_sni("u.example", None, now),
        None,
        "451 orders are decided per request"
    );
    assert_eq!(p.decide_sni("ok.example", None, now), None);
    assert_eq!(
        p.decide_sni("t.example", None, at("2025-01-01T00:00:00Z")),
        None,
        "pending"
    );
    // Fronting: SNI allowed, Host suspended → the order's action whatever the SNI.
    let front = RequestFacts {
        sni: Some("ok.example"),
        ..facts("u.example", "/", None, NOW)
    };
    assert!(p.decide(&front).is_blocked());
    // Coalescing: Host allowed on a connection whose SNI is suspended → 421.
    let coalesced = RequestFacts {
        sni: Some("u.example"),
        ..facts("ok.example", "/", None, NOW)
    };
    assert_eq!(p.decide(&coalesced).verdict, Verdict::Misdirected);
    let same = RequestFacts {
        sni: Some("ok.example"),
        ..facts("OK.example", "/", None, NOW)
    };
    assert_eq!(p.decide(&same).verdict, Verdict::Allow);
    // In the request path a refuse_tls order (plain HTTP, or fronted) still blocks: drop it.
    let plain = facts("t.example", "/", None, NOW);
    assert_eq!(
        blocked_by(&p.decide(&plain).verdict),
        Some(("TLS".into(), Action::RefuseTls))
    );
}

#[test]
fn explain_says_why() {
    let p = contract();
    let f = RequestFacts {
        sni: Some("pirate.example"),
        ..facts("files.example", "/shared/x", Some("DE"), NOW)
    };
    let e = p.explain(&f);
    assert_eq!(e.host.as_deref(), Ok("files.example"));
    assert_eq!(e.path.as_deref(), Some("/shared/x"));
    assert_eq!(e.decision.verdict, Verdict::Misdirected);
    let got: Vec<(&str, bool, Outcome)> = e
        .considered
        .iter()
        .map(|c| (c.order.id.as_str(), c.by_sni, c.outcome))
        .collect();
    assert_eq!(
        got,
        [
            ("DE-LG-HH-2026-0099", false, Outcome::PathNotInScope),
            ("US-SDNY-2026-CV-0142", true, Outcome::Matched),
        ]
    );
    let e = p.explain(&facts("files.example", "/shared/abc123/", None, NOW));
    assert_eq!(e.considered[0].outcome, Outcome::UnknownCountryAllowed);
    let e = p.explain(&facts(
        "www.pirate.example",
        "/",
        None,
        "2026-01-01T00:00:00Z",
    ));
    assert_eq!(e.considered[0].outcome, Outcome::NotActive);
    assert_eq!(e.considered[0].via, "pirate.example (+subdomains)");
}
