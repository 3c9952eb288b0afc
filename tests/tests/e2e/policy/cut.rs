//! Open connections across a change: the next request on a keep-alive or HTTP/2 connection sees
//! the new table, and exchanges already under way for a newly blocked host (a long download, an
//! HTTP/2 stream, a WebSocket) are cut, while those of other hosts carry on.
//!
//! The origin trickles its body for 30 s, so a transfer that ends well before that was cut.

use std::time::{Duration, SystemTime};

use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use portcullis_tests::client::{H1, H2, get, websocket};
use portcullis_tests::policy::{self, Order, PolicyFile, rfc3339_from_now};
use portcullis_tests::{Origin, OriginHandle, RunningProxy, Scrape, TestProxy, body, eventually};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{PIRATE, TOKEN, pirate_order, proxy_with};

/// Far more than the grace and a sweep take; far less than the 30 s download.
const CUT_BOUND: Duration = Duration::from_secs(15);

fn lifted(serial: u64) -> PolicyFile {
    PolicyFile::new(serial).order(Order::new("OTHER", "forbidden.example").status(403))
}

fn suspended(serial: u64) -> PolicyFile {
    lifted(serial).order(pirate_order())
}

/// A 30-second download: a chunk every 100 ms.
fn slow_download() -> Origin {
    Origin::trickle(b"tick\n", Duration::from_millis(100), 300)
}

/// A proxy that reloads when the test says so (`POST /admin/policy/reload`), cutting within 2 s.
fn on_demand(origin: &OriginHandle, file: &PolicyFile) -> TestProxy {
    proxy_with(origin, file)
        .policy_key("check_interval", "1h")
        .policy_key("close_grace", "2s")
        .policy_symlink()
}

/// Suspends [`PIRATE`] (serial 2) and reloads now. (The hash check's first tick, right after
/// start, may have found the change first: "unchanged" then.)
async fn suspend_now(proxy: &RunningProxy) -> anyhow::Result<()> {
    proxy
        .policy_files()
        .write_through_symlink(&suspended(2).render())?;
    let r = policy::reload(proxy.admin(), Some(TOKEN)).await?;
    anyhow::ensure!(
        r.status == StatusCode::OK && r.json["serial"] == 2,
        "reload: {}",
        r.json
    );
    Ok(())
}

/// Reads one data frame of a streaming response.
async fn one_chunk(body: &mut Incoming) -> anyhow::Result<()> {
    loop {
        let frame = tokio::time::timeout(CUT_BOUND, body.frame())
            .await
            .map_err(|_| anyhow::anyhow!("no chunk"))?
            .ok_or_else(|| anyhow::anyhow!("the body ended"))??;
        if frame.is_data() {
            return Ok(());
        }
    }
}

/// Reads a body to its end and says whether it was cut (ended with an error).
async fn ends_cut(body: Incoming) -> anyhow::Result<bool> {
    let counted = tokio::time::timeout(CUT_BOUND, body::count(body))
        .await
        .map_err(|_| anyhow::anyhow!("the download was not cut"))?;
    Ok(counted.is_err())
}

async fn cut_count(proxy: &RunningProxy, order: &str) -> anyhow::Result<f64> {
    Scrape::fetch(proxy.admin()).await?.get_or_zero(
        "portcullis_policy_connections_cut_total",
        &[("order", order)],
    )
}

