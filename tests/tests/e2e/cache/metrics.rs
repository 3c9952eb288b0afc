//! The cache's metrics: requests by result, objects and bytes stored, evictions under a small
//! `max_size`; and a site without `cache: true` neither caching nor saying anything about it.

use portcullis_tests::cache::{Answer, ScriptedOrigin, generated_bytes, purged};
use portcullis_tests::client::{get_once, request};
use portcullis_tests::{Scrape, Site, TestProxy, body, eventually};

use super::{Cached, TOKEN, assert_hit, assert_stored, cached_site, objects_become, total};
use crate::SHOP;

/// `portcullis_cache_requests_total{site="shop", result}`, 0 when not yet created.
fn requests(s: &Scrape, result: &str) -> anyhow::Result<f64> {
    s.get_or_zero(
        "portcullis_cache_requests_total",
        &[("site", "shop"), ("result", result)],
    )
}

#[tokio::test]
async fn requests_are_counted_by_result() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    c.origin.on(
        "/m",
        Answer::ok("m")
            .cache_control("max-age=10")
            .etag("\"m1\"")
            .conditional(),
    );
    c.origin.on(
        "/s",
        Answer::ok("s").cache_control("max-age=10, stale-if-error=600"),
    );
    c.origin.on_method("POST", "/p", Answer::ok("posted"));

    c.get("/m").await?; // miss
    c.get("/s").await?; // miss
    c.get("/m").await?; // hit
    c.send(request("POST", SHOP, "/p").body(body::full("x"))?)
        .await?; // bypass
    c.advance(20);
    c.get("/m").await?; // revalidated (304)
    c.origin.on("/s", Answer::status(503, "down"));
    assert_eq!(c.get("/s").await?.text(), "s"); // stale (stale-if-error)

    // Assumption: `stale` counts stale responses served (stale-if-error here), `revalidated`
    // a stale response the origin confirmed with 304.
    eventually("every result is counted", || async {
        let s = c.scrape().await?;
        let got = [
            requests(&s, "hit")?,
            requests(&s, "miss")?,
            requests(&s, "stale")?,
            requests(&s, "revalidated")?,
            requests(&s, "bypass")?,
        ];
        anyhow::ensure!(
            got == [1.0, 2.0, 1.0, 1.0, 1.0],
            "[hit, miss, stale, revalidated, bypass] = {got:?}"
        );
        Ok(())
    })
    .await?;
    portcullis_tests::promtool_check(&c.scrape().await?.text)?;
    Ok(())
}

#[tokio::test]
async fn objects_and_bytes_go_up_on_store_and_down_on_purge() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    assert_eq!(
        objects_become(&c, 0.0).await?,
        0.0,
        "bytes before any store"
    );

    c.origin.on(
        "/a",
        Answer::ok(generated_bytes(1000, 100)).cache_control("max-age=600"),
    );
    c.origin.on(
        "/b",
        Answer::ok(generated_bytes(5000, 100)).cache_control("max-age=600"),
    );
    assert_stored(&c.get("/a").await?, "uri-miss");
    let one = objects_become(&c, 1.0).await?;
    assert!(one >= 1000.0, "bytes {one} for 1000 B of body");
    assert_stored(&c.get("/b").await?, "uri-miss");
    let two = objects_become(&c, 2.0).await?;
    assert!(
        two >= one + 5000.0,
        "bytes {two} after {one} and 5000 B more"
    );

    let admin = c.proxy.admin();
    assert_eq!(
        purged(admin, TOKEN, &format!(r#"{{"url":"http://{SHOP}/b"}}"#)).await?,
        1
    );
    let after_b = objects_become(&c, 1.0).await?;
    assert_eq!(after_b, one, "back to what /a alone took");
    assert_eq!(purged(admin, TOKEN, r#"{"all":true}"#).await?, 1);
    assert_eq!(objects_become(&c, 0.0).await?, 0.0, "bytes once empty");
    Ok(())
}

#[tokio::test]
async fn a_small_max_size_evicts_to_stay_within_it() -> anyhow::Result<()> {
    let c = Cached::with(|p| {
        p.cache("max_size", "\"16KiB\"")
            .cache("max_object_size", "\"8KiB\"")
    })
    .await?;
    let stored = 10;
    for i in 0..stored {
        let path = format!("/o{i}");
        c.origin.on(
            &path,
            Answer::ok(generated_bytes(4000, 100)).cache_control("max-age=600"),
        );
        assert_stored(&c.get(&path).await?, "uri-miss");
    }
    eventually(
        "every stored object is still there or was evicted",
        || async {
            let s = c.scrape().await?;
            let objects = total(&s, "portcullis_cache_objects");
            let bytes = total(&s, "portcullis_cache_bytes");
            let evictions = total(&s, "portcullis_cache_evictions_total");
            anyhow::ensure!(
                evictions + objects == stored as f64,
                "objects {objects} + evictions {evictions} != {stored}"
            );
            anyhow::ensure!(bytes <= 16.0 * 1024.0, "bytes {bytes} over max_size");
            anyhow::ensure!(objects <= 4.0, "{objects} objects of 4000 B in 16 KiB");
            Ok(())
        },
    )
    .await
}

#[tokio::test]
async fn a_site_without_cache_neither_caches_nor_emits_cache_status() -> anyhow::Result<()> {
    let origin = ScriptedOrigin::start().await?;
    let proxy = TestProxy::new()
        .site(cached_site(&origin))
        .site(Site::new("plain", "plain.example").origin(&origin.url()))
        .site(
            Site::new("off", "off.example")
                .origin(&origin.url())
                .set("cache", "false"),
        )
        .start()
        .await?;
    origin.follow(proxy.clock());
    origin.on("/a", Answer::ok("a").cache_control("max-age=600"));
    for host in ["plain.example", "off.example"] {
        for _ in 0..2 {
            let r = get_once(proxy.addr(), host, "/a").await?;
            assert_eq!(r.text(), "a");
            assert_eq!(r.header("cache-status"), None, "{host}");
        }
    }
    assert_eq!(origin.requests("/a"), 4, "nothing served from storage");
    // The caching site on the same origin does cache it.
    get_once(proxy.addr(), SHOP, "/a").await?;
    assert_hit(&get_once(proxy.addr(), SHOP, "/a").await?);
    assert_eq!(origin.requests("/a"), 5);
    let s = Scrape::fetch(proxy.admin()).await?;
    for site in ["plain", "off"] {
        let counted: f64 = s
            .samples
            .iter()
            .filter(|x| x.name == "portcullis_cache_requests_total")
            .filter(|x| x.labels.iter().any(|(k, v)| k == "site" && v == site))
            .map(|x| x.value)
            .sum();
        assert_eq!(counted, 0.0, "site {site} went through no cache");
    }
    Ok(())
}
