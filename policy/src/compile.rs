//! The compiled suspension table: what the proxy holds in its `ArcSwap` and asks per request.
//!
//! Every host name of every order goes into one hash map, keyed by the A-label name. A request's
//! canonical host is looked up once per label suffix (`a.b.example`, `b.example`, `example`), so
//! the work per request depends on the number of labels in the host, never on the number of
//! orders or hosts in the table. Order times are kept as Unix nanoseconds so that the activity
//! check is two integer comparisons against the `now` the caller passes in.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

use crate::filter::{FastHash, Prefilter, labels};
use crate::model::{Action, Coverage, Mode, Policy, UnknownCountry};

/// A validated policy compiled for lookups. Immutable; a reload builds a new one and the proxy
/// swaps it in whole.
#[derive(Debug)]
pub struct CompiledPolicy {
    pub(crate) policy: Policy,
    /// Parallel to `policy.orders`.
    pub(crate) orders: Vec<CompiledOrder>,
    pub(crate) table: HashMap<Box<str>, Entry, FastHash>,
    pub(crate) prefilter: Prefilter,
}

/// What a lookup needs of an order, without chasing pointers into the validated record.
#[derive(Debug)]
pub(crate) struct CompiledOrder {
    /// `effective_from`, Unix ns (inclusive).
    pub(crate) from: i128,
    /// `min(expires_at, lifted_at)`, Unix ns (exclusive); `i128::MAX` when neither is set.
    pub(crate) until: i128,
    pub(crate) enforce: bool,
    pub(crate) action: Action,
    pub(crate) countries: Box<[[u8; 2]]>,
    pub(crate) unknown_country_blocks: bool,
    /// Match forms; empty means the whole host.
    pub(crate) paths: Box<[Box<[u8]>]>,
}

/// The rules filed under one host name. Almost every name has exactly one, so that case holds
/// no second allocation.
#[derive(Debug)]
pub(crate) enum Entry {
    One(Rule),
    Many(Vec<Rule>),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    pub(crate) order: u32,
    pub(crate) coverage: Coverage,
}

impl Entry {
    pub(crate) fn rules(&self) -> &[Rule] {
        match self {
            Entry::One(r) => std::slice::from_ref(r),
            Entry::Many(v) => v,
        }
    }
}

impl Rule {
    /// Whether this rule covers a request host, given whether the name it is filed under is the
    /// whole host (`true`) or a proper suffix of it.
    pub(crate) fn covers(self, whole: bool) -> bool {
        match self.coverage {
            Coverage::Exact => whole,
            Coverage::WithSubdomains => true,
            Coverage::SubdomainsOnly => !whole,
        }
    }
}

impl CompiledOrder {
    pub(crate) fn active(&self, now: i128) -> bool {
        self.from <= now && now < self.until
    }

    pub(crate) fn country_matches(&self, country: Option<[u8; 2]>) -> bool {
        if self.countries.is_empty() {
            return true;
        }
        match country {
            Some(c) => self.countries.contains(&c.map(|b| b.to_ascii_uppercase())),
            None => self.unknown_country_blocks,
        }
    }
}

/// Unix nanoseconds of a wall-clock time (negative before 1970).
pub(crate) fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => i128::try_from(e.duration().as_nanos()).map_or(i128::MIN, |n| -n),
    }
}

fn nanos(t: OffsetDateTime) -> i128 {
    t.unix_timestamp_nanos()
}

impl CompiledPolicy {
    /// Builds the lookup table. Linear in the number of host names; no validation happens here
    /// (a [`Policy`] from [`Policy::parse`] is already valid; one built by hand is trusted).
    pub fn compile(policy: Policy) -> CompiledPolicy {
        let hosts: usize = policy.orders.iter().map(|o| o.scope.hosts.len()).sum();
        let mut table: HashMap<Box<str>, Entry, FastHash> =
            HashMap::with_capacity_and_hasher(hosts, FastHash);
        let mut prefilter = Prefilter::with_capacity(hosts);
        let mut orders = Vec::with_capacity(policy.orders.len());
        for (i, order) in policy.orders.iter().enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            for host in &order.scope.hosts {
                let rule = Rule {
                    order: index,
                    coverage: host.coverage,
                };
                // Names are nearly always new: one hash and one allocation each.
                match table.entry(host.name.as_str().into()) {
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        prefilter.insert(&host.name);
                        slot.insert(Entry::One(rule));
                    }
                    std::collections::hash_map::Entry::Occupied(mut slot) => {
                        let entry = slot.get_mut();
                        match entry {
                            Entry::One(first) => *entry = Entry::Many(vec![*first, rule]),
                            Entry::Many(v) => v.push(rule),
                        }
                    }
                }
            }
            let end = [order.expires_at, order.lifted_at]
                .into_iter()
                .flatten()
                .map(nanos)
                .min()
                .unwrap_or(i128::MAX);
            orders.push(CompiledOrder {
                from: nanos(order.effective_from),
                until: end,
                enforce: order.mode == Mode::Enforce,
                action: order.action,
                countries: order.scope.countries.iter().map(|c| c.code()).collect(),
                unknown_country_blocks: order.scope.on_unknown_country
                    == Some(UnknownCountry::Block),
                paths: order
                    .scope
                    .paths
                    .iter()
                    .map(|p| p.matched.clone())
                    .collect(),
            });
        }
        CompiledPolicy {
            policy,
            orders,
            table,
            prefilter,
        }
    }

    /// The validated policy this table was built from.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// `serial` of the file.
    pub fn serial(&self) -> u64 {
        self.policy.serial
    }

    /// Distinct host names in the table.
    pub fn host_count(&self) -> usize {
        self.table.len()
    }

    /// The rules for each label suffix of a canonical host, with whether that suffix is the
    /// whole host: at most one hash lookup per label, and none for a suffix the prefilter rules
    /// out.
    pub(crate) fn walk<'a>(&'a self, host: &'a str) -> impl Iterator<Item = (Rule, bool)> + 'a {
        let total = labels(host);
        let starts = std::iter::once(0).chain(
            host.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'.')
                .map(|(i, _)| i + 1),
        );
        starts
            .enumerate()
            .filter_map(move |(skipped, start)| {
                let suffix = host.get(start..)?;
                if !self
                    .prefilter
                    .may_contain(suffix, total.saturating_sub(skipped))
                {
                    return None;
                }
                let entry = self.table.get(suffix)?;
                Some(entry.rules().iter().map(move |r| (*r, start == 0)))
            })
            .flatten()
            .filter(|&(rule, whole)| rule.covers(whole))
    }
}
