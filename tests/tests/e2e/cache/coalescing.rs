//! Request coalescing: concurrent misses on one key make one origin request and every waiter
//! gets the stored response; when it turns out uncacheable, every waiter asks the origin itself.
//!
//! The origin holds its answer until the test releases it. The test releases it once the first
//! request has reached the origin and the others have had [`SETTLE`] to reach the cache: all
//! of them were written to their connections before, so they are already queued at the proxy.

use std::time::Duration;

use http::StatusCode;
use portcullis_tests::cache::{Answer, Release};
use portcullis_tests::client::{H1, Reply, get};
use portcullis_tests::eventually;
use tokio::task::JoinSet;

use super::{Cached, cache_status, total};
use crate::SHOP;

const WAITERS: usize = 10;

/// Time for requests already written to reach the cache's lookup before the fill is released.
const SETTLE: Duration = Duration::from_millis(500);

/// Sends `n` concurrent `GET path` on `n` connections, releases the origin once the first one
/// reached it, and returns the replies.
async fn concurrent(
    c: &Cached,
    path: &str,
    n: usize,
    release: &Release,
) -> anyhow::Result<Vec<Reply>> {
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(H1::connect(c.proxy.addr()).await?);
    }
    let mut set = JoinSet::new();
    for mut conn in conns {
        let path = path.to_owned();
        set.spawn(async move { conn.request(get(SHOP, &path)).await });
    }
    eventually("the first request reaches the origin", || async {
        anyhow::ensure!(c.origin.requests(path) >= 1, "not yet");
        Ok(())
    })
    .await?;
    tokio::time::sleep(SETTLE).await;
    release.open();
    let mut replies = Vec::new();
    while let Some(r) = set.join_next().await {
        replies.push(r??);
    }
    Ok(replies)
}

#[tokio::test]
async fn concurrent_misses_make_one_origin_request() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    let release = Release::new();
    c.origin.on(
        "/slow",
        Answer::ok("filled once")
            .cache_control("max-age=60")
            .hold_until(&release),
    );
    let replies = concurrent(&c, "/slow", WAITERS, &release).await?;
    for r in &replies {
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.text(), "filled once");
    }
    assert_eq!(c.origin.requests("/slow"), 1, "one origin request for all");
    let statuses: Vec<_> = replies.iter().map(cache_status).collect();
    let leaders = statuses.iter().filter(|s| s.stored).count();
    let collapsed = statuses
        .iter()
        .filter(|s| s.collapsed && s.fwd_is("uri-miss"))
        .count();
    assert_eq!(
        (leaders, collapsed),
        (1, WAITERS - 1),
        "one stored fill, the rest `fwd=uri-miss; collapsed`: {:?}",
        statuses.iter().map(|s| &s.raw).collect::<Vec<_>>()
    );
    for (r, s) in replies.iter().zip(&statuses) {
        if s.collapsed {
            assert!(
                super::age(r).is_some(),
                "a collapsed answer comes from storage: Age"
            );
        }
    }
    eventually("coalesced_total counts the waiters", || async {
        let n = total(&c.scrape().await?, "portcullis_cache_coalesced_total");
        anyhow::ensure!(n == (WAITERS - 1) as f64, "coalesced_total = {n}");
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn an_uncacheable_fill_lets_every_waiter_through_to_the_origin() -> anyhow::Result<()> {
    let c = Cached::start().await?;
    let release = Release::new();
    c.origin.on(
        "/personal",
        Answer::ok("for you alone")
            .cache_control("no-store")
            .hold_until(&release),
    );
    let n = 4;
    let replies = concurrent(&c, "/personal", n, &release).await?;
    for r in &replies {
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.text(), "for you alone");
        let s = cache_status(r);
        assert!(!s.hit && !s.stored && !s.collapsed, "`{}`", s.raw);
    }
    assert_eq!(
        c.origin.requests("/personal"),
        n,
        "every waiter asked the origin"
    );
    let coalesced = total(&c.scrape().await?, "portcullis_cache_coalesced_total");
    assert_eq!(coalesced, 0.0, "nobody was served by another's fill");
    Ok(())
}
