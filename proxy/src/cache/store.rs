//! Where stored responses live: 64 shards, each a hash map from the primary key's hash to the
//! responses stored under it (Vary variants, and the rare other key with the same hash), and a
//! CLOCK ring for eviction. Bounded by bytes, not entries.
//!
//! A hit takes one shard's read lock for a hash lookup and an `Arc` clone, then marks the object
//! referenced with a relaxed atomic: no global lock, no allocation, no body copy. Inserts and
//! evictions take one shard's write lock; the byte total is one atomic.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode};

use super::rfc::{ResponseDirectives, Timing};
use crate::metrics::CacheMetrics;

const SHARDS: usize = 64;

/// What every stored object costs besides its body and header bytes (the object, its map and
/// ring entries), so that a flood of tiny objects is bounded too.
const OVERHEAD: u64 = 256;

/// A stored response. Immutable once stored; a validation that updates it stores a new one.
#[derive(Debug)]
pub struct Object {
    /// Canonical host.
    pub host: Box<str>,
    /// Normalised path and query.
    pub target: Box<str>,
    pub status: StatusCode,
    /// As stored (hop-by-hop and stripped fields removed).
    pub headers: HeaderMap,
    pub body: Bytes,
    pub timing: Timing,
    /// Freshness lifetime, computed when stored.
    pub lifetime: Duration,
    pub dirs: ResponseDirectives,
    /// The request headers the response varies on, and their normalised values in the request
    /// that got it (RFC 9111 §4.1).
    pub vary: Vec<HeaderName>,
    pub secondary: Vec<Option<Box<[u8]>>>,
    /// Bytes charged against `max_size`.
    pub size: u64,
    /// Set by hits, cleared by the eviction hand (CLOCK).
    referenced: AtomicBool,
    /// A background refresh (stale-while-revalidate) is running: one at a time.
    pub refreshing: AtomicBool,
}

/// The parts of an [`Object`] its maker provides.
#[derive(Debug)]
pub struct NewObject {
    pub host: Box<str>,
    pub target: Box<str>,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub timing: Timing,
    pub lifetime: Duration,
    pub dirs: ResponseDirectives,
    pub vary: Vec<HeaderName>,
    pub secondary: Vec<Option<Box<[u8]>>>,
}

impl Object {
    pub fn new(o: NewObject) -> Object {
        let header_bytes: usize = o
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 32)
            .sum();
        let size = OVERHEAD
            + (o.host.len() + o.target.len() + header_bytes + o.body.len()) as u64
            + o.secondary
                .iter()
                .map(|s| s.as_ref().map_or(8, |b| b.len() + 8) as u64)
                .sum::<u64>();
        Object {
            host: o.host,
            target: o.target,
            status: o.status,
            headers: o.headers,
            body: o.body,
            timing: o.timing,
            lifetime: o.lifetime,
            dirs: o.dirs,
            vary: o.vary,
            secondary: o.secondary,
            size,
            referenced: AtomicBool::new(false),
            refreshing: AtomicBool::new(false),
        }
    }

    fn is(&self, host: &str, target: &str) -> bool {
        &*self.host == host && &*self.target == target
    }

    /// Seconds of freshness left at `now` (negative when stale), as `Cache-Status` shows it.
    pub fn ttl(&self, now: SystemTime) -> i64 {
        let age = self.timing.current_age(now).as_secs() as i64;
        self.lifetime.as_secs() as i64 - age
    }
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<u64, Vec<Arc<Object>>>,
    /// Every object stored in this shard, oldest first; entries of removed objects are dead
    /// weak references, skipped by the hand and compacted away.
    ring: VecDeque<Weak<Object>>,
    live: usize,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    Hit(Arc<Object>),
    /// Responses are stored for the URL, none for this request's Vary values.
    VaryMiss,
    Miss,
}

/// The stored responses of one proxy instance.
#[derive(Debug)]
pub struct Store {
    shards: Box<[RwLock<Shard>]>,
    hasher: RandomState,
    bytes: AtomicU64,
    max_size: u64,
    metrics: CacheMetrics,
}

fn read(s: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
    s.read().unwrap_or_else(|p| p.into_inner())
}

fn write(s: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
    s.write().unwrap_or_else(|p| p.into_inner())
}

impl Store {
    pub fn new(max_size: u64, metrics: CacheMetrics) -> Store {
        Store {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: RandomState::new(),
            bytes: AtomicU64::new(0),
            max_size,
            metrics,
        }
    }

    /// The primary key's hash: canonical host and normalised target.
    pub fn hash(&self, host: &str, target: &str) -> u64 {
        self.hasher.hash_one((host, target))
    }

    fn shard(&self, hash: u64) -> &RwLock<Shard> {
        &self.shards[(hash >> 58) as usize % SHARDS]
    }

