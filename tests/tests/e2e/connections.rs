//! Connection limits: the slowloris guard (`header_read_timeout`), `idle_timeout` for keep-alive
//! connections, and the `max_connections` cap.
//!
//! Timeouts here are short so the tests are quick; the assertions are about what happens (closed
//! or still open), with generous bounds, never about how long it took.

use std::time::Duration;

use http::StatusCode;
use portcullis_tests::client::{H1, get};
use portcullis_tests::metrics::no_connection_left_open;
use portcullis_tests::{Origin, OriginHandle, RawConn, RunningProxy, Site, TestProxy};

use crate::{SHOP, shop};

/// Far longer than any timeout configured here: "closed within" this means "closed by the
/// proxy", not "closed in time".
const BOUND: Duration = Duration::from_secs(10);

/// How long a slow client waits after connecting before it starts a request head: long enough
/// for the proxy to be waiting on the connection.
const PAUSE: Duration = Duration::from_millis(100);

/// An echo origin behind a proxy whose head deadline (300 ms) is far shorter than its idle
/// timeout (30 s), so whichever closes a connection says which rule fired.
async fn short_head_timeout() -> anyhow::Result<(OriginHandle, RunningProxy)> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin)
        .limit("header_read_timeout", "300ms")
        .limit("idle_timeout", "30s")
        .start()
        .await?;
    Ok((origin, proxy))
}

fn get_raw() -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: {SHOP}\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn half_a_request_head_is_cut_after_header_read_timeout() -> anyhow::Result<()> {
    let (origin, proxy) = short_head_timeout().await?;
    // An idle keep-alive connection, quiet from now on.
    let mut idle = H1::connect(proxy.addr()).await?;
    assert_eq!(
        idle.request(get(SHOP, "/first")).await?.status,
        StatusCode::OK
    );

    let mut slow = RawConn::connect(proxy.addr()).await?;
    // A slowloris connects, waits, then starts a head it never finishes.
    tokio::time::sleep(PAUSE).await;
    slow.write(format!("GET / HTTP/1.1\r\nHost: {SHOP}\r\nX-Slow: ").as_bytes())
        .await?;
    assert!(
        slow.closed_within(BOUND).await?,
        "a half-sent request head must be cut"
    );

    // The idle connection has now been quiet for longer than header_read_timeout: that limit is
    // for heads in progress, not for idle keep-alive connections.
    assert!(
        !idle.is_closed(),
        "the idle keep-alive connection was closed"
    );
    let reply = idle.request(get(SHOP, "/second")).await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        origin.requests(),
        2,
        "the slow head never reached the origin"
    );
    Ok(())
}

#[tokio::test]
async fn a_trickled_request_head_is_cut_too() -> anyhow::Result<()> {
    // One byte every 50 ms keeps the connection busy, so only the head deadline can end it.
    let (origin, proxy) = short_head_timeout().await?;
    let mut slow = RawConn::connect(proxy.addr()).await?;
    tokio::time::sleep(PAUSE).await;
    let head = format!(
        "GET / HTTP/1.1\r\nHost: {SHOP}\r\nX-Slow: {}",
        "z".repeat(300)
    );
    let mut closed = false;
    for byte in head.as_bytes() {
        if slow.write(&[*byte]).await.is_err()
            || slow.closed_within(Duration::from_millis(50)).await?
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a request head trickled for 15 s was never cut");
    assert_eq!(origin.requests(), 0);
    Ok(())
}

#[tokio::test]
async fn half_a_head_on_a_kept_alive_connection_is_cut() -> anyhow::Result<()> {
    // One complete exchange, a pause, then the next head stalls halfway.
    let (origin, proxy) = short_head_timeout().await?;
    let mut conn = RawConn::connect(proxy.addr()).await?;
    conn.write(&get_raw()).await?;
    assert_eq!(conn.read_response().await?.status, 200);
    tokio::time::sleep(PAUSE).await;
    conn.write(format!("GET /next HTTP/1.1\r\nHost: {SHOP}\r\n").as_bytes())
        .await?;
    assert!(
        conn.closed_within(BOUND).await?,
        "a stalled second head on a keep-alive connection must be cut"
    );
    assert_eq!(origin.requests(), 1);
    Ok(())
}

#[tokio::test]
async fn idle_keep_alive_connection_is_closed_after_idle_timeout() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).limit("idle_timeout", "300ms").start().await?;
    let mut conn = RawConn::connect(proxy.addr()).await?;
    conn.write(&get_raw()).await?;
    let resp = conn.read_response().await?;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("connection"),
        None,
        "kept alive after the response"
    );
    assert!(
        conn.closed_within(BOUND).await?,
        "an idle keep-alive connection must be closed after idle_timeout"
    );
    // Closed by the proxy's own bookkeeping, not by a crashed connection task.
    no_connection_left_open(proxy.admin()).await
}

#[tokio::test]
async fn connections_cut_by_the_timeouts_leave_connections_active_at_zero() -> anyhow::Result<()> {
    // A stalled head with idle_timeout close behind header_read_timeout: whichever deadline
    // closes the connection, it must be closed by the proxy's bookkeeping (gauge back to 0),
    // not by a crashed connection task.
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin)
        .limit("header_read_timeout", "300ms")
        .limit("idle_timeout", "1s")
        .start()
        .await?;
    let mut slow = RawConn::connect(proxy.addr()).await?;
    tokio::time::sleep(PAUSE).await;
    slow.write(format!("GET / HTTP/1.1\r\nHost: {SHOP}\r\n").as_bytes())
        .await?;
    let mut idle = RawConn::connect(proxy.addr()).await?;
    idle.write(&get_raw()).await?;
    assert_eq!(idle.read_response().await?.status, 200);
    assert!(slow.closed_within(BOUND).await?, "stalled head never cut");
    assert!(
        idle.closed_within(BOUND).await?,
        "idle connection never closed"
    );
    no_connection_left_open(proxy.admin()).await
}

#[tokio::test]
async fn a_request_waiting_on_its_origin_is_not_idle() -> anyhow::Result<()> {
    // idle_timeout is for connections with nothing to do; one waiting for a slow origin (within
    // response_timeout) is busy.
    let origin = Origin::slow(Duration::from_millis(1500)).start().await?;
    let proxy = TestProxy::new()
        .site(
            Site::new("shop", SHOP)
                .origin(&origin.url())
                .set("response_timeout", "30s"),
        )
        .limit("idle_timeout", "300ms")
        .start()
        .await?;
    let reply = H1::connect(proxy.addr())
        .await?
        .request(get(SHOP, "/report"))
        .await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.echoed()?.path, "/report");
    Ok(())
}

#[tokio::test]
async fn max_connections_caps_concurrent_connections() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).limit("max_connections", "2").start().await?;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = RawConn::connect(proxy.addr()).await?;
        c.write(&get_raw()).await?;
        assert_eq!(c.read_response().await?.status, 200);
        held.push(c);
    }

    // The kernel completes the handshake (backlog), but the proxy does not serve it.
    let mut third = RawConn::connect(proxy.addr()).await?;
    third.write(&get_raw()).await?;
    assert!(
        third
            .read_response_within(Duration::from_millis(500))
            .await?
            .is_none(),
        "a third connection was served while two were held"
    );

    drop(held.pop());
    let resp = third
        .read_response_within(BOUND)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the third connection was never served"))?;
    assert_eq!(resp.status, 200);
    Ok(())
}
