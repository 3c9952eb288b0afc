//! Legal-order policy for Portcullis: the order file, its validation, the compiled suspension
//! table and every decision made from it (POLICY-SPEC.md, issue #5).
//!
//! This crate is pure: it takes `&str`/bytes and a `now` and returns values, with no async
//! runtime, no HTTP stack, no clock and no file I/O, so every rule in it can be tested
//! exhaustively and property-tested against a naive reference.
//!
//! # Using it from the proxy
//!
//! ```text
//! reload:   text ──Policy::parse(text, label)──▶ Policy ──CompiledPolicy::compile──▶ new
//!           running.check_replacement(&new)? ──▶ PolicyDiff (audit) ──▶ ArcSwap::store(new)
//! handshake: snapshot.decide_sni(sni, country, now) ── Some(order) ──▶ abort the handshake
//! request:  snapshot.decide(&RequestFacts { host, path, country, sni, now }) ──▶ Decision
//!             Verdict::Allow        → serve (count decision.dry_run() as would-blocks)
//!             Verdict::BadHost(_)   → 400
//!             Verdict::Misdirected  → 421
//!             Verdict::Block{order, action} → page::blocked_response(order, blocked_by, host,
//!                 request_id, if page::wants_json(accept) {ProblemJson} else {Html});
//!                 None (close / refuse_tls) → drop the connection
//! admin:    snapshot.explain(&facts), report::summary(policy, now), report::transparency(..)
//! ```
//!
//! - Load the snapshot once per request (`ArcSwap::load`) and ask it everything for that
//!   request, so a reload reaches the next request on any keep-alive or HTTP/2 connection.
//! - `Policy::parse` reports every error at once ([`PolicyErrors`], one line each:
//!   `file:line: orders[i] (id): key.path: message`). On any error keep the running table.
//! - [`CompiledPolicy::check_replacement`] refuses a lower serial ([`SerialError::Lower`]) and a
//!   changed file whose serial did not move ([`SerialError::Unchanged`]).
//! - Times: pass the wall clock (`SystemTime::now()`) as `now`; an order becomes active and ends
//!   exactly at its boundaries with no reload. [`Order::state`] gives pending / active /
//!   expired / lifted for metrics and the audit log ("order became effective on this node": the
//!   proxy compares states between two `now`s).
//! - [`path::normalize_path`] is the path to forward: policy matching is defined so that
//!   matching the raw target and matching this forwarded form agree (property-tested).
//!
//! # Bypass shapes: here, or the proxy's job
//!
//! Handled here: host case, trailing dot, port, userinfo, percent-escapes, non-ASCII (U-labels
//! are refused in requests; orders store A-labels so punycode requests match), empty labels,
//! look-alike suffixes (label-boundary lookup), `*.` wildcards (subdomains, not apex); path
//! escapes of unreserved characters, `%2e` dot-segments, `%2F`/`%5C`/`\` as separators,
//! double and triple encoding, duplicate slashes, `;parameters`, absolute-form targets, query
//! and fragment ignored; unknown countries per `on_unknown_country`; SNI fronting (the host's
//! order applies whatever the SNI) and coalescing (421 when the SNI is suspended).
//!
//! The proxy's job (this crate cannot see them): choosing the one authority (missing or
//! duplicate Host, Host vs `:authority` vs absolute-form disagreement → 400 before calling
//! [`CompiledPolicy::decide`]), the certificate-coverage half of the 421 rule, the client's
//! country (GeoIP on the peer; `CF-IPCountry`/X-Forwarded-For only from trusted proxies),
//! stripping `X-Forwarded-Host`, `Forwarded: host=`, `X-Original-URL`, `X-Rewrite-URL`,
//! smuggling shapes, running policy before the cache, never storing policy responses, cutting
//! open connections of a newly blocked host, the audit log file, metrics and reload triggers.
//!
//! Layout: [`authority`] (canonical host), `parse` (YAML → located tree), `validate` and
//! `scope` (tree → [`Policy`], all errors), `compile` (the table), `decide` and `explain`,
//! [`path`], [`page`] (451 / problem+json), [`mod@diff`] (audit diff, serial rule), [`report`]
//! (summary, transparency counts).

pub mod authority;
mod compile;
mod country;
mod decide;
pub mod diff;
mod error;
mod explain;
mod filter;
mod json;
mod model;
mod order;
pub mod page;
mod parse;
pub mod path;
pub mod pause;
pub mod report;
mod scope;
mod validate;

pub use authority::{HostError, canonical_host};
pub use compile::CompiledPolicy;
pub use decide::{Decision, RequestFacts, STACK_PATH, Verdict};
pub use diff::{PolicyDiff, SerialError, diff};
pub use error::{PolicyError, PolicyErrorKind, PolicyErrors};
pub use explain::{Considered, Explanation, Outcome};
pub use model::{
    Action, Authority, AuthorityType, BlockStatus, Country, Coverage, Disclosure, HostRule, Mode,
    Order, PathPrefix, Policy, Scope, UnknownCountry,
};
pub use report::OrderState;

impl Policy {
    /// Parses and validates a policy file. `file_label` is how errors name the file
    /// (`policy.yaml:14: orders[1] (ID): scope.countries[0]: …`). Every error is reported, not
    /// just the first; with any error nothing is returned, so a bad reload changes nothing.
    ///
    /// A file whose first significant character is `{` is read as JSON (a subset of YAML, so it
    /// means the same either way) by a fast parser: generated tables of millions of hosts load
    /// in well under a second that way, where YAML takes tens of seconds.
    pub fn parse(text: &str, file_label: &str) -> Result<Policy, PolicyErrors> {
        let error = |line: Option<u32>, kind| PolicyErrors {
            errors: vec![PolicyError {
                file: file_label.to_owned(),
                line,
                order: None,
                key: String::new(),
                kind,
            }],
        };
        let root = if json::looks_like_json(text) {
            json::parse_json(text)
                .map_err(|e| error(Some(e.line), PolicyErrorKind::Json { message: e.message }))?
        } else {
            parse::parse_tree(text).map_err(|e| {
                error(
                    e.location().and_then(|l| u32::try_from(l.line()).ok()),
                    PolicyErrorKind::Yaml(e),
                )
            })?
        };
        let mut checker = validate::Checker::new(file_label);
        match checker.policy(&root) {
            Some(policy) if checker.errors.is_empty() => Ok(policy),
            _ => Err(PolicyErrors {
                errors: checker.errors,
            }),
        }
    }
}
