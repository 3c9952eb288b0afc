//! Summaries for `portcullis policy check`, `GET /admin/policy`, the `orders{state}` metric and
//! the transparency report. Pure functions over a policy and a `now` the caller passes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use time::OffsetDateTime;

use crate::model::{Mode, Order, Policy};

/// Where an order stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OrderState {
    /// Before `effective_from`.
    Pending,
    Active,
    /// At or after `expires_at`.
    Expired,
    /// At or after `lifted_at` (and not yet expired when it was lifted).
    Lifted,
}

impl OrderState {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Pending => "pending",
            OrderState::Active => "active",
            OrderState::Expired => "expired",
            OrderState::Lifted => "lifted",
        }
    }
}

impl Order {
    /// The order's state at `now` (same boundaries as the request path: `effective_from`
    /// inclusive, `expires_at` and `lifted_at` exclusive).
    pub fn state(&self, now: OffsetDateTime) -> OrderState {
        let lifted = self.lifted_at.is_some_and(|t| now >= t);
        let expired = self.expires_at.is_some_and(|t| now >= t);
        match (lifted, expired) {
            (true, true) if self.lifted_at < self.expires_at => OrderState::Lifted,
            (_, true) => OrderState::Expired,
            (true, false) => OrderState::Lifted,
            _ if now < self.effective_from => OrderState::Pending,
            _ => OrderState::Active,
        }
    }
}

/// One order in a summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSummary {
    pub id: String,
    pub state: OrderState,
    pub mode: Mode,
    pub action: &'static str,
    /// `(A-label, U-label when different)`, with `*.` for subdomain-only rules and a trailing
    /// ` (+subdomains)` marker for `include_subdomains`.
    pub hosts: Vec<(String, Option<String>)>,
}

/// What `check` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub serial: u64,
    pub orders: Vec<OrderSummary>,
    /// Host entries over all orders.
    pub hosts: usize,
    /// Orders per state (every state present, zero included, for the metric).
    pub states: BTreeMap<OrderState, usize>,
}

pub fn summary(policy: &Policy, now: OffsetDateTime) -> Summary {
    let mut states: BTreeMap<OrderState, usize> = [
        OrderState::Pending,
        OrderState::Active,
        OrderState::Expired,
        OrderState::Lifted,
    ]
    .into_iter()
    .map(|s| (s, 0))
    .collect();
    let orders: Vec<OrderSummary> = policy
        .orders
        .iter()
        .map(|o| {
            let state = o.state(now);
            *states.entry(state).or_default() += 1;
            let hosts = o
                .scope
                .hosts
                .iter()
                .map(|h| {
                    let shape = |n: &str| h.coverage.show(n);
                    (shape(&h.name), h.unicode.as_deref().map(shape))
                })
                .collect();
            OrderSummary {
                id: o.id.clone(),
                state,
                mode: o.mode,
                action: o.action.as_str(),
                hosts,
            }
        })
        .collect();
    let hosts = policy.orders.iter().map(|o| o.scope.hosts.len()).sum();
    Summary {
        serial: policy.serial,
        orders,
        hosts,
        states,
    }
}

/// Counts for one (jurisdiction, authority type, action) row of a transparency report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportCounts {
    /// Orders issued in the period.
    pub received: u64,
    /// Enforced orders in effect at some point of the period (the DSA's "effect given").
    pub in_effect: u64,
}

/// `(jurisdiction, authority type, action)` → counts, for the period `[since, until)`.
pub type TransparencyReport = BTreeMap<(String, &'static str, &'static str), ReportCounts>;

/// Aggregates a policy for a transparency report over `[since, until)`.
pub fn transparency(
    policy: &Policy,
    since: OffsetDateTime,
    until: OffsetDateTime,
) -> TransparencyReport {
    let mut report = TransparencyReport::new();
    for o in &policy.orders {
        let received = since <= o.issued_at && o.issued_at < until;
        let end = [o.expires_at, o.lifted_at].into_iter().flatten().min();
        let in_effect = o.mode == Mode::Enforce
            && o.effective_from < until
            && end.is_none_or(|e| e > since)
            && end.is_none_or(|e| e > o.effective_from);
        if !(received || in_effect) {
            continue;
        }
        let key = (
            o.authority.jurisdiction.as_str().to_owned(),
            o.authority.kind.as_str(),
            o.action.as_str(),
        );
        let row = report.entry(key).or_default();
        row.received += u64::from(received);
        row.in_effect += u64::from(in_effect);
    }
    report
}

/// CSV with a header line (fields are codes and fixed words: nothing to quote).
pub fn report_csv(report: &TransparencyReport) -> String {
    let mut out = String::from("jurisdiction,authority_type,action,received,in_effect\n");
    for ((j, t, a), c) in report {
        let _ = writeln!(out, "{j},{t},{a},{},{}", c.received, c.in_effect);
    }
    out
}

/// A Markdown table.
pub fn report_markdown(report: &TransparencyReport) -> String {
    let mut out = String::from(
        "| Jurisdiction | Authority type | Action | Received | In effect |\n|---|---|---|---:|---:|\n",
    );
    for ((j, t, a), c) in report {
        let _ = writeln!(
            out,
            "| {j} | {t} | {a} | {} | {} |",
            c.received, c.in_effect
        );
    }
    out
}
