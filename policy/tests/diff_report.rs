//! Audit diffs, the serial rule, summaries and transparency counts.

mod common;

use common::*;
use portcullis_policy::report::{report_csv, report_markdown, summary, transparency};
use portcullis_policy::{CompiledPolicy, OrderState, SerialError, diff};

#[test]
fn diff_by_id() {
    let a = order("A", "      hosts: [a.example]", "{ type: close }", "");
    let b = order("B", "      hosts: [b.example]", "{ type: close }", "");
    let b2 = order(
        "B",
        "      hosts: [b.example, c.example]",
        "{ type: close }",
        "",
    );
    let c = order("C", "      hosts: [c.example]", "{ type: close }", "");
    let old = policy(&file(&[a.clone(), b]));
    let new = policy(&file(&[c.clone(), a.clone(), b2]));
    let d = diff(&old, &new);
    assert_eq!(
        (d.added, d.removed, d.changed),
        (vec!["C".to_owned()], vec![], vec!["B".to_owned()])
    );
    // Moving an order (its line changes) is not a change.
    let moved = policy(&file(&[c, a]));
    let d = diff(&new, &moved);
    assert_eq!(
        (d.added.len(), d.removed, d.changed.len()),
        (0, vec!["B".to_owned()], 0)
    );
}

#[test]
fn serial_must_increase() {
    let text = include_str!("fixtures/contract.yaml");
    let running = contract();
    let lower = compiled(&text.replace("serial: 2026112601", "serial: 2026112600"));
    assert_eq!(
        running.check_replacement(&lower),
        Err(SerialError::Lower {
            running: 2026112601,
            new: 2026112600
        })
    );
    let same_changed = compiled(&text.replace("UrhG 97", "UrhG 98"));
    assert_eq!(
        running.check_replacement(&same_changed),
        Err(SerialError::Unchanged { serial: 2026112601 })
    );
    assert!(
        running
            .check_replacement(&contract())
            .is_ok_and(|d| d.is_empty()),
        "same file re-read"
    );
    let next = compiled(
        &text
            .replace("serial: 2026112601", "serial: 2026112602")
            .replace("UrhG 97", "UrhG 98"),
    );
    let d = running
        .check_replacement(&next)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.changed, ["DE-LG-HH-2026-0099"]);
}

#[test]
fn summary_states_at_now() {
    let text = include_str!("fixtures/contract.yaml").replace("pirate.example", "bücher.example");
    let p = policy(&text);
    let s = summary(&p, odt("2026-11-20T12:00:00Z"));
    assert_eq!(s.serial, 2026112601);
    assert_eq!(s.hosts, 2);
    let states: Vec<OrderState> = s.orders.iter().map(|o| o.state).collect();
    assert_eq!(states, [OrderState::Pending, OrderState::Active]);
    assert_eq!(
        s.orders[0].hosts[0],
        (
            "xn--bcher-kva.example (+subdomains)".to_owned(),
            Some("bücher.example (+subdomains)".to_owned())
        )
    );
    let later = summary(&p, odt("2027-11-02T00:00:00Z"));
    assert_eq!(later.states[&OrderState::Expired], 1);
    assert_eq!(later.states[&OrderState::Active], 1);
    assert_eq!(later.states[&OrderState::Lifted], 0);
    let lifted = text.replace(
        "    expires_at: null\n",
        "    expires_at: null\n    lifted_at: \"2026-12-01T00:00:00Z\"\n",
    );
    let s = summary(&policy(&lifted), odt("2026-12-01T00:00:00Z"));
    assert_eq!(s.orders[0].state, OrderState::Lifted);
}

#[test]
fn transparency_counts() {
    let p = contract();
    let r = transparency(
        p.policy(),
        odt("2026-11-01T00:00:00Z"),
        odt("2026-12-01T00:00:00Z"),
    );
    assert_eq!(
        report_csv(&r),
        "jurisdiction,authority_type,action,received,in_effect\n\
         DE,court,unavailable_451,1,1\n\
         US,court,unavailable_451,1,1\n"
    );
    let r = transparency(
        p.policy(),
        odt("2028-01-01T00:00:00Z"),
        odt("2028-02-01T00:00:00Z"),
    );
    assert_eq!(
        report_csv(&r),
        "jurisdiction,authority_type,action,received,in_effect\nUS,court,unavailable_451,0,1\n"
    );
    assert!(report_markdown(&r).contains("| US | court | unavailable_451 | 0 | 1 |"));
    let _ = CompiledPolicy::host_count(&p);
}
