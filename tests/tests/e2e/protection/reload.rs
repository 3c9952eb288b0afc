//! Settings reload: raising a limit in the file and calling `POST /admin/config/reload` stops
//! the 429s on an already open keep-alive connection; an invalid file is refused with its
//! errors and the running settings stay.

use http::StatusCode;
use portcullis_tests::Origin;
use portcullis_tests::client::{H1, get};
use portcullis_tests::protection::config_reload;

use super::from;
use crate::{SHOP, shop};

const TOKEN: &str = "reload-token";

#[tokio::test]
async fn raising_a_limit_by_reload_stops_429s_on_an_open_connection() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let config = shop(&origin)
        .admin_token(TOKEN)
        .protection("per_client", "{ requests_per_second: 1, burst: 1 }");
    let proxy = config.clone().start().await?;
    let mut conn = H1::connect_from(from(80), proxy.addr()).await?;
    assert_eq!(conn.request(get(SHOP, "/1")).await?.status, StatusCode::OK);
    let mut limited = false;
    for _ in 0..5 {
        limited |= conn.request(get(SHOP, "/2")).await?.status == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(limited, "the small limit applies first");

    // An invalid file: 422 with the errors, the small limit stays.
    let broken = config
        .clone()
        .clear_protection()
        .protection("per_client", "{ requests_per_second: 5, burst: 0 }");
    std::fs::write(proxy.config_path(), broken.render())?;
    let answer = config_reload(proxy.admin(), TOKEN).await?;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.json
    );
    assert!(
        answer.json["errors"].to_string().contains("burst"),
        "{}",
        answer.json
    );
    assert_eq!(
        conn.request(get(SHOP, "/3")).await?.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    // A raised limit applies on the same connection.
    let raised = config
        .clear_protection()
        .protection("per_client", "{ requests_per_second: 10000, burst: 10000 }");
    std::fs::write(proxy.config_path(), raised.render())?;
    let answer = config_reload(proxy.admin(), TOKEN).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.json["result"], "applied");
    assert_eq!(answer.json["restart_needed"], serde_json::json!([]));
    let mut statuses = Vec::new();
    for i in 0..20 {
        statuses.push(
            conn.request(get(SHOP, &format!("/after/{i}")))
                .await?
                .status,
        );
    }
    // The bucket refills at the new rate from where it was: at most the first request waits.
    assert!(
        statuses[1..].iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert!(!conn.is_closed(), "the reload kept the connection");
    Ok(())
}

#[tokio::test]
async fn sighup_reloads_the_protection_settings_of_the_binary() -> anyhow::Result<()> {
    // The in-process proxies of this test binary all listen for SIGHUP: signal a real process.
    let origin = Origin::echo().start().await?;
    let config = shop(&origin).protection("per_client", "{ requests_per_second: 1, burst: 1 }");
    let proc = config.spawn_binary(&[])?;
    let mut conn = H1::connect_from(from(81), proc.addr()).await?;
    assert_eq!(conn.request(get(SHOP, "/1")).await?.status, StatusCode::OK);
    assert_eq!(
        conn.request(get(SHOP, "/2")).await?.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let raised = config
        .clear_protection()
        .protection("per_client", "{ requests_per_second: 10000, burst: 10000 }");
    std::fs::write(proc.config_path(), raised.render())?;
    proc.hangup()?;
    // The signal is handled asynchronously: poll (on the same connection) until it applied.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut statuses = Vec::new();
        for i in 0..5 {
            statuses.push(conn.request(get(SHOP, &format!("/h/{i}"))).await?.status);
        }
        if statuses.iter().all(|s| *s == StatusCode::OK) {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "still limited 10 s after SIGHUP: {statuses:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_changed_listener_section_is_reported_as_needing_a_restart() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let config = shop(&origin).admin_token(TOKEN);
    let proxy = config.clone().start().await?;
    let changed = config.limit("idle_timeout", "5s").access_log();
    std::fs::write(proxy.config_path(), changed.render())?;
    let answer = config_reload(proxy.admin(), TOKEN).await?;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let needed = answer.json["restart_needed"].to_string();
    assert!(
        needed.contains("logging") && needed.contains("limits.idle_timeout"),
        "{needed}"
    );
    Ok(())
}
