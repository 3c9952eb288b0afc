//! The compiled suspension table: what the proxy holds in its `ArcSwap` and asks per request.
//!
//! Every host name of every order goes into one hash table, keyed by the A-label name. A
//! request's canonical host is looked up once per label suffix (`a.b.example`, `b.example`,
//! `example`), so the work per request depends on the number of labels in the host, never on the
//! number of orders or hosts in the table. Order times are kept as Unix nanoseconds so that the
//! activity check is two integer comparisons against the `now` the caller passes in.
//!
//! The table does not copy the names: a slot is 16 bytes, the place of its name in the policy
//! (order and host index) and its first rule. A 1,000,000-name table is then one 32 MiB
//! allocation instead of a million small ones plus 96 MiB of slots, which is most of what a
//! reload spends building it and freeing the old one (a reload must apply in under a second on
//! a core that is also serving).

use std::time::{SystemTime, UNIX_EPOCH};

use hashbrown::HashTable;
use time::OffsetDateTime;

use crate::filter::{Prefilter, hash, labels};
use crate::model::{Action, Coverage, Mode, Policy, UnknownCountry};

/// A validated policy compiled for lookups. Immutable; a reload builds a new one and the proxy
/// swaps it in whole.
#[derive(Debug)]
pub struct CompiledPolicy {
    pub(crate) policy: Policy,
    /// Parallel to `policy.orders`.
    pub(crate) orders: Vec<CompiledOrder>,
    pub(crate) table: HashTable<Slot>,
    /// Rules beyond the first of a name filed by several orders (rare), by [`Slot::more`].
    pub(crate) more: Vec<Vec<Rule>>,
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

/// One host name of the table: where the name is (`policy.orders[order].scope.hosts[host]`) and
/// the rules filed under it. Almost every name has exactly one rule, that of the order it is
/// found in; the others (same name in several orders) are in `CompiledPolicy::more`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    order: u32,
    host: u32,
    coverage: Coverage,
    /// Index into `CompiledPolicy::more`, or [`NO_MORE`].
    more: u32,
}

const NO_MORE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Rule {
    pub(crate) order: u32,
    pub(crate) coverage: Coverage,
}

impl Slot {
    fn first(self) -> Rule {
        Rule {
            order: self.order,
            coverage: self.coverage,
        }
    }
}

