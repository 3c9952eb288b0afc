//! Graceful drain in-process: the shutdown future resolves while a request is in flight. The
//! real binary's SIGTERM path is tested in `proxy/tests/cli.rs`.

use std::time::Duration;

use http::StatusCode;
use portcullis_tests::canned::Gate;
use portcullis_tests::client::{H1, H2, get};
use portcullis_tests::{Origin, eventually};
use tokio::net::TcpStream;

use crate::{SHOP, shop};

#[tokio::test]
async fn drain_finishes_the_in_flight_request_and_refuses_new_connections() -> anyhow::Result<()> {
    let gate = Gate::new();
    let origin = Origin::gated(&gate).start().await?;
    let mut proxy = shop(&origin).grace(Duration::from_secs(20)).start().await?;
    let addr = proxy.addr();
    let admin = proxy.admin();

    // Opened before the drain: see `admin_answers_new_connections_while_draining` for why.
    let mut admin_conn = H1::connect(admin).await?;
    let ready = admin_conn.request(get("admin", "/readyz")).await?;
    assert_eq!(ready.status, StatusCode::OK);

    let in_flight = tokio::spawn(async move {
        let mut client = H1::connect(addr).await?;
        client.request(get(SHOP, "/slow")).await
    });
    eventually("the origin holds the request", || async {
        anyhow::ensure!(origin.requests() == 1);
        Ok(())
    })
    .await?;

    proxy.shutdown();

    let mut ready = admin_conn.request(get("admin", "/readyz")).await?;
    while ready.status == StatusCode::OK {
        // The shutdown signal travels through a task or two.
        tokio::time::sleep(Duration::from_millis(10)).await;
        ready = admin_conn.request(get("admin", "/readyz")).await?;
    }
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "/readyz while draining"
    );
    eventually("new connections are refused", || async {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
            other => anyhow::bail!("connect gave {other:?}"),
        }
    })
    .await?;
    assert!(
        !proxy.is_stopped(),
        "the proxy stopped with a request in flight"
    );
    let health = admin_conn.request(get("admin", "/healthz")).await?;
    assert_eq!(health.status, StatusCode::OK, "admin keeps answering");

    gate.open();
    let reply = in_flight.await??;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.echoed()?.path, "/slow");
    eventually("the proxy stops once drained", || async {
        anyhow::ensure!(proxy.is_stopped());
        Ok(())
    })
    .await?;
    proxy.stopped().await
}

#[tokio::test]
async fn drain_finishes_in_flight_h2_streams() -> anyhow::Result<()> {
    let gate = Gate::new();
    let origin = Origin::gated(&gate).start().await?;
    let mut proxy = shop(&origin).grace(Duration::from_secs(20)).start().await?;
    let client = H2::connect(proxy.addr()).await?;
    // Three streams on one connection wait at the origin while the drain starts.
    let pending = tokio::spawn(async move {
        let streams = (0..3).map(|i| client.request(get(SHOP, &format!("/s{i}"))));
        futures_util::future::join_all(streams)
            .await
            .into_iter()
            .collect::<anyhow::Result<Vec<_>>>()
    });
    eventually("the origin holds three requests", || async {
        anyhow::ensure!(origin.requests() == 3, "{}", origin.requests());
        Ok(())
    })
    .await?;
    proxy.shutdown();
    gate.open();
    for reply in pending.await?? {
        assert_eq!(reply.status, StatusCode::OK);
    }
    eventually("the proxy stops once drained", || async {
        anyhow::ensure!(proxy.is_stopped());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn drain_closes_idle_keep_alive_connections() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let mut proxy = shop(&origin).grace(Duration::from_secs(20)).start().await?;
    let mut idle = H1::connect(proxy.addr()).await?;
    assert_eq!(idle.request(get(SHOP, "/")).await?.status, StatusCode::OK);
    proxy.shutdown();
    eventually("an idle connection does not hold the drain", || async {
        anyhow::ensure!(proxy.is_stopped());
        Ok(())
    })
    .await?;
    eventually("the idle client connection is closed", || async {
        anyhow::ensure!(idle.is_closed());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn admin_answers_new_connections_while_draining() -> anyhow::Result<()> {
    // Load balancers poll /readyz on fresh connections; the drain is exactly when they must get
    // through and read 503.
    let gate = Gate::new();
    let origin = Origin::gated(&gate).start().await?;
    let mut proxy = shop(&origin).grace(Duration::from_secs(20)).start().await?;
    let addr = proxy.addr();
    let in_flight =
        tokio::spawn(async move { H1::connect(addr).await?.request(get(SHOP, "/")).await });
    eventually("the origin holds the request", || async {
        anyhow::ensure!(origin.requests() == 1);
        Ok(())
    })
    .await?;
    proxy.shutdown();
    let admin = proxy.admin();
    let ready = eventually("/readyz on a new admin connection says 503", || async {
        let mut c = H1::connect(admin).await?.timeout(Duration::from_secs(2));
        let r = c.request(get("admin", "/readyz")).await?;
        anyhow::ensure!(r.status == StatusCode::SERVICE_UNAVAILABLE, "{}", r.status);
        Ok(r)
    })
    .await;
    gate.open();
    let _ = in_flight.await;
    ready.map(drop)
}
