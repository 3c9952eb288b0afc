//! The per-client state table: bounded, sharded, evicting with CLOCK (second chance).
//!
//! 64 shards of `Mutex<Shard>`; a key's shard comes from a keyed hash (SipHash with a random
//! key, like the shard maps themselves), so spoofed keys cannot be aimed at one shard or one
//! hash chain. Each shard holds at most `max_tracked_clients / 64` entries (at least one), so
//! the table never holds more than `max_tracked_clients` (a bound under 64 acts as 64).
//!
//! Eviction: a shard keeps its keys in insertion order (the clock's ring). When it is full, the
//! hand looks at the oldest key: an entry used again since it was inserted or last looked at
//! (`referenced`), or holding live connections, gets a second chance (moved to the back, bit
//! cleared); the first other entry is evicted. A flood of one-shot keys therefore evicts other
//! one-shot keys, not clients that keep coming back. The hand looks at most [`MAX_SCAN`] entries
//! and then evicts the oldest whatever it holds, so an insert is O(1) even when every entry is
//! busy.
//!
//! An entry evicted while connections hold it is safe: a connection remembers the entry's
//! generation and only gives its slot back to that same generation, so a count never underflows
//! or leaks into a newer entry of the same client (the new entry simply starts at zero).
//!
//! Memory: see [`Table::bytes_per_entry`] and the unit test that measures it.

use std::collections::VecDeque;
use std::collections::hash_map::{Entry as MapEntry, HashMap, RandomState};
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::ClientKey;
use super::bucket::Bucket;

/// Shards: enough that two cores rarely meet on one lock.
pub const SHARDS: usize = 64;
/// Entries the clock hand looks at before evicting the oldest regardless.
const MAX_SCAN: usize = 8;

/// What the table is keyed by: the client, and which bucket of it (0 = the default rate and the
/// connection count; `n > 0` = the `per_site` override of the site with slot `n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub client: ClientKey,
    pub slot: u16,
}

#[derive(Debug)]
struct Entry {
    bucket: Bucket,
    conns: u32,
    generation: u32,
    referenced: bool,
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<Key, Entry, RandomState>,
    ring: VecDeque<Key>,
    next_generation: u32,
}

/// The bounded per-client table.
#[derive(Debug)]
pub struct Table {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    per_shard: AtomicUsize,
    len: AtomicUsize,
    /// `portcullis_protection_tracked_clients`.
    gauge: prometheus::IntGauge,
}

/// Refused: the client holds its maximum of connections already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtCap;

impl Table {
    pub fn new(max_entries: usize, gauge: prometheus::IntGauge) -> Table {
        Table {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            per_shard: AtomicUsize::new(per_shard(max_entries)),
            len: AtomicUsize::new(0),
            gauge,
        }
    }

    /// A new bound (a reload); a smaller one is reached as entries are next inserted.
    pub fn set_max(&self, max_entries: usize) {
        self.per_shard
            .store(per_shard(max_entries), Ordering::Relaxed);
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &Key) -> std::sync::MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        // A poisoned shard only means a panic elsewhere mid-update of plain numbers: go on.
        self.shards[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a token from `key`'s bucket (a new client starts with a full one).
    pub fn take(&self, key: Key, now_ms: u32, rate: f32, burst: f32) -> Result<(), u32> {
        let mut shard = self.shard(&key);
        let cap = self.per_shard.load(Ordering::Relaxed);
        let entry = self.entry(&mut shard, key, cap, || Bucket::full(burst, now_ms));
        entry.bucket.take(now_ms, rate, burst)
    }

    /// Counts a new connection of `key` unless it holds `max` already; returns the entry's
    /// generation for [`Table::close`].
    pub fn open(&self, key: Key, max: u32, now_ms: u32, burst: f32) -> Result<u32, AtCap> {
        let mut shard = self.shard(&key);
        let cap = self.per_shard.load(Ordering::Relaxed);
        let entry = self.entry(&mut shard, key, cap, || Bucket::full(burst, now_ms));
        if entry.conns >= max {
            return Err(AtCap);
        }
        entry.conns += 1;
        Ok(entry.generation)
    }

    /// A connection counted by [`Table::open`] ended.
    pub fn close(&self, key: Key, generation: u32) {
        let mut shard = self.shard(&key);
        if let Some(e) = shard.map.get_mut(&key) {
            if e.generation == generation {
                e.conns = e.conns.saturating_sub(1);
            }
        }
    }

    /// Live connections counted for `key` (tests).
    pub fn connections(&self, key: Key) -> u32 {
        self.shard(&key).map.get(&key).map_or(0, |e| e.conns)
    }

    fn entry<'s>(
        &self,
        shard: &'s mut Shard,
        key: Key,
        cap: usize,
        bucket: impl FnOnce() -> Bucket,
    ) -> &'s mut Entry {
        if !shard.map.contains_key(&key) {
            while shard.map.len() >= cap && self.evict_one(shard) {}
        }
        let generation = shard.next_generation;
        match shard.map.entry(key) {
            MapEntry::Occupied(o) => {
                let e = o.into_mut();
                e.referenced = true;
                e
            }
            MapEntry::Vacant(v) => {
                shard.next_generation = generation.wrapping_add(1);
                shard.ring.push_back(key);
                self.len.fetch_add(1, Ordering::Relaxed);
                self.gauge.inc();
                v.insert(Entry {
                    bucket: bucket(),
                    conns: 0,
                    generation,
                    referenced: false,
                })
            }
        }
    }

    /// Moves the clock hand until one entry is evicted; `false` if the shard is empty.
    fn evict_one(&self, shard: &mut Shard) -> bool {
        for _ in 0..MAX_SCAN {
            let Some(key) = shard.ring.pop_front() else {
                return false;
            };
            match shard.map.get_mut(&key) {
                Some(e) if e.referenced || e.conns > 0 => {
                    e.referenced = false;
                    shard.ring.push_back(key);
                }
                Some(_) => {
                    shard.map.remove(&key);
                    self.removed();
                    return true;
                }
                // Not in the map: cannot happen (keys leave the ring and the map together).
                None => {}
            }
        }
        match shard.ring.pop_front() {
            Some(key) => {
                if shard.map.remove(&key).is_some() {
                    self.removed();
                }
                true
            }
            None => false,
        }
    }

    fn removed(&self) {
        self.len.fetch_sub(1, Ordering::Relaxed);
        self.gauge.dec();
    }

    /// Heap bytes held per entry right now: the shard maps' buckets (entry + one control byte)
    /// and the rings' slots, divided by the entries (`None` when empty). Capacity, not just
    /// length, so growth slack is counted.
    pub fn bytes_per_entry(&self) -> Option<f64> {
        let mut bytes = 0usize;
        let mut n = 0usize;
        for s in self.shards.iter() {
            let s = s.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            // hashbrown allocates capacity / (7/8) buckets, a power of two.
            let buckets = (s.map.capacity() * 8 / 7).next_power_of_two();
            bytes += buckets * (std::mem::size_of::<(Key, Entry)>() + 1);
            bytes += s.ring.capacity() * std::mem::size_of::<Key>();
            n += s.map.len();
        }
        (n > 0).then(|| bytes as f64 / n as f64)
    }
}