/// The name a slot stands for (empty if the indices are off, which `compile` never makes).
fn name_of(policy: &Policy, slot: Slot) -> &str {
    policy
        .orders
        .get(slot.order as usize)
        .and_then(|o| o.scope.hosts.get(slot.host as usize))
        .map_or("", |h| h.name.as_str())
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

/// A name waiting to be inserted: its hash and where it is.
#[derive(Debug, Clone, Copy)]
struct Pending {
    hash: u64,
    order: u32,
    host: u32,
    coverage: Coverage,
}

/// Sorts pending names by the low `bits` bits of the hash, stably (LSD radix, 11 bits a
/// pass): the order a hash table indexed by those bits is filled in with the fewest cache misses.
fn radix_sort_by_low_bits(v: &mut Vec<Pending>, bits: u32) {
    const DIGIT: u32 = 11;
    let mut tmp = v.clone();
    let mut shift = 0;
    while shift < bits {
        let width = DIGIT.min(bits - shift);
        let mask = (1u64 << width) - 1;
        let digit = |h: u64| ((h >> shift) & mask) as usize;
        let mut starts = vec![0usize; 1 << width];
        for e in v.iter() {
            crate::pause::point();
            starts[digit(e.hash)] += 1;
        }
        let mut sum = 0;
        for c in &mut starts {
            (*c, sum) = (sum, sum + *c);
        }
        for e in v.iter() {
            crate::pause::point();
            let d = digit(e.hash);
            tmp[starts[d]] = *e;
            starts[d] += 1;
        }
        std::mem::swap(v, &mut tmp);
        shift += width;
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
        let mut table: HashTable<Slot> = HashTable::with_capacity(hosts);
        let mut more: Vec<Vec<Rule>> = Vec::new();
        let mut prefilter = Prefilter::with_capacity(hosts);
        let mut orders = Vec::with_capacity(policy.orders.len());
        let rehash = |slot: &Slot| hash(name_of(&policy, *slot).as_bytes());
        // Hash every name in one sequential pass, then insert them in the order of their
        // buckets: inserting in file order touches the 32 MiB table and the Bloom words at
        // random, a cache miss or two per name, which was most of the compile time.
        let mut names: Vec<Pending> = Vec::with_capacity(hosts);
        for (i, order) in policy.orders.iter().enumerate() {
            let order_index = u32::try_from(i).unwrap_or(u32::MAX);
            for (j, host) in order.scope.hosts.iter().enumerate() {
                crate::pause::point();
                let name = host.name.as_str();
                prefilter.add_labels(name);
                names.push(Pending {
                    hash: hash(name.as_bytes()),
                    order: order_index,
                    host: u32::try_from(j).unwrap_or(u32::MAX),
                    coverage: host.coverage,
                });
            }
        }
        let buckets = (table.capacity().saturating_mul(8) / 7 + 1).next_power_of_two();
        radix_sort_by_low_bits(&mut names, buckets.trailing_zeros());
        for n in names {
            crate::pause::point();
            // The name itself is read only to compare with a slot of the same tag (rare):
            // reading it for every insert would be the random access the sort avoids.
            let new = Slot {
                order: n.order,
                host: n.host,
                coverage: n.coverage,
                more: NO_MORE,
            };
            let same = |s: &Slot| name_of(&policy, *s) == name_of(&policy, new);
            match table.entry(n.hash, same, rehash) {
                hashbrown::hash_table::Entry::Vacant(slot) => {
                    prefilter.insert_hash(n.hash);
                    slot.insert(new);
                }
                hashbrown::hash_table::Entry::Occupied(mut slot) => {
                    let rule = new.first();
                    let slot = slot.get_mut();
                    match more.get_mut(slot.more as usize) {
                        Some(rules) => rules.push(rule),
                        None => {
                            slot.more = u32::try_from(more.len()).unwrap_or(NO_MORE);
                            more.push(vec![rule]);
                        }
                    }
                }
            }
        }
        for order in &policy.orders {
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
            more,
            prefilter,
        }
    }

    /// Frees the table with a [`crate::pause::point`] per host name: dropping a million names
    /// in one go would hold the CPU for tens of milliseconds without a pause.
    pub fn free_gradually(self) {
        let CompiledPolicy {
            mut policy,
            orders,
            table,
            more,
            prefilter,
        } = self;
        drop((orders, table, more, prefilter));
        while let Some(mut order) = policy.orders.pop() {
            while let Some(host) = order.scope.hosts.pop() {
                drop(host);
                crate::pause::point();
            }
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
                if !self.prefilter.has_labels(total.saturating_sub(skipped)) {
                    return None;
                }
                let h = hash(suffix.as_bytes());
                if !self.prefilter.may_contain_hashed(h) {
                    return None;
                }
                let slot = self
                    .table
                    .find(h, |s| name_of(&self.policy, *s) == suffix)?;
                let more = self
                    .more
                    .get(slot.more as usize)
                    .map_or(&[][..], Vec::as_slice);
                Some(
                    std::iter::once(slot.first())
                        .chain(more.iter().copied())
                        .map(move |r| (r, start == 0)),
                )
            })
            .flatten()
            .filter(|&(rule, whole)| rule.covers(whole))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn radix_sort_orders_by_the_low_bits_and_keeps_ties_in_order() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut v: Vec<Pending> = (0..5000u32)
            .map(|i| {
                state = fmix_for_test(state.wrapping_add(u64::from(i)));
                Pending {
                    // Few distinct low bits, so ties are many.
                    hash: state & 0xffff_0000_0000_03ff,
                    order: i,
                    host: 0,
                    coverage: Coverage::Exact,
                }
            })
            .collect();
        for bits in [1, 10, 11, 12, 23] {
            radix_sort_by_low_bits(&mut v, bits);
            let key = |p: &Pending| p.hash & ((1u64 << bits) - 1);
            for w in v.windows(2) {
                assert!(key(&w[0]) <= key(&w[1]), "{bits} bits: not sorted");
            }
            v.sort_by_key(|p| p.order);
        }
        radix_sort_by_low_bits(&mut v, 10);
        for w in v.windows(2) {
            if w[0].hash & 0x3ff == w[1].hash & 0x3ff {
                assert!(w[0].order < w[1].order, "ties keep their order");
            }
        }
    }

    fn fmix_for_test(mut h: u64) -> u64 {
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^ (h >> 33)
    }
}
