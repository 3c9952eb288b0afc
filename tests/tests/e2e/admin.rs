//! The admin listener: health endpoints, the bearer token for anything that is not a read, and
//! `/metrics` moving with traffic and passing `promtool check metrics`.

use http::StatusCode;
use portcullis_tests::client::{H1, get, request};
use portcullis_tests::metrics::no_connection_left_open;
use portcullis_tests::{Origin, Scrape, Site, TestProxy, body, canned, eventually, promtool_check};

use crate::{SHOP, shop};

#[tokio::test]
async fn healthz_and_readyz_answer_200() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    let mut admin = H1::connect(proxy.admin()).await?;
    for path in ["/healthz", "/readyz"] {
        let reply = admin.request(get("admin", path)).await?;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
    let reply = admin.request(get("admin", "/nope")).await?;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn non_read_admin_requests_need_the_bearer_token() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).admin_token("s3cret").start().await?;
    let mut admin = H1::connect(proxy.admin()).await?;
    for (auth, expect_401) in [
        (None, true),
        (Some("Bearer wrong"), true),
        (Some("Basic s3cret"), true),
        (Some("Bearer s3cret"), false),
    ] {
        let mut req = request("POST", "admin", "/metrics");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let reply = admin.request(req.body(body::empty())?).await?;
        if expect_401 {
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{auth:?}");
            assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        } else {
            assert_ne!(reply.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        }
    }
    // Reads need no token.
    assert_eq!(admin.request(get("admin", "/metrics")).await?.status, 200);
    Ok(())
}

#[tokio::test]
async fn without_a_token_file_non_read_admin_requests_are_refused() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin).start().await?;
    let req = request("DELETE", "admin", "/anything")
        .header("authorization", "Bearer anything")
        .body(body::empty())?;
    let reply = H1::connect(proxy.admin()).await?.request(req).await?;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    Ok(())
}

/// The values a test reads before and after traffic.
fn snapshot(s: &Scrape) -> anyhow::Result<[f64; 9]> {
    let shop = [("site", "shop")];
    Ok([
        s.get(
            "portcullis_requests_total",
            &[("site", "shop"), ("status_class", "2xx")],
        )?,
        s.get(
            "portcullis_requests_total",
            &[("site", "shop"), ("status_class", "4xx")],
        )?,
        s.get(
            "portcullis_requests_total",
            &[("site", "down"), ("status_class", "5xx")],
        )?,
        s.get("portcullis_bytes_sent_total", &shop)?,
        s.get("portcullis_bytes_received_total", &shop)?,
        s.get("portcullis_connections_total", &[])?,
        s.get("portcullis_request_duration_seconds_count", &shop)?,
        s.get("portcullis_upstream_duration_seconds_count", &shop)?,
        s.get(
            "portcullis_requests_total",
            &[("site", "_none"), ("status_class", "4xx")],
        )?,
    ])
}

#[tokio::test]
async fn metrics_move_as_requests_flow() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let dead = canned::closed_port()?;
    let proxy = shop(&origin)
        .site(Site::new("down", "down.example").origin_addr(dead))
        .limit("max_request_body", "1KiB")
        .start()
        .await?;
    let before = Scrape::fetch(proxy.admin()).await?;
    assert_eq!(snapshot(&before)?, [0.0; 9], "a fresh proxy starts at zero");
    assert_eq!(
        before.get("portcullis_build_info", &[])?,
        1.0,
        "build_info is always 1"
    );
    assert!(
        before
            .samples
            .iter()
            .any(|s| s.name == "portcullis_build_info"
                && s.labels
                    .iter()
                    .any(|(k, v)| k == "version" && !v.is_empty())),
        "build_info carries the version"
    );

    let mut sent = 0u64;
    let mut received = 0u64;
    let mut client = H1::connect(proxy.addr()).await?;
    for i in 0..3 {
        let payload = format!("payload number {i}");
        received += payload.len() as u64;
        let req = request("POST", SHOP, "/m").body(body::full(payload))?;
        let reply = client.request(req).await?;
        assert_eq!(reply.status, StatusCode::OK);
        sent += reply.body.len() as u64;
    }
    let too_big = request("POST", SHOP, "/m").body(body::full(vec![b'x'; 2048]))?;
    let reply = H1::connect(proxy.addr()).await?.request(too_big).await?;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    sent += reply.body.len() as u64;
    let reply = H1::connect(proxy.addr())
        .await?
        .request(get("down.example", "/"))
        .await?;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let reply = H1::connect(proxy.addr())
        .await?
        .request(get("nobody.example", "/"))
        .await?;
    assert_eq!(reply.status, StatusCode::MISDIRECTED_REQUEST);
    drop(client);

    // Bytes and durations are recorded when each response body ends: wait for the last one.
    let expected = [
        3.0,
        1.0,
        1.0,
        sent as f64,
        received as f64,
        4.0,
        4.0,
        3.0,
        1.0,
    ];
    eventually("metrics reflect the traffic", || async {
        let now = snapshot(&Scrape::fetch(proxy.admin()).await?)?;
        anyhow::ensure!(
            now == expected,
            "\n[2xx, 4xx, down 5xx, bytes_sent, bytes_received, connections_total, \
             request_duration_count, upstream_duration_count, _none 4xx]\n  got  {now:?}\n  want {expected:?}"
        );
        Ok(())
    })
    .await?;
    no_connection_left_open(proxy.admin()).await
}

#[tokio::test]
async fn a_scrape_passes_promtool() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = TestProxy::new()
        .site(Site::new("shop", SHOP).origin(&origin.url()))
        .site(Site::new("down", "down.example").origin_addr(canned::closed_port()?))
        .start()
        .await?;
    for host in [SHOP, "down.example", "nobody.example"] {
        let _ = H1::connect(proxy.addr())
            .await?
            .request(get(host, "/"))
            .await?;
    }
    let scrape = Scrape::fetch(proxy.admin()).await?;
    for family in [
        "portcullis_requests_total",
        "portcullis_request_duration_seconds_bucket",
        "portcullis_upstream_duration_seconds_count",
        "portcullis_upstream_errors_total",
        "portcullis_connections_active",
        "portcullis_connections_total",
        "portcullis_bytes_sent_total",
        "portcullis_bytes_received_total",
        "portcullis_build_info",
    ] {
        assert!(
            scrape.samples.iter().any(|s| s.name == family),
            "{family} missing from the scrape"
        );
    }
    promtool_check(&scrape.text)
}