fn per_shard(max_entries: usize) -> usize {
    (max_entries / SHARDS).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> Key {
        Key {
            client: ClientKey::V4(n.to_be_bytes()),
            slot: 0,
        }
    }

    fn table(max: usize) -> Table {
        Table::new(max, prometheus::IntGauge::new("t", "t").unwrap())
    }

    #[test]
    fn the_bound_holds_under_a_flood_of_distinct_keys() {
        let t = table(1000);
        for n in 0..100_000 {
            t.take(key(n), 0, 1.0, 5.0).unwrap();
            assert!(t.len() <= 1000);
        }
        assert!(
            t.len() >= 900,
            "the table fills up to its bound: {}",
            t.len()
        );
        assert_eq!(t.gauge.get() as usize, t.len());
        // The earliest keys are gone: a fresh, full bucket again.
        for _ in 0..5 {
            t.take(key(0), 0, 1.0, 5.0).unwrap();
        }
    }

    #[test]
    fn a_returning_client_survives_a_flood_of_one_shot_keys() {
        let t = table(64 * 4);
        let regular = key(u32::MAX);
        t.take(regular, 0, 1.0, 3.0).unwrap();
        for n in 0..10_000 {
            // The regular client comes back now and then: its bit is set again.
            if n % 2 == 0 {
                let _ = t.take(regular, 0, 0.001, 3.0);
            }
            t.take(key(n), 0, 1.0, 3.0).unwrap();
        }
        // Still tracked: its bucket is empty, not a fresh full one.
        assert!(t.take(regular, 0, 0.001, 3.0).is_err());
    }

    #[test]
    fn connection_counts_survive_eviction_without_underflow() {
        let t = table(64);
        let a = key(7);
        let g1 = t.open(a, 2, 0, 1.0).unwrap();
        let g2 = t.open(a, 2, 0, 1.0).unwrap();
        assert_eq!(t.open(a, 2, 0, 1.0), Err(AtCap));
        // Evict everything, `a` included (its connections only buy it second chances).
        for n in 0..10_000 {
            t.take(key(1_000_000 + n), 0, 1.0, 1.0).unwrap();
        }
        let g3 = t.open(a, 2, 0, 1.0).unwrap();
        assert_ne!(g3, g1);
        // Slots of the evicted generation do not touch the new entry.
        t.close(a, g1);
        t.close(a, g2);
        assert_eq!(t.connections(a), 1);
        t.close(a, g3);
        t.close(a, g3);
        assert_eq!(t.connections(a), 0);
    }

    #[test]
    fn bytes_per_client_are_small() {
        let t = table(100_000);
        for n in 0..100_000 {
            t.take(key(n), 0, 1.0, 1.0).unwrap();
        }
        let per = t.bytes_per_entry().unwrap();
        println!(
            "entry {} B, key {} B, measured {per:.1} B per client",
            std::mem::size_of::<(Key, Entry)>(),
            std::mem::size_of::<Key>()
        );
        // docs/config.md states ~50-100 bytes per client; keep that true.
        assert!(per < 100.0, "{per}");
    }
}
