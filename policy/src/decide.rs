//! Per-request decisions on one compiled snapshot.
//!
//! A request whose host has no entry costs one hash lookup per host label and allocates nothing.
//! A host that has entries is walked a second time to evaluate them; its path is put in match
//! form (on the stack for targets up to [`STACK_PATH`] bytes) only if a candidate order is
//! path-scoped.

use std::cmp::Reverse;
use std::time::SystemTime;

use crate::authority::{HOST_BUF, HostError, canonical_host_in};
use crate::compile::{CompiledPolicy, Rule, unix_nanos};
use crate::model::{Action, Order};
use crate::path::{match_form, under};

/// Targets up to this length are put in match form without allocating.
pub const STACK_PATH: usize = 2048;

/// What the proxy knows about a request when it asks.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The authority as received (`Host`, `:authority` or the absolute-form authority, after
    /// the proxy checked they agree); canonicalised here with [`crate::canonical_host`].
    pub host: &'a str,
    /// The raw request target (origin-form or absolute-form; query ignored).
    pub path: &'a str,
    /// ISO 3166-1 alpha-2 of the client (GeoIP on the peer, or the trusted proxy's header).
    pub country: Option<[u8; 2]>,
    /// The TLS SNI of the connection, if any.
    pub sni: Option<&'a str>,
    /// Wall-clock time of the request; the policy never reads a clock.
    pub now: SystemTime,
}

/// The outcome for one request: what to do, and every order that matched.
#[derive(Debug)]
pub struct Decision<'p> {
    pub verdict: Verdict<'p>,
    pub(crate) policy: &'p CompiledPolicy,
    pub(crate) matched: Matches,
}

/// What the proxy must do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict<'p> {
    /// Serve normally (dry-run orders may still have matched: log and count them).
    Allow,
    /// The host is malformed: 400 (the proxy normally refuses it before asking).
    BadHost(HostError),
    /// The host is allowed but the connection's SNI names a suspended host: 421, so the client
    /// reconnects with the right name (domain fronting, HTTP/2 coalescing).
    Misdirected,
    /// The winning order (most restrictive action, then first in the file) and its action.
    /// [`Action::RefuseTls`] in the request path means: drop the connection, like `Close`.
    Block { order: &'p Order, action: Action },
}

impl<'p> Decision<'p> {
    /// Every active order whose scope covers the request, enforced and dry-run, in file order.
    pub fn matched(&self) -> impl Iterator<Item = &'p Order> + '_ {
        self.matched
            .iter()
            .filter_map(|i| self.policy.policy.orders.get(i))
    }

    /// The matched orders that are in `dry_run` mode (count them as would-blocks).
    pub fn dry_run(&self) -> impl Iterator<Item = &'p Order> + '_ {
        self.matched().filter(|o| o.mode == crate::Mode::DryRun)
    }

    /// Whether the request is refused in any way.
    pub fn is_blocked(&self) -> bool {
        matches!(self.verdict, Verdict::Block { .. })
    }
}

/// Indices of matched orders: four inline, more spill to the heap (so a request matching a
/// dry-run order still allocates nothing in the usual case). Sorted once complete.
#[derive(Debug, Clone, Default)]
pub(crate) struct Matches {
    inline: [u32; 4],
    inline_len: usize,
    spill: Vec<u32>,
}

impl Matches {
    pub(crate) fn push(&mut self, i: u32) {
        if self.iter().any(|j| j == i as usize) {
            return;
        }
        match self.inline.get_mut(self.inline_len) {
            Some(slot) => {
                *slot = i;
                self.inline_len += 1;
            }
            None => self.spill.push(i),
        }
    }
    /// Puts the indices in file order.
    pub(crate) fn finish(&mut self) {
        let inline = self.inline.get_mut(..self.inline_len).unwrap_or(&mut []);
        if self.spill.is_empty() {
            inline.sort_unstable();
        } else {
            self.spill.extend_from_slice(inline);
            self.inline_len = 0;
            self.spill.sort_unstable();
        }
    }
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let inline = self.inline.get(..self.inline_len).unwrap_or(&[]);
        inline.iter().chain(&self.spill).map(|&i| i as usize)
    }
}

/// Buffers a request's path is canonicalised into.
pub(crate) struct PathBuf {
    stack: [u8; STACK_PATH],
    heap: Vec<u8>,
}

impl PathBuf {
    pub(crate) fn new() -> Self {
        PathBuf {
            stack: [0; STACK_PATH],
            heap: Vec::new(),
        }
    }
    /// The match form of `target`; `None` if unreadable (fail closed).
    pub(crate) fn form<'b>(&'b mut self, target: &str) -> Option<&'b [u8]> {
        if target.len() <= STACK_PATH {
            match_form(target.as_bytes(), &mut self.stack)
        } else {
            self.heap.resize(target.len(), 0);
            match_form(target.as_bytes(), &mut self.heap)
        }
    }
}

