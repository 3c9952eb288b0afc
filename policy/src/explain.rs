//! `GET /admin/policy/explain`: the decision for a set of request facts and, for every order the
//! table lookup considered (by host, and by SNI), why it matched or not. Not the hot path: this
//! allocates freely.

use crate::authority::canonical_host;
use crate::compile::{CompiledPolicy, unix_nanos};
use crate::decide::{Decision, PathBuf, RequestFacts, paths_cover};
use crate::model::Order;

/// Why a considered order did or did not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Matched,
    /// Not yet effective, expired or lifted at `now`.
    NotActive,
    CountryNotInScope,
    /// The client's country is unknown and the order says `on_unknown_country: allow`.
    UnknownCountryAllowed,
    PathNotInScope,
}

/// One order the lookup found under the request's host (or SNI).
#[derive(Debug, Clone)]
pub struct Considered<'p> {
    pub order: &'p Order,
    /// The host entry that led to it, as `name`, `name (+subdomains)` or `*.name`.
    pub via: String,
    /// Found through the SNI rather than the host.
    pub by_sni: bool,
    pub outcome: Outcome,
}

/// The whole answer.
#[derive(Debug)]
pub struct Explanation<'p> {
    /// The canonical host, or why the host was refused.
    pub host: Result<String, crate::HostError>,
    /// The path as matched (lossy UTF-8), `None` if unreadable (path scopes then match).
    pub path: Option<String>,
    pub decision: Decision<'p>,
    pub considered: Vec<Considered<'p>>,
}

impl CompiledPolicy {
    /// The decision for `req` and the reasons behind it.
    pub fn explain<'p>(&'p self, req: &RequestFacts<'_>) -> Explanation<'p> {
        let decision = self.decide(req);
        let host = canonical_host(req.host).map(|h| h.into_owned());
        let mut buf = PathBuf::new();
        let form = buf.form(req.path);
        let now = unix_nanos(req.now);
        let mut considered = Vec::new();
        let sni = req
            .sni
            .and_then(|s| canonical_host(s).ok())
            .map(|s| s.into_owned());
        let names = host.as_deref().ok().map(|h| (h, false)).into_iter();
        for (name, by_sni) in names.chain(sni.as_deref().map(|s| (s, true))) {
            for (rule, whole) in self.walk(name) {
                let i = rule.order as usize;
                let (Some(order), Some(c)) = (self.policy.orders.get(i), self.orders.get(i)) else {
                    continue;
                };
                let suffix_name = if whole {
                    name
                } else {
                    order
                        .scope
                        .hosts
                        .iter()
                        .map(|h| h.name.as_str())
                        .find(|n| name.ends_with(&format!(".{n}")))
                        .unwrap_or(name)
                };
                let via = rule.coverage.show(suffix_name);
                let outcome = if !c.active(now) {
                    Outcome::NotActive
                } else if !c.country_matches(req.country) {
                    if req.country.is_none() {
                        Outcome::UnknownCountryAllowed
                    } else {
                        Outcome::CountryNotInScope
                    }
                } else if !by_sni && !paths_cover(&c.paths, form) {
                    Outcome::PathNotInScope
                } else {
                    Outcome::Matched
                };
                considered.push(Considered {
                    order,
                    via,
                    by_sni,
                    outcome,
                });
            }
        }
        let path = form.map(|p| String::from_utf8_lossy(p).into_owned());
        Explanation {
            host,
            path,
            decision,
            considered,
        }
    }
}
