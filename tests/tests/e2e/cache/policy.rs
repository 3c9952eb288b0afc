//! Legal orders and the cache: policy runs before every cache path. A blocked host's stored
//! bytes are never served; a global suspension purges them, a country-scoped one does not;
//! policy answers are never stored; lifting an order serves content (from the origin) again.

use std::path::PathBuf;

use http::StatusCode;
use portcullis_tests::cache::Answer;
use portcullis_tests::policy::{self, Order, PolicyFile};
use portcullis_tests::{RunningProxy, TestProxy};

use super::{Cached, assert_hit, assert_stored, objects_become};

/// The host the orders suspend; the cached site serves it too.
const PIRATE: &str = "pirate.example";

/// The cached page of [`PIRATE`].
const PAGE: &str = "/page";

/// The page's body as stored.
const CACHED: &str = "cached pirate page";

/// The test GeoIP database: 127.0.0.2 is DE, 127.0.0.3 US (see `tests/e2e/policy/geo.rs`).
fn geo_fixture() -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/geo/country-test.mmdb");
    format!("\"{}\"", p.display())
}

/// The cached site for [`PIRATE`] too, with a policy file (reloaded on demand) and, when
/// `geo`, a trusted proxy on 127.0.0.1 naming the country in `X-Country`.
async fn with_policy(file: &PolicyFile, geo: bool) -> anyhow::Result<Cached> {
    let text = file.render();
    let c = Cached::build(
        |s| s.host(PIRATE),
        move |p: TestProxy| {
            let p = p.policy(&text).policy_key("check_interval", "1h");
            if geo {
                p.geoip("mmdb", &geo_fixture())
                    .geoip("trusted_proxies", "[\"127.0.0.1/32\"]")
                    .geoip("country_header", "\"X-Country\"")
            } else {
                p
            }
        },
    )
    .await?;
    Ok(c)
}

/// Replaces the policy file with `file` and reloads until its serial runs.
async fn apply(proxy: &RunningProxy, file: &PolicyFile, serial: u64) -> anyhow::Result<()> {
    proxy.policy_files().replace(&file.render())?;
    // The watcher may have loaded it first; the serial is what counts.
    policy::reload(proxy.admin(), Some(super::TOKEN)).await?;
    policy::serial_becomes(proxy.admin(), serial).await
}

async fn get_pirate(c: &Cached, country: Option<&str>) -> anyhow::Result<portcullis_tests::Reply> {
    let mut req = portcullis_tests::client::request("GET", PIRATE, PAGE);
    if let Some(cc) = country {
        req = req.header("x-country", cc);
    }
    c.send(req.body(portcullis_tests::body::empty())?).await
}

/// Stores [`PAGE`] of [`PIRATE`] and checks it hits.
async fn store_page(c: &Cached, country: Option<&str>) -> anyhow::Result<()> {
    c.origin
        .on(PAGE, Answer::ok(CACHED).cache_control("max-age=600"));
    assert_stored(&get_pirate(c, country).await?, "uri-miss");
    assert_hit(&get_pirate(c, country).await?);
    Ok(())
}

#[tokio::test]
async fn a_global_order_blocks_cached_content_and_purges_it() -> anyhow::Result<()> {
    let c = with_policy(&PolicyFile::new(1), false).await?;
    store_page(&c, None).await?;
    objects_become(&c, 1.0).await?;

    apply(
        &c.proxy,
        &PolicyFile::new(2).order(Order::new("PIRATE-451", PIRATE)),
        2,
    )
    .await?;
    let blocked = get_pirate(&c, None).await?;
    assert_eq!(blocked.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    assert!(
        !blocked.text().contains(CACHED),
        "the stored body leaked: {}",
        blocked.text()
    );
    // The suspension purged the host's objects.
    objects_become(&c, 0.0).await?;

    apply(&c.proxy, &PolicyFile::new(3), 3).await?;
    c.origin.on(
        PAGE,
        Answer::ok("served again").cache_control("max-age=600"),
    );
    let lifted = get_pirate(&c, None).await?;
    assert_eq!(lifted.status, StatusCode::OK);
    assert_eq!(lifted.text(), "served again");
    assert_stored(&lifted, "uri-miss");
    assert_eq!(
        c.origin.requests(PAGE),
        2,
        "asked the origin again once lifted"
    );
    Ok(())
}

#[tokio::test]
async fn a_country_scoped_order_blocks_there_and_keeps_the_object_for_others() -> anyhow::Result<()>
{
    let c = with_policy(&PolicyFile::new(1), true).await?;
    store_page(&c, Some("US")).await?;
    apply(
        &c.proxy,
        &PolicyFile::new(2).order(Order::new("DE-ONLY", PIRATE).countries(&["DE"], "allow")),
        2,
    )
    .await?;
    let de = get_pirate(&c, Some("DE")).await?;
    assert_eq!(de.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    assert!(!de.text().contains(CACHED));
    let us = get_pirate(&c, Some("US")).await?;
    assert_eq!(us.status, StatusCode::OK);
    assert_eq!(us.text(), CACHED);
    assert_hit(&us);
    // A country-scoped order purges nothing (the US hit above proves the object is there).
    objects_become(&c, 1.0).await?;
    assert_eq!(c.origin.requests(PAGE), 1);
    Ok(())
}

#[tokio::test]
async fn policy_answers_are_never_stored() -> anyhow::Result<()> {
    let c = with_policy(
        &PolicyFile::new(1).order(Order::new("PIRATE-451", PIRATE)),
        false,
    )
    .await?;
    c.origin
        .on(PAGE, Answer::ok(CACHED).cache_control("max-age=600"));
    for _ in 0..2 {
        let r = get_pirate(&c, None).await?;
        assert_eq!(r.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
        if let Some(s) = portcullis_tests::CacheStatus::of(&r) {
            assert!(!s.hit && !s.stored, "a 451 through the cache: `{}`", s.raw);
        }
    }
    objects_become(&c, 0.0).await?;
    assert_eq!(
        c.origin.total(),
        0,
        "a blocked request never reaches the origin"
    );

    apply(&c.proxy, &PolicyFile::new(2), 2).await?;
    let r = get_pirate(&c, None).await?;
    assert_eq!(r.status, StatusCode::OK, "no stored 451 answered");
    assert_eq!(r.text(), CACHED);
    assert_stored(&r, "uri-miss");
    assert_eq!(c.origin.requests(PAGE), 1);
    Ok(())
}
