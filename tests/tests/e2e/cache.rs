//! The HTTP cache end to end (issue #6): a [`ScriptedOrigin`] behind a proxy whose `shop` site
//! caches, one module per topic. Freshness is moved by the proxy's cache clock
//! ([`RunningProxy::clock`]), never by sleeping; the origin writes its `Date` from that clock.
//!
//! `Cache-Status` and `Age` carry whole seconds, and a `Date` is truncated to its second, so an
//! expected `ttl` may read up to [`SLACK`] lower and an `Age` up to [`SLACK`] higher (rounding,
//! not timing: the clock moves only when a test moves it). Everything else is exact.

mod coalescing;
mod freshness;
mod invalidation;
mod metrics;
mod policy;
mod purge;
mod requests;
mod revalidation;
mod stale;
mod storage;
mod streaming;
mod vary;

use std::time::{Duration, SystemTime};

use http::Request;
use portcullis_tests::cache::{CacheStatus, ScriptedOrigin, age};
use portcullis_tests::client::{H1, Reply, get_once, request};
use portcullis_tests::{RunningProxy, Scrape, Site, TestBody, TestProxy, body, eventually};

use crate::SHOP;

/// A second host of the cached `shop` site, for "another host" cases.
const OTHER: &str = "other.example";

/// The admin token of every cache test proxy.
const TOKEN: &str = "cache-test-token";

/// Rounding allowance of `ttl` and `Age`, in seconds (see the module docs).
const SLACK: i64 = 2;

/// The `shop` site for [`SHOP`] and [`OTHER`] on `origin`, with `cache: true`.
fn cached_site(origin: &ScriptedOrigin) -> Site {
    Site::new("shop", SHOP)
        .host(OTHER)
        .origin(&origin.url())
        .set("cache", "true")
}

/// A scripted origin and a proxy caching it, the origin's `Date` on the proxy's clock.
struct Cached {
    origin: ScriptedOrigin,
    proxy: RunningProxy,
}

impl Cached {
    /// The `shop` site ([`cached_site`]) with default cache settings and the admin token.
    async fn start() -> anyhow::Result<Cached> {
        Cached::with(|p| p).await
    }

    /// Like [`Cached::start`], the config changed by `f` first (`cache:` keys, more sites).
    async fn with(f: impl FnOnce(TestProxy) -> TestProxy) -> anyhow::Result<Cached> {
        Cached::build(|s| s, f).await
    }

    /// Like [`Cached::with`], the `shop` site changed by `site` first (more hosts).
    async fn build(
        site: impl FnOnce(Site) -> Site,
        f: impl FnOnce(TestProxy) -> TestProxy,
    ) -> anyhow::Result<Cached> {
        let origin = ScriptedOrigin::start().await?;
        let proxy = f(TestProxy::new()
            .site(site(cached_site(&origin)))
            .admin_token(TOKEN))
        .start()
        .await?;
        origin.follow(proxy.clock());
        Ok(Cached { origin, proxy })
    }

    /// `GET path` for [`SHOP`] on a fresh connection.
    async fn get(&self, path: &str) -> anyhow::Result<Reply> {
        get_once(self.proxy.addr(), SHOP, path).await
    }

    /// `GET path` for `host` on a fresh connection.
    async fn get_from(&self, host: &str, path: &str) -> anyhow::Result<Reply> {
        get_once(self.proxy.addr(), host, path).await
    }

    /// `GET path` for [`SHOP`] with extra request headers.
    async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Reply> {
        let mut req = request("GET", SHOP, path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req.body(body::empty())?).await
    }

    /// Any request, on a fresh connection.
    async fn send(&self, req: Request<TestBody>) -> anyhow::Result<Reply> {
        H1::connect(self.proxy.addr()).await?.request(req).await
    }

    /// Moves the cache clock (and the origin's `Date`) forward.
    fn advance(&self, secs: u64) {
        self.proxy.clock().advance(Duration::from_secs(secs));
    }

    /// Now on the cache clock.
    fn now(&self) -> SystemTime {
        self.proxy.clock().now()
    }

    async fn scrape(&self) -> anyhow::Result<Scrape> {
        Scrape::fetch(self.proxy.admin()).await
    }
}

/// `t` shifted back by `secs`.
fn ago(t: SystemTime, secs: u64) -> SystemTime {
    t - Duration::from_secs(secs)
}

/// `t` shifted forward by `secs`.
fn later(t: SystemTime, secs: u64) -> SystemTime {
    t + Duration::from_secs(secs)
}