    /// The stored response for this URL whose Vary values match (`secondary` computes a
    /// request's values for a list of names); the newest by `Date` when several do
    /// (RFC 9111 §4.1).
    pub fn lookup(
        &self,
        hash: u64,
        host: &str,
        target: &str,
        secondary: impl Fn(&[HeaderName]) -> Vec<Option<Box<[u8]>>>,
    ) -> Lookup {
        let shard = read(self.shard(hash));
        let Some(list) = shard.map.get(&hash) else {
            return Lookup::Miss;
        };
        let mut found: Option<&Arc<Object>> = None;
        let mut any = false;
        for o in list.iter().filter(|o| o.is(host, target)) {
            any = true;
            if !o.vary.is_empty() && secondary(&o.vary) != o.secondary {
                continue;
            }
            if found.is_none_or(|f| o.timing.response_time > f.timing.response_time) {
                found = Some(o);
            }
        }
        match found {
            Some(o) => {
                let o = o.clone();
                drop(shard);
                if !o.referenced.load(Ordering::Relaxed) {
                    o.referenced.store(true, Ordering::Relaxed);
                }
                Lookup::Hit(o)
            }
            None if any => Lookup::VaryMiss,
            None => Lookup::Miss,
        }
    }

    /// Stores `object`, replacing a response stored for the same URL and Vary values, then
    /// evicts until the store fits `max_size`. Returns the stored object.
    pub fn insert(&self, hash: u64, object: Object) -> Arc<Object> {
        let object = Arc::new(object);
        let size = object.size;
        {
            let mut shard = write(self.shard(hash));
            let list = shard.map.entry(hash).or_default();
            let mut removed = Vec::new();
            list.retain(|o| {
                let same = o.is(&object.host, &object.target)
                    && (o.vary == object.vary && o.secondary == object.secondary
                        // A new Vary replaces variants stored under another one.
                        || o.vary != object.vary);
                if same {
                    removed.push(o.size);
                }
                !same
            });
            list.push(object.clone());
            shard.live += 1;
            shard.ring.push_back(Arc::downgrade(&object));
            for r in removed {
                shard.live -= 1;
                self.uncount(r);
            }
            self.count(size);
            self.evict(&mut shard);
            compact(&mut shard);
        }
        let mut i = (hash >> 58) as usize;
        // Still too big (this shard ran empty): evict from the others.
        while self.bytes.load(Ordering::Relaxed) > self.max_size {
            i = (i + 1) % SHARDS;
            if i == (hash >> 58) as usize % SHARDS {
                break;
            }
            let mut shard = write(&self.shards[i]);
            self.evict(&mut shard);
            compact(&mut shard);
        }
        object
    }

    fn count(&self, size: u64) {
        self.bytes.fetch_add(size, Ordering::Relaxed);
        self.metrics.bytes.add(size as i64);
        self.metrics.objects.inc();
    }

    fn uncount(&self, size: u64) {
        self.bytes.fetch_sub(size, Ordering::Relaxed);
        self.metrics.bytes.sub(size as i64);
        self.metrics.objects.dec();
    }

    /// The CLOCK hand over one shard: referenced objects get a second chance, others go, until
    /// the store fits or the shard is empty.
    fn evict(&self, shard: &mut Shard) {
        let mut budget = shard.ring.len() * 2;
        while self.bytes.load(Ordering::Relaxed) > self.max_size && budget > 0 {
            budget -= 1;
            let Some(weak) = shard.ring.pop_front() else {
                return;
            };
            let Some(o) = weak.upgrade() else {
                continue;
            };
            if o.referenced.swap(false, Ordering::Relaxed) {
                shard.ring.push_back(weak);
                continue;
            }
            let hash = self.hash(&o.host, &o.target);
            if remove_object(shard, hash, &o) {
                self.uncount(o.size);
                self.metrics.evictions.inc();
            }
        }
    }

    /// Removes every stored response for this URL (all variants); returns how many.
    pub fn remove_url(&self, host: &str, target: &str) -> u64 {
        let hash = self.hash(host, target);
        let mut shard = write(self.shard(hash));
        let Some(list) = shard.map.get_mut(&hash) else {
            return 0;
        };
        let mut gone = Vec::new();
        list.retain(|o| {
            let hit = o.is(host, target);
            if hit {
                gone.push(o.size);
            }
            !hit
        });
        if list.is_empty() {
            shard.map.remove(&hash);
        }
        shard.live -= gone.len();
        for size in &gone {
            self.uncount(*size);
        }
        compact(&mut shard);
        gone.len() as u64
    }

    /// Removes the stored responses `doomed` selects; returns how many.
    pub fn remove_where(&self, doomed: impl Fn(&Object) -> bool) -> u64 {
        let mut n = 0;
        for s in self.shards.iter() {
            let mut shard = write(s);
            let mut gone = Vec::new();
            shard.map.retain(|_, list| {
                list.retain(|o| {
                    let d = doomed(o);
                    if d {
                        gone.push(o.size);
                    }
                    !d
                });
                !list.is_empty()
            });
            shard.live -= gone.len();
            for size in &gone {
                self.uncount(*size);
            }
            n += gone.len() as u64;
            compact(&mut shard);
        }
        n
    }

