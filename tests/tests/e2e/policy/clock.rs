//! Time: an order is active when `effective_from <= now < expires_at` and not lifted, decided per
//! request with no reload. Boundaries are checked exactly through `explain?at=`, without
//! sleeping; one test waits (by polling) for an order a few seconds ahead to take effect.

use std::time::SystemTime;

use http::StatusCode;
use portcullis_tests::client::{H1, get, get_once};
use portcullis_tests::policy::{
    self, LONG_AGO, Order, PolicyFile, rfc3339_from_now, rfc3339_shift,
};
use portcullis_tests::{Origin, Scrape, eventually};

use super::proxy_with;

#[tokio::test]
async fn only_orders_in_effect_now_are_enforced() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let starts = rfc3339_from_now(3600);
    let ended = rfc3339_from_now(-3600);
    let file = PolicyFile::new(1)
        .order(Order::new("FUTURE", "future.example").effective_from(&starts))
        .order(Order::new("EXPIRED", "expired.example").expires_at(&ended))
        .order(Order::new("LIFTED", "lifted.example").lifted_at(&rfc3339_from_now(-60)))
        .order(
            Order::new("CURRENT", "current.example")
                .effective_from(&rfc3339_from_now(-3600))
                .expires_at(&rfc3339_from_now(3600)),
        );
    let proxy = proxy_with(&origin, &file).start().await?;
    for (host, status) in [
        ("future.example", 200),
        ("expired.example", 200),
        ("lifted.example", 200),
        ("current.example", 451),
    ] {
        let reply = get_once(proxy.addr(), host, "/").await?;
        assert_eq!(reply.status.as_u16(), status, "{host}");
    }
    assert_eq!(origin.requests(), 3);

    let d = policy::describe(proxy.admin()).await?;
    let states: Vec<(String, String)> = d["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .map(|o| (o["id"].to_string(), o["state"].to_string()))
        .collect();
    let want: Vec<(String, String)> = [
        ("FUTURE", "pending"),
        ("EXPIRED", "expired"),
        ("LIFTED", "lifted"),
        ("CURRENT", "active"),
    ]
    .iter()
    .map(|(i, s)| (format!("{i:?}"), format!("{s:?}")))
    .collect();
    assert_eq!(states, want);
    let scrape = Scrape::fetch(proxy.admin()).await?;
    for state in ["pending", "active", "expired", "lifted"] {
        assert_eq!(
            scrape.get("portcullis_policy_orders", &[("state", state)])?,
            1.0,
            "{state}"
        );
    }

    // The boundaries, exactly: effective_from is inclusive, expires_at exclusive.
    let at = |host: &str, t: &str| format!("host={host}&at={t}");
    for (host, t, verdict) in [
        ("future.example", rfc3339_shift(&starts, -1)?, "allow"),
        ("future.example", starts.clone(), "block"),
        (
            "future.example",
            rfc3339_shift(&starts, 86_400 * 365)?,
            "block",
        ),
        ("expired.example", rfc3339_shift(&ended, -1)?, "block"),
        ("expired.example", ended.clone(), "allow"),
        ("expired.example", rfc3339_shift(LONG_AGO, -1)?, "allow"),
        ("expired.example", LONG_AGO.to_owned(), "block"),
    ] {
        let ex = policy::explain(proxy.admin(), &at(host, &t)).await?;
        assert_eq!(ex.status, StatusCode::OK, "{}", ex.json);
        assert_eq!(ex.json["verdict"], verdict, "{host} at {t}: {}", ex.json);
    }
    let ex = policy::explain(proxy.admin(), "host=future.example&at=tomorrow").await?;
    assert_eq!(ex.status, StatusCode::BAD_REQUEST);
    Ok(())
}

#[tokio::test]
async fn an_order_takes_effect_at_its_time_without_a_reload() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let starts = rfc3339_from_now(3);
    let starts_at: SystemTime =
        time::OffsetDateTime::parse(&starts, &time::format_description::well_known::Rfc3339)?
            .into();
    let file =
        PolicyFile::new(1).order(Order::new("SOON", "future.example").effective_from(&starts));
    let proxy = proxy_with(&origin, &file).start().await?;
    let mut conn = H1::connect(proxy.addr()).await?;
    let before = SystemTime::now();
    let reply = conn.request(get("future.example", "/")).await?;
    if before < starts_at {
        assert_eq!(reply.status, StatusCode::OK, "not yet effective");
    }
    eventually("the order takes effect by the clock", || async {
        let reply = H1::connect(proxy.addr())
            .await?
            .request(get("future.example", "/"))
            .await?;
        anyhow::ensure!(reply.status == 451, "still {}", reply.status);
        Ok(())
    })
    .await?;
    assert!(
        SystemTime::now() >= starts_at,
        "blocked before effective_from"
    );
    // The open keep-alive connection sees it too.
    let reply = conn.request(get("future.example", "/")).await?;
    assert_eq!(reply.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    let scrape = Scrape::fetch(proxy.admin()).await?;
    assert_eq!(
        scrape.get_or_zero("portcullis_policy_reloads_total", &[("result", "success")])?,
        1.0,
        "only the start-up load: no reload was needed"
    );
    eventually("the clock moves the order to active", || async {
        let scrape = Scrape::fetch(proxy.admin()).await?;
        let active = scrape.get("portcullis_policy_orders", &[("state", "active")])?;
        anyhow::ensure!(active == 1.0, "active = {active}");
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn an_order_ends_at_its_expiry_without_a_reload() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let ends = rfc3339_from_now(3);
    let ends_at: SystemTime =
        time::OffsetDateTime::parse(&ends, &time::format_description::well_known::Rfc3339)?.into();
    let file = PolicyFile::new(1).order(Order::new("ENDING", "expired.example").expires_at(&ends));
    let proxy = proxy_with(&origin, &file).start().await?;
    let before = SystemTime::now();
    let reply = get_once(proxy.addr(), "expired.example", "/").await?;
    if before < ends_at {
        assert_eq!(
            reply.status,
            StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            "still in effect"
        );
    }
    eventually("the order ends by the clock", || async {
        let reply = get_once(proxy.addr(), "expired.example", "/").await?;
        anyhow::ensure!(reply.status == 200, "still {}", reply.status);
        Ok(())
    })
    .await?;
    assert!(SystemTime::now() >= ends_at, "lifted before expires_at");
    eventually("the clock moves the order to expired", || async {
        let d = policy::describe(proxy.admin()).await?;
        anyhow::ensure!(d["orders"][0]["state"] == "expired", "{}", d["orders"][0]);
        Ok(())
    })
    .await
}