/// The reply's `portcullis` Cache-Status; panics (naming the reply) when it has none.
#[track_caller]
fn cache_status(r: &Reply) -> CacheStatus {
    CacheStatus::of(r).unwrap_or_else(|| {
        panic!(
            "no `Cache-Status: portcullis; ...` on a {} reply; headers: {:?}",
            r.status, r.headers
        )
    })
}

/// A fresh hit from storage: `portcullis; hit; ttl=...`, with an `Age`.
#[track_caller]
fn assert_hit(r: &Reply) -> CacheStatus {
    let s = cache_status(r);
    assert!(
        s.hit && s.fwd.is_none() && s.detail.is_none(),
        "expected a fresh hit, got `{}`",
        s.raw
    );
    assert!(
        s.ttl.is_some_and(|t| t >= 0),
        "a fresh hit has ttl >= 0: `{}`",
        s.raw
    );
    assert!(age(r).is_some(), "a hit without Age: {:?}", r.headers);
    s
}

/// A miss that was stored: `portcullis; fwd=<fwd>; stored; ttl=...`.
#[track_caller]
fn assert_stored(r: &Reply, fwd: &str) -> CacheStatus {
    let s = cache_status(r);
    assert!(
        !s.hit && s.fwd_is(fwd) && s.stored && s.ttl.is_some(),
        "expected `fwd={fwd}; stored; ttl=...`, got `{}`",
        s.raw
    );
    s
}

/// A miss that was not stored, for `reason`: `portcullis; fwd=uri-miss; detail=<reason>`.
#[track_caller]
fn assert_not_stored(r: &Reply, reason: &str) -> CacheStatus {
    let s = cache_status(r);
    assert!(
        !s.hit && s.fwd_is("uri-miss") && !s.stored && s.detail_is(reason),
        "expected `fwd=uri-miss; detail={reason}`, got `{}`",
        s.raw
    );
    s
}

/// Not served from storage: the origin answered (whatever the cache then did with it).
#[track_caller]
fn assert_not_hit(r: &Reply) -> CacheStatus {
    let s = cache_status(r);
    assert!(
        !s.hit && s.fwd.is_some() && !s.collapsed,
        "expected the origin's answer, got `{}`",
        s.raw
    );
    s
}

/// A stale response fetched again in full: `portcullis; fwd=stale; fwd-status=200; stored`.
#[track_caller]
fn assert_refetched(r: &Reply) -> CacheStatus {
    let s = cache_status(r);
    assert!(
        !s.hit && s.fwd_is("stale") && s.fwd_status == Some(200) && s.stored,
        "expected `fwd=stale; fwd-status=200; stored; ttl=...`, got `{}`",
        s.raw
    );
    s
}

/// `ttl` is `expected`, give or take the rounding of whole seconds (lower by up to [`SLACK`]).
#[track_caller]
fn assert_ttl(s: &CacheStatus, expected: i64) {
    let ttl = s
        .ttl
        .unwrap_or_else(|| panic!("no ttl in `{}` (expected {expected})", s.raw));
    assert!(
        (expected - SLACK..=expected).contains(&ttl),
        "ttl {ttl}, expected {expected} (rounding allowance {SLACK}): `{}`",
        s.raw
    );
}

/// `Age` is `expected` seconds, give or take rounding (higher by up to [`SLACK`]).
#[track_caller]
fn assert_age(r: &Reply, expected: u64) {
    let a = age(r).unwrap_or_else(|| panic!("no Age (expected {expected}): {:?}", r.headers));
    assert!(
        (expected..=expected + SLACK as u64).contains(&a),
        "Age {a}, expected {expected} (rounding allowance {SLACK})"
    );
}

/// The sum of every sample named `name` (whatever its labels); 0 when there is none.
fn total(s: &Scrape, name: &str) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.name == name)
        .map(|x| x.value)
        .sum()
}

/// Waits until `portcullis_cache_objects` is `n`; returns `portcullis_cache_bytes` then.
async fn objects_become(c: &Cached, n: f64) -> anyhow::Result<f64> {
    eventually(&format!("cache_objects becomes {n}"), || async {
        let s = c.scrape().await?;
        let objects = total(&s, "portcullis_cache_objects");
        anyhow::ensure!(objects == n, "cache_objects = {objects}");
        Ok(total(&s, "portcullis_cache_bytes"))
    })
    .await
}