async fn cut_once(proxy: &RunningProxy) -> anyhow::Result<()> {
    eventually("the cut is counted", || async {
        let n = cut_count(proxy, "PIRATE-451").await?;
        anyhow::ensure!(n == 1.0, "connections_cut_total = {n}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_keep_alive_connection_gets_200_then_451_across_a_reload() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = on_demand(&origin, &lifted(1)).start().await?;
    let mut conn = H1::connect(proxy.addr()).await?;
    assert_eq!(
        conn.request(get(PIRATE, "/a")).await?.status,
        StatusCode::OK
    );
    suspend_now(&proxy).await?;
    let reply = conn.request(get(PIRATE, "/b")).await?;
    assert_eq!(reply.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    // Still the same connection, still serving other hosts.
    let reply = conn.request(get("shop.example", "/c")).await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(origin.connections(), 1);
    assert_eq!(origin.requests(), 2);
    Ok(())
}

#[tokio::test]
async fn an_http2_connection_gets_200_then_451_across_a_reload() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = on_demand(&origin, &lifted(1)).start().await?;
    let h2 = H2::connect(proxy.addr()).await?;
    assert_eq!(h2.request(get(PIRATE, "/a")).await?.status, StatusCode::OK);
    suspend_now(&proxy).await?;
    let reply = h2.request(get(PIRATE, "/b")).await?;
    assert_eq!(reply.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    let reply = h2.request(get("shop.example", "/c")).await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(origin.requests(), 2);
    Ok(())
}

#[tokio::test]
async fn a_long_download_is_cut_when_a_reload_blocks_its_host() -> anyhow::Result<()> {
    let origin = slow_download().start().await?;
    let proxy = on_demand(&origin, &lifted(1)).start().await?;
    let mut blocked = H1::connect(proxy.addr()).await?;
    let mut other = H1::connect(proxy.addr()).await?;
    let resp = blocked.send(get(PIRATE, "/film.mkv")).await?;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut pirate_body = resp.into_body();
    one_chunk(&mut pirate_body).await?;
    let resp = other.send(get("shop.example", "/catalogue")).await?;
    let mut shop_body = resp.into_body();
    one_chunk(&mut shop_body).await?;
    assert_eq!(policy::describe(proxy.admin()).await?["open_exchanges"], 2);

    suspend_now(&proxy).await?;
    assert!(
        ends_cut(pirate_body).await?,
        "the download must end with an error"
    );
    cut_once(&proxy).await?;
    // The other host's download goes on.
    for _ in 0..3 {
        one_chunk(&mut shop_body).await?;
    }
    drop(shop_body);
    eventually("no exchange is left registered", || async {
        let open = policy::describe(proxy.admin()).await?["open_exchanges"].clone();
        anyhow::ensure!(open == 0, "open_exchanges = {open}");
        Ok(())
    })
    .await?;
    assert!(
        proxy
            .policy_files()
            .audit_lines()?
            .iter()
            .any(|l| l.contains("PIRATE-451")),
        "the cut is audited"
    );
    Ok(())
}

#[tokio::test]
async fn an_http2_stream_is_reset_and_its_connection_carries_on() -> anyhow::Result<()> {
    let origin = slow_download().start().await?;
    let proxy = on_demand(&origin, &lifted(1)).start().await?;
    let h2 = H2::connect(proxy.addr()).await?;
    let mut pirate_body = h2.send(get(PIRATE, "/film.mkv")).await?.into_body();
    let mut shop_body = h2
        .send(get("shop.example", "/catalogue"))
        .await?
        .into_body();
    one_chunk(&mut pirate_body).await?;
    one_chunk(&mut shop_body).await?;

    suspend_now(&proxy).await?;
    assert!(ends_cut(pirate_body).await?, "the stream must be reset");
    cut_once(&proxy).await?;
    for _ in 0..3 {
        one_chunk(&mut shop_body).await?;
    }
    let reply = h2.send(get("shop.example", "/next")).await?;
    assert_eq!(
        reply.status(),
        StatusCode::OK,
        "same connection, new stream"
    );
    let reply = h2.request(get(PIRATE, "/again")).await?;
    assert_eq!(reply.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    Ok(())
}

#[tokio::test]
async fn a_websocket_gets_close_1008_when_a_reload_blocks_its_host() -> anyhow::Result<()> {
    let origin = Origin::websocket_echo().start().await?;
    let proxy = on_demand(&origin, &lifted(1)).start().await?;
    let mut ws = websocket(proxy.addr(), PIRATE, "/chat").await?;
    let mut other = websocket(proxy.addr(), "shop.example", "/chat").await?;
    ws.send(Message::text("before")).await?;
    let back = ws.next().await.ok_or_else(|| anyhow::anyhow!("closed"))??;
    assert_eq!(back, Message::text("before"));

    suspend_now(&proxy).await?;
    let msg = tokio::time::timeout(CUT_BOUND, ws.next())
        .await
        .map_err(|_| anyhow::anyhow!("no close frame after the reload"))?
        .ok_or_else(|| anyhow::anyhow!("the tunnel ended without a close frame"))??;
    let Message::Close(Some(frame)) = msg else {
        anyhow::bail!("expected a close frame, got {msg:?}");
    };
    assert_eq!(frame.code, CloseCode::Policy, "1008 policy violation");
    // Then the connection ends.
    let end = tokio::time::timeout(CUT_BOUND, ws.next()).await?;
    assert!(
        !matches!(end, Some(Ok(Message::Text(_) | Message::Binary(_)))),
        "{end:?}"
    );
    cut_once(&proxy).await?;
    // The other host's WebSocket is untouched.
    other.send(Message::text("still here")).await?;
    let back = other
        .next()
        .await
        .ok_or_else(|| anyhow::anyhow!("closed"))??;
    assert_eq!(back, Message::text("still here"));
    Ok(())
}

#[tokio::test]
async fn a_download_is_cut_when_its_order_takes_effect_by_the_clock() -> anyhow::Result<()> {
    let origin = slow_download().start().await?;
    let starts = rfc3339_from_now(3);
    let starts_at: SystemTime =
        time::OffsetDateTime::parse(&starts, &time::format_description::well_known::Rfc3339)?
            .into();
    let file = PolicyFile::new(1).order(pirate_order().effective_from(&starts));
    let proxy = proxy_with(&origin, &file)
        .policy_key("close_grace", "1s")
        .start()
        .await?;
    let before = SystemTime::now();
    let resp = H1::connect(proxy.addr())
        .await?
        .send(get(PIRATE, "/film.mkv"))
        .await?;
    if before >= starts_at {
        // Too slow a machine to start the download in time: nothing to cut.
        return Ok(());
    }
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        ends_cut(resp.into_body()).await?,
        "cut once the order is effective"
    );
    assert!(SystemTime::now() >= starts_at, "cut before effective_from");
    cut_once(&proxy).await?;
    Ok(())
}

#[tokio::test]
async fn an_answer_still_awaited_from_the_origin_is_not_delivered_once_blocked()
-> anyhow::Result<()> {
    // The request was allowed when it left; the origin answers after a reload blocked the
    // host. The proxy decides it again when the answer arrives: the client must not get the
    // content.
    let gate = portcullis_tests::canned::Gate::new();
    let origin = Origin::gated(&gate).start().await?;
    let proxy = on_demand(&origin, &lifted(1)).start().await?;
    let mut conn = H1::connect(proxy.addr()).await?;
    let pending = tokio::spawn(async move {
        let resp = conn.send(get(PIRATE, "/secret")).await?;
        let status = resp.status();
        let body = body::count(resp.into_body()).await;
        anyhow::Ok((
            status,
            body.map_err(|(n, e)| format!("cut after {n} bytes: {e}")),
        ))
    });
    eventually("the origin holds the request", || async {
        anyhow::ensure!(origin.requests() == 1);
        Ok(())
    })
    .await?;
    suspend_now(&proxy).await?;
    gate.open();
    let outcome = tokio::time::timeout(CUT_BOUND, pending).await??;
    // Cut (the connection closes: what the proxy does today) or refused with a status; never
    // a complete 200.
    if let Ok((status, Ok(n))) = &outcome {
        assert_ne!(
            *status,
            StatusCode::OK,
            "the blocked host's content ({n} bytes) was delivered after the reload"
        );
    }
    cut_once(&proxy).await?;
    Ok(())
}