    /// Bytes charged now.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

fn remove_object(shard: &mut Shard, hash: u64, o: &Arc<Object>) -> bool {
    let Some(list) = shard.map.get_mut(&hash) else {
        return false;
    };
    let before = list.len();
    list.retain(|x| !Arc::ptr_eq(x, o));
    let removed = list.len() < before;
    if list.is_empty() {
        shard.map.remove(&hash);
    }
    if removed {
        shard.live -= 1;
    }
    removed
}

/// Drops dead ring entries once they outnumber the live ones.
fn compact(shard: &mut Shard) {
    if shard.ring.len() > 64 && shard.ring.len() > shard.live * 2 {
        shard.ring.retain(|w| w.strong_count() > 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    fn object(host: &str, target: &str, body: usize, vary: &[(&str, Option<&str>)]) -> Object {
        let now = SystemTime::now();
        Object::new(NewObject {
            host: host.into(),
            target: target.into(),
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(vec![b'x'; body]),
            timing: Timing {
                request_time: now,
                response_time: now,
                corrected_initial_age: Duration::ZERO,
            },
            lifetime: Duration::from_secs(60),
            dirs: ResponseDirectives::default(),
            vary: vary
                .iter()
                .map(|(n, _)| HeaderName::from_bytes(n.as_bytes()).unwrap())
                .collect(),
            secondary: vary
                .iter()
                .map(|(_, v)| v.map(|v| Box::from(v.as_bytes())))
                .collect(),
        })
    }

    fn no_vary(_: &[HeaderName]) -> Vec<Option<Box<[u8]>>> {
        Vec::new()
    }

    #[test]
    fn stores_looks_up_replaces_and_removes() {
        let m = Metrics::new();
        let s = Store::new(1 << 20, m.cache.clone());
        let h = s.hash("a.example", "/x");
        assert!(matches!(
            s.lookup(h, "a.example", "/x", no_vary),
            Lookup::Miss
        ));
        s.insert(h, object("a.example", "/x", 100, &[]));
        s.insert(h, object("a.example", "/x", 200, &[]));
        assert_eq!(m.cache.objects.get(), 1, "same URL, same variant: replaced");
        match s.lookup(h, "a.example", "/x", no_vary) {
            Lookup::Hit(o) => assert_eq!(o.body.len(), 200),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            s.lookup(s.hash("a.example", "/y"), "a.example", "/y", no_vary),
            Lookup::Miss
        ));
        assert_eq!(s.remove_url("a.example", "/x"), 1);
        assert_eq!(m.cache.objects.get(), 0);
        assert_eq!(m.cache.bytes.get(), 0);
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn variants_are_kept_apart_and_matched_by_their_values() {
        let m = Metrics::new();
        let s = Store::new(1 << 20, m.cache.clone());
        let h = s.hash("a.example", "/v");
        s.insert(
            h,
            object("a.example", "/v", 1, &[("accept-encoding", Some("gzip"))]),
        );
        s.insert(
            h,
            object("a.example", "/v", 2, &[("accept-encoding", None)]),
        );
        assert_eq!(m.cache.objects.get(), 2);
        let ask = |v: Option<&'static str>| {
            move |_: &[HeaderName]| vec![v.map(|v| Box::from(v.as_bytes()))]
        };
        match s.lookup(h, "a.example", "/v", ask(Some("gzip"))) {
            Lookup::Hit(o) => assert_eq!(o.body.len(), 1),
            other => panic!("{other:?}"),
        }
        match s.lookup(h, "a.example", "/v", ask(None)) {
            Lookup::Hit(o) => assert_eq!(o.body.len(), 2),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            s.lookup(h, "a.example", "/v", ask(Some("br"))),
            Lookup::VaryMiss
        ));
        // A response with another Vary replaces the variants.
        s.insert(h, object("a.example", "/v", 3, &[]));
        assert_eq!(m.cache.objects.get(), 1);
    }

    #[test]
    fn stays_within_max_size_and_spares_referenced_objects() {
        let m = Metrics::new();
        let s = Store::new(64 * 1024, m.cache.clone());
        // Keep one object hot while filling far past the bound.
        let hot = s.hash("a.example", "/hot");
        s.insert(hot, object("a.example", "/hot", 1000, &[]));
        for i in 0..1000 {
            let t = format!("/{i}");
            s.insert(s.hash("a.example", &t), object("a.example", &t, 1000, &[]));
            assert!(matches!(
                s.lookup(hot, "a.example", "/hot", no_vary),
                Lookup::Hit(_)
            ));
            assert!(s.bytes() <= 64 * 1024, "{} bytes", s.bytes());
        }
        assert!(m.cache.evictions.get() > 900);
        assert_eq!(s.bytes() as i64, m.cache.bytes.get());
    }

    #[test]
    fn removes_by_predicate() {
        let m = Metrics::new();
        let s = Store::new(1 << 20, m.cache.clone());
        for (h, t) in [
            ("a.example", "/1"),
            ("a.example", "/2"),
            ("b.example", "/1"),
        ] {
            s.insert(s.hash(h, t), object(h, t, 10, &[]));
        }
        assert_eq!(s.remove_where(|o| &*o.host == "a.example"), 2);
        assert_eq!(m.cache.objects.get(), 1);
        assert_eq!(s.remove_where(|_| true), 1);
        assert_eq!(s.bytes(), 0);
    }
}
