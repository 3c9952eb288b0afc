//! Per-client rate limits, X-Forwarded-For keying, the connection cap, the deny list, load
//! shedding, and the bound on client state.

use http::StatusCode;
use portcullis_tests::canned::Gate;
use portcullis_tests::client::{H1, get, request};
use portcullis_tests::protection::forwarded_flood;
use portcullis_tests::{Origin, RawConn, Scrape, Site, TestProxy, body, eventually};

use super::{BOUND, from, rejected, rejected_at_least};
use crate::{SHOP, shop};

#[tokio::test]
async fn an_abusive_client_gets_429_while_a_normal_one_is_fully_served() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin)
        .protection("per_client", "{ requests_per_second: 1, burst: 5 }")
        .start()
        .await?;
    let mut abusive = H1::connect_from(from(2), proxy.addr()).await?;
    let mut normal = H1::connect_from(from(3), proxy.addr()).await?;
    let (mut ok, mut limited) = (0, 0);
    for i in 0..40 {
        let reply = abusive.request(get(SHOP, "/flood")).await?;
        match reply.status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                let after: u64 = reply
                    .header("retry-after")
                    .ok_or_else(|| anyhow::anyhow!("429 without Retry-After"))?
                    .parse()?;
                assert!(after >= 1, "{after}");
            }
            other => anyhow::bail!("request {i}: unexpected {other}"),
        }
        // The well-behaved client, interleaved on the same proxy and site, under its burst.
        if i % 10 == 0 {
            let reply = normal.request(get(SHOP, "/normal")).await?;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "the normal client was limited"
            );
        }
    }
    // Burst 5 at 1 token/s: all but a handful are refused, however slow the machine is.
    assert!(limited >= 20, "ok {ok}, limited {limited}");
    assert!(!abusive.is_closed(), "a 429 keeps the connection");
    // Every 429 was answered without the origin.
    assert_eq!(origin.requests(), ok + 4);
    rejected_at_least(&proxy, "shop", "rate", f64::from(limited)).await?;
    Ok(())
}

#[tokio::test]
async fn forwarded_for_keys_clients_only_from_a_trusted_peer() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin)
        .protection("trusted_proxies", "[\"127.0.0.20/32\"]")
        .protection("per_client", "{ requests_per_second: 1, burst: 2 }")
        .start()
        .await?;
    let with_xff = |n: u32| {
        request("GET", SHOP, "/")
            .header("x-forwarded-for", format!("198.51.100.{n}"))
            .body(body::empty())
    };
    // Untrusted peer: a different X-Forwarded-For on every request changes nothing.
    let mut untrusted = H1::connect_from(from(21), proxy.addr()).await?;
    let mut statuses = Vec::new();
    for n in 0..6 {
        statuses.push(untrusted.request(with_xff(n)?).await?.status);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "the untrusted peer's X-Forwarded-For must not make new clients: {statuses:?}"
    );
    // Trusted peer: each named client has its own bucket.
    let mut trusted = H1::connect_from(from(20), proxy.addr()).await?;
    for n in 0..20 {
        let reply = trusted.request(with_xff(100 + n)?).await?;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "client {n} behind the trusted proxy"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_connection_cap_refuses_only_the_excess_connection() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin)
        .protection("per_client", "{ max_connections: 2 }")
        .start()
        .await?;
    let mut one = H1::connect_from(from(30), proxy.addr()).await?;
    let mut two = H1::connect_from(from(30), proxy.addr()).await?;
    assert_eq!(one.request(get(SHOP, "/1")).await?.status, StatusCode::OK);
    assert_eq!(two.request(get(SHOP, "/2")).await?.status, StatusCode::OK);
    // The third from the same client is closed at accept, before a byte is read.
    let mut third = RawConn::connect_from(from(30), proxy.addr()).await?;
    let _ = third
        .write(format!("GET / HTTP/1.1\r\nHost: {SHOP}\r\n\r\n").as_bytes())
        .await;
    assert!(
        third.closed_within(BOUND).await?,
        "the excess connection stays open"
    );
    // Another client is not affected.
    let mut other = H1::connect_from(from(31), proxy.addr()).await?;
    assert_eq!(other.request(get(SHOP, "/3")).await?.status, StatusCode::OK);
    rejected_at_least(&proxy, "-", "connections", 1.0).await?;
    // A slot comes back when a connection ends.
    drop(one);
    eventually("a new connection once one closed", || async {
        let mut c = H1::connect_from(from(30), proxy.addr()).await?;
        anyhow::ensure!(c.request(get(SHOP, "/4")).await?.status == StatusCode::OK);
        Ok(())
    })
    .await?;
    assert_eq!(two.request(get(SHOP, "/5")).await?.status, StatusCode::OK);
    assert_eq!(
        origin.requests(),
        5,
        "refused connections never reach the origin"
    );
    Ok(())
}