/// Whether an order's path scope covers a path in match form (`None`: unreadable → covered).
pub(crate) fn paths_cover(paths: &[Box<[u8]>], form: Option<&[u8]>) -> bool {
    paths.is_empty() || form.is_none_or(|p| paths.iter().any(|prefix| under(p, prefix)))
}

impl CompiledPolicy {
    /// Decides one request. Pure: same snapshot, same facts, same answer.
    pub fn decide<'p>(&'p self, req: &RequestFacts<'_>) -> Decision<'p> {
        let mut decision = Decision {
            verdict: Verdict::Allow,
            policy: self,
            matched: Matches::default(),
        };
        let mut host_buf = [0u8; HOST_BUF];
        let host = match canonical_host_in(req.host, &mut host_buf) {
            Ok(h) => h,
            Err(e) => {
                decision.verdict = Verdict::BadHost(e);
                return decision;
            }
        };
        if self.table.is_empty() {
            return decision;
        }
        let now = unix_nanos(req.now);
        // First pass: is anything filed under this host at all, and does it need the path?
        let mut any = false;
        let mut needs_path = false;
        for (rule, _) in self.walk(host) {
            if let Some(o) = self.orders.get(rule.order as usize) {
                any = true;
                needs_path |= !o.paths.is_empty();
            }
        }
        if any {
            let mut path_buf = PathBuf::new();
            let form = if needs_path {
                path_buf.form(req.path)
            } else {
                None
            };
            // Highest rank wins; among equals, the first order in the file.
            let mut best: Option<(u8, Reverse<u32>)> = None;
            for (rule, _) in self.walk(host) {
                if !self.rule_matches(rule, now, req.country, form) {
                    continue;
                }
                decision.matched.push(rule.order);
                let Some(o) = self.orders.get(rule.order as usize) else {
                    continue;
                };
                let candidate = (o.action.rank(), Reverse(rule.order));
                if o.enforce && best.is_none_or(|b| candidate > b) {
                    best = Some(candidate);
                }
            }
            decision.matched.finish();
            if let Some((_, Reverse(i))) = best {
                let i = i as usize;
                if let (Some(order), Some(c)) = (self.policy.orders.get(i), self.orders.get(i)) {
                    decision.verdict = Verdict::Block {
                        order,
                        action: c.action,
                    };
                    return decision;
                }
            }
        }
        if let Some(sni) = req.sni {
            if self.sni_suspended(sni, host, now, req.country) {
                decision.verdict = Verdict::Misdirected;
            }
        }
        decision
    }

    pub(crate) fn rule_matches(
        &self,
        rule: Rule,
        now: i128,
        country: Option<[u8; 2]>,
        form: Option<&[u8]>,
    ) -> bool {
        self.orders.get(rule.order as usize).is_some_and(|o| {
            o.active(now) && o.country_matches(country) && paths_cover(&o.paths, form)
        })
    }

    /// Whether a connection's SNI (different from the request's host) names a host that an
    /// active enforced whole-host order suspends for this client.
    fn sni_suspended(&self, sni: &str, host: &str, now: i128, country: Option<[u8; 2]>) -> bool {
        let mut buf = [0u8; HOST_BUF];
        let Ok(sni) = canonical_host_in(sni, &mut buf) else {
            return false;
        };
        sni != host
            && self.walk(sni).any(|(rule, _)| {
                self.orders.get(rule.order as usize).is_some_and(|o| {
                    o.enforce && o.paths.is_empty() && o.active(now) && o.country_matches(country)
                })
            })
    }

    /// For the TLS handshake: the `refuse_tls` order (active, enforced, covering this client's
    /// country) that suspends the SNI name, if any. The proxy aborts the handshake when it gets
    /// one. Without SNI there is nothing to decide here; the request path still decides by host.
    pub fn decide_sni<'p>(
        &'p self,
        sni: &str,
        country: Option<[u8; 2]>,
        now: SystemTime,
    ) -> Option<&'p Order> {
        if self.table.is_empty() {
            return None;
        }
        let mut buf = [0u8; HOST_BUF];
        let sni = canonical_host_in(sni, &mut buf).ok()?;
        let now = unix_nanos(now);
        self.walk(sni)
            .filter(|(rule, _)| {
                self.orders.get(rule.order as usize).is_some_and(|o| {
                    o.enforce
                        && o.action == Action::RefuseTls
                        && o.active(now)
                        && o.country_matches(country)
                })
            })
            .map(|(rule, _)| rule.order)
            .min()
            .and_then(|i| self.policy.orders.get(i as usize))
    }
}