#[tokio::test]
async fn the_deny_list_closes_at_accept_and_refuses_forwarded_clients() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin)
        .protection("trusted_proxies", "[\"127.0.0.41/32\"]")
        .protection("deny", "[\"127.0.0.40/32\", \"203.0.113.0/24\"]")
        .start()
        .await?;
    let mut denied = RawConn::connect_from(from(40), proxy.addr()).await?;
    let _ = denied
        .write(format!("GET / HTTP/1.1\r\nHost: {SHOP}\r\n\r\n").as_bytes())
        .await;
    assert!(
        denied.closed_within(BOUND).await?,
        "a denied peer is closed at accept"
    );
    rejected_at_least(&proxy, "-", "deny", 1.0).await?;
    // Behind the trusted proxy: 403 per request for a denied client, others served.
    let mut via = H1::connect_from(from(41), proxy.addr()).await?;
    let req = |xff: &str| {
        request("GET", SHOP, "/")
            .header("x-forwarded-for", xff)
            .body(body::empty())
    };
    let reply = via.request(req("203.0.113.9")?).await?;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    assert_eq!(
        origin.requests(),
        0,
        "a denied request never reaches the origin"
    );
    let reply = via.request(req("198.51.100.1")?).await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(rejected(&proxy, "shop", "deny").await?, 1.0);
    Ok(())
}

#[tokio::test]
async fn load_shedding_answers_503_with_retry_after() -> anyhow::Result<()> {
    let gate = Gate::new();
    let origin = Origin::gated(&gate).start().await?;
    let proxy = shop(&origin)
        .protection("shed", "{ max_inflight_requests: 2 }")
        .start()
        .await?;
    let addr = proxy.addr();
    let held: Vec<_> = (0..2)
        .map(|i| {
            tokio::spawn(async move {
                let mut c = H1::connect(addr).await?;
                c.request(get(SHOP, &format!("/held/{i}"))).await
            })
        })
        .collect();
    eventually("two requests held at the origin", || async {
        anyhow::ensure!(origin.requests() == 2, "{}", origin.requests());
        Ok(())
    })
    .await?;
    let reply = H1::connect(addr).await?.request(get(SHOP, "/shed")).await?;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(
        origin.requests(),
        2,
        "a shed request never reaches the origin"
    );
    assert_eq!(rejected(&proxy, "shop", "shed").await?, 1.0);
    gate.open();
    for h in held {
        assert_eq!(h.await??.status, StatusCode::OK);
    }
    eventually("served again once the load is gone", || async {
        let reply = H1::connect(addr)
            .await?
            .request(get(SHOP, "/after"))
            .await?;
        anyhow::ensure!(reply.status == StatusCode::OK, "{}", reply.status);
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn client_state_stays_bounded_under_100k_forwarded_clients() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    // Requests go to a host no site serves: each still takes a token from its client's bucket
    // (then gets 421), so 100,000 keys cost no origin work.
    let proxy = TestProxy::new()
        .site(Site::new("shop", SHOP).origin(&origin.url()))
        .protection("trusted_proxies", "[\"127.0.0.0/8\"]")
        .protection("per_client", "{ requests_per_second: 1, burst: 1 }")
        .protection("max_tracked_clients", "1000")
        .start()
        .await?;
    let tracked = |s: &Scrape| s.get("portcullis_protection_tracked_clients", &[]);
    let addr = proxy.addr();
    let floods: Vec<_> = (0..4u32)
        .map(|c| {
            tokio::spawn(async move {
                forwarded_flood(from(50), addr, "nobody.example", c * 25_000, 25_000).await
            })
        })
        .collect();
    let mut done = Vec::new();
    for f in floods {
        // The gauge, sampled while the flood runs, never passes the bound.
        let peak = tracked(&Scrape::fetch(proxy.admin()).await?)?;
        assert!(peak <= 1000.0, "{peak} clients tracked");
        done.push(f.await??);
    }
    let mut answered = 0;
    for counts in &done {
        for (status, n) in counts {
            assert_eq!(*status, 421, "every key was new or evicted: {counts:?}");
            answered += n;
        }
    }
    assert_eq!(answered, 100_000);
    let now = tracked(&Scrape::fetch(proxy.admin()).await?)?;
    assert!((1.0..=1000.0).contains(&now), "{now}");
    // The first key was evicted long ago: a full bucket again, not a 429.
    let again = forwarded_flood(from(50), addr, "nobody.example", 0, 1).await?;
    assert_eq!(again.get(&421), Some(&1), "{again:?}");
    assert_eq!(origin.requests(), 0);
    Ok(())
}
