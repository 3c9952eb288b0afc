//! What a blocked client gets, action by action (the RFC 7725 page in HTML and problem+json,
//! 403/404, the 307 to the notice, a dropped connection, dry-run), which order wins when
//! several match, the contract file of issue #5, and the admin view of the running table.

use std::time::Duration;

use http::StatusCode;
use portcullis_tests::client::{H1, H2, get, get_once, request};
use portcullis_tests::policy::{self, Order, PolicyFile};
use portcullis_tests::{Origin, RawConn, Scrape, body};

use super::{PIRATE, blocked_count, pirate_order, proxy_with};

/// "Closed within" this means closed by the proxy, not in time.
const BOUND: Duration = Duration::from_secs(10);

fn every_action() -> PolicyFile {
    PolicyFile::new(1)
        .order(pirate_order())
        .order(Order::new("FORBID-403", "forbidden.example").status(403))
        .order(Order::new("HIDE-404", "missing.example").status(404))
        .order(Order::new("MOVE-307", "moved.example").action("redirect"))
        .order(Order::new("DROP-CLOSE", "dropped.example").action("close"))
        .order(Order::new("WATCH-DRY", "watched.example").dry_run())
}

#[tokio::test]
async fn the_451_page_names_the_order_escaped_with_link_and_no_store() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = proxy_with(&origin, &every_action()).start().await?;

    let reply = get_once(proxy.addr(), PIRATE, "/film.mkv").await?;
    assert_eq!(reply.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    assert_eq!(
        reply.header("link"),
        Some("<https://edge.example.net/legal>; rel=\"blocked-by\""),
        "RFC 7725 §4: the operator's own URL"
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(
        reply.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = reply.text();
    for escaped in [
        "Court &lt;of&gt; &quot;Tests&quot; &amp; Co",
        "17 U.S.C. 512(j) &lt;script&gt;alert(1)&lt;/script&gt;",
        "1:26-cv-00142 &amp; &lt;b&gt;",
        "href=\"https://notices.example/o?a=1&amp;b=2\"",
        "<td>pirate.example</td>",
        "<td>US</td>",
    ] {
        assert!(html.contains(escaped), "page lacks {escaped:?}:\n{html}");
    }
    assert!(!html.contains("<script>"), "unescaped field:\n{html}");
    assert!(!html.contains("<b>"), "unescaped field:\n{html}");
    let id = reply.header("x-request-id").expect("a request id");
    assert!(
        html.contains(id),
        "the page quotes request id {id}:\n{html}"
    );

    // The same order for every method, and for a client preferring JSON.
    let post = request("POST", PIRATE, "/upload").body(body::full("data"))?;
    let reply = H1::connect(proxy.addr()).await?.request(post).await?;
    assert_eq!(reply.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    let req = request("GET", "www.pirate.example", "/x")
        .header("accept", "application/problem+json, text/html;q=0.5")
        .body(body::empty())?;
    let reply = H1::connect(proxy.addr()).await?.request(req).await?;
    assert_eq!(reply.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(
        reply.header("link"),
        Some("<https://edge.example.net/legal>; rel=\"blocked-by\"")
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let problem: serde_json::Value = serde_json::from_slice(&reply.body)?;
    assert_eq!(problem["status"], 451);
    assert_eq!(problem["title"], "Unavailable For Legal Reasons");
    assert_eq!(problem["host"], "www.pirate.example");
    assert_eq!(problem["authority"], "Court <of> \"Tests\" & Co");
    assert_eq!(problem["authority_type"], "court");
    assert_eq!(problem["jurisdiction"], "US");
    assert_eq!(problem["reference"], "1:26-cv-00142 & <b>");
    assert_eq!(
        problem["legal_basis"],
        "17 U.S.C. 512(j) <script>alert(1)</script>"
    );
    assert_eq!(problem["notice_url"], "https://notices.example/o?a=1&b=2");
    assert_eq!(problem["order_id"], "PIRATE-451");
    assert_eq!(problem["request_id"].as_str(), reply.header("x-request-id"));
    assert!(
        !String::from_utf8_lossy(&reply.body).contains('<'),
        "problem+json escapes <, > and & so a sniffing browser sees no markup"
    );

    assert_eq!(
        origin.requests(),
        0,
        "a blocked request never reaches the origin"
    );
    let scrape = Scrape::fetch(proxy.admin()).await?;
    assert_eq!(
        blocked_count(&scrape, "PIRATE-451", "unavailable_451")?,
        3.0
    );
    Ok(())
}

#[tokio::test]
async fn status_redirect_close_and_dry_run_do_what_they_say() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = proxy_with(&origin, &every_action()).start().await?;

    let reply = get_once(proxy.addr(), "forbidden.example", "/").await?;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("link"), None, "403 names no blocking entity");
    assert!(!reply.text().contains("FORBID-403"), "{}", reply.text());

    let reply = get_once(proxy.addr(), "missing.example", "/").await?;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.header("cache-control"), Some("no-store"));

    let reply = get_once(proxy.addr(), "moved.example", "/page?x=1").await?;
    assert_eq!(reply.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        reply.header("location"),
        Some("https://notices.example/MOVE-307")
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));

    // close: HTTP/1.1 gets not a byte, the connection just ends.
    let mut raw = RawConn::connect(proxy.addr()).await?;
    raw.write(b"GET / HTTP/1.1\r\nHost: dropped.example\r\n\r\n")
        .await?;
    assert!(
        raw.closed_within(BOUND).await?,
        "close must drop the connection"
    );
    assert!(
        raw.buffered().is_empty(),
        "close sends nothing: {:?}",
        String::from_utf8_lossy(raw.buffered())
    );
    // HTTP/2: the stream is reset, the connection carries on.
    let h2 = H2::connect(proxy.addr()).await?;
    let reset = h2.request(get("dropped.example", "/")).await;
    assert!(reset.is_err(), "close must reset the stream: {reset:?}");
    let reply = h2.request(get("shop.example", "/after")).await?;
    assert_eq!(reply.status, StatusCode::OK, "the connection survives");
    let reply = h2.request(get(PIRATE, "/")).await?;
    assert_eq!(reply.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    assert_eq!(
        reply.header("link"),
        Some("<https://edge.example.net/legal>; rel=\"blocked-by\"")
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));

    // dry_run: served, counted.
    let reply = get_once(proxy.addr(), "watched.example", "/w").await?;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.echoed()?.path, "/w");

    assert_eq!(
        origin.requests(),
        2,
        "only the dry-run and the allowed request reached the origin"
    );
    let scrape = Scrape::fetch(proxy.admin()).await?;
    for (order, action, n) in [
        ("FORBID-403", "status_403", 1.0),
        ("HIDE-404", "status_404", 1.0),
        ("MOVE-307", "redirect", 1.0),
        ("DROP-CLOSE", "close", 2.0),
        ("PIRATE-451", "unavailable_451", 1.0),
    ] {
        assert_eq!(blocked_count(&scrape, order, action)?, n, "{order}");
    }
    assert_eq!(
        scrape.get("portcullis_policy_dry_run_total", &[("order", "WATCH-DRY")])?,
        1.0
    );
    assert_eq!(blocked_count(&scrape, "WATCH-DRY", "unavailable_451")?, 0.0);
    Ok(())
}

#[tokio::test]
async fn a_sealed_order_discloses_nothing() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let file = PolicyFile::new(1).order(
        Order::new("SEALED-1", "pirate.example")
            .authority("Secret Tribunal", "court", "FR")
            .reference("SEALED-REF-77")
            .sealed(),
    );
    let proxy = proxy_with(&origin, &file).start().await?;
    for accept in ["text/html", "application/problem+json"] {
        let req = request("GET", PIRATE, "/")
            .header("accept", accept)
            .body(body::empty())?;
        let reply = H1::connect(proxy.addr()).await?.request(req).await?;
        assert_eq!(reply.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
        assert!(reply.header("link").is_some());
        let text = reply.text();
        for secret in [
            "Secret Tribunal",
            "SEALED-REF-77",
            "SEALED-1",
            "notices.example",
            "FR",
        ] {
            assert!(
                !text.contains(secret),
                "{accept}: {secret} disclosed:\n{text}"
            );
        }
    }
    assert_eq!(origin.requests(), 0);
    Ok(())
}

#[tokio::test]
async fn the_most_restrictive_matching_order_wins() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let file = PolicyFile::new(1)
        .order(Order::new("A-REDIRECT", "strict.example").action("redirect"))
        .order(Order::new("B-403", "strict.example").status(403))
        .order(Order::new("C-451", "strict.example").path("/"))
        .order(
            Order::new("D-DRY", "strict.example")
                .action("close")
                .dry_run(),
        )
        .order(Order::new("E-451", "dropped.example"))
        .order(Order::new("F-CLOSE", "dropped.example").action("close"))
        .order(Order::new("G-404", "missing.example").status(404))
        .order(Order::new("H-REDIRECT", "missing.example").action("redirect"));
    let proxy = proxy_with(&origin, &file).start().await?;

    let reply = get_once(proxy.addr(), "strict.example", "/x").await?;
    assert_eq!(reply.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    let reply = get_once(proxy.addr(), "missing.example", "/").await?;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "status beats redirect");
    let mut raw = RawConn::connect(proxy.addr()).await?;
    raw.write(b"GET / HTTP/1.1\r\nHost: dropped.example\r\n\r\n")
        .await?;
    assert!(raw.closed_within(BOUND).await?, "close beats 451");
    assert!(raw.buffered().is_empty());

    let scrape = Scrape::fetch(proxy.admin()).await?;
    for (order, action, n) in [
        ("C-451", "unavailable_451", 1.0),
        ("A-REDIRECT", "redirect", 0.0),
        ("B-403", "status_403", 0.0),
        ("F-CLOSE", "close", 1.0),
        ("E-451", "unavailable_451", 0.0),
        ("G-404", "status_404", 1.0),
        ("H-REDIRECT", "redirect", 0.0),
    ] {
        assert_eq!(blocked_count(&scrape, order, action)?, n, "{order}");
    }
    // A matching dry-run order is counted even when another blocks.
    assert_eq!(
        scrape.get("portcullis_policy_dry_run_total", &[("order", "D-DRY")])?,
        1.0
    );
    // explain lists every matching id, in file order, and the winner.
    let ex = policy::explain(proxy.admin(), "host=strict.example&path=/x").await?;
    assert_eq!(ex.status, StatusCode::OK);
    assert_eq!(ex.json["verdict"], "block");
    assert_eq!(ex.json["order"], "C-451");
    assert_eq!(ex.json["action"], "unavailable_451");
    assert_eq!(
        ex.json["matched"],
        serde_json::json!(["A-REDIRECT", "B-403", "C-451", "D-DRY"])
    );
    assert_eq!(ex.json["dry_run"], serde_json::json!(["D-DRY"]));
    assert_eq!(origin.requests(), 0);
    Ok(())
}

/// The policy file of issue #5, verbatim: it must load.
const CONTRACT: &str = r#"serial: 2026112601
blocked_by: "https://edge.example.net/legal"
orders:
  - id: "US-SDNY-2026-CV-0142"
    authority: { name: "U.S. District Court for the Southern District of New York", type: court, jurisdiction: "US" }
    legal_basis: "17 U.S.C. 512(j)"
    reference: "1:26-cv-00142"
    issued_at: "2026-11-20T00:00:00Z"
    effective_from: "2026-11-21T00:00:00Z"
    expires_at: null
    notice_url: "https://lumendatabase.org/notices/00000001"
    disclosure: public
    mode: enforce
    scope:
      hosts:
        - { name: "pirate.example", include_subdomains: true }
    action: { type: unavailable_451 }
  - id: "DE-LG-HH-2026-0099"
    authority: { name: "Landgericht Hamburg", type: court, jurisdiction: "DE" }
    legal_basis: "UrhG 97"
    reference: "310 O 99/26"
    issued_at: "2026-11-01T00:00:00Z"
    effective_from: "2026-11-02T00:00:00Z"
    expires_at: "2027-11-02T00:00:00Z"
    notice_url: "https://lumendatabase.org/notices/00000002"
    disclosure: public
    mode: enforce
    scope:
      hosts: [{ name: "files.example", include_subdomains: false }]
      paths: [{ prefix: "/shared/abc123/" }]
      countries: ["DE"]
      on_unknown_country: allow
    action: { type: unavailable_451 }
"#;

#[tokio::test]
async fn the_contract_policy_file_loads_and_is_enforced() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = super::proxy_with(&origin, &PolicyFile::new(0))
        .policy(CONTRACT)
        .start()
        .await?;
    let d = policy::describe(proxy.admin()).await?;
    assert_eq!(d["serial"], 2026112601u64);
    assert_eq!(d["source"], "file");
    assert_eq!(d["last_error"], serde_json::Value::Null);
    let ids: Vec<&str> = d["orders"]
        .as_array()
        .expect("orders")
        .iter()
        .filter_map(|o| o["id"].as_str())
        .collect();
    assert_eq!(ids, ["US-SDNY-2026-CV-0142", "DE-LG-HH-2026-0099"]);

    let reply = get_once(proxy.addr(), "cdn.pirate.example", "/").await;
    // cdn.pirate.example has no site: the order still answers first.
    let reply = reply?;
    assert_eq!(reply.status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    assert!(reply.text().contains("1:26-cv-00142"));
    assert!(
        reply
            .text()
            .contains("U.S. District Court for the Southern District of New York")
    );
    // The geo-scoped order: the client's country is unknown (no GeoIP yet), and the order says
    // `on_unknown_country: allow`.
    let reply = get_once(proxy.addr(), "files.example", "/shared/abc123/x").await?;
    assert_eq!(reply.status, StatusCode::OK);
    // ...while a client in DE would be blocked, elsewhere not.
    let path = "host=files.example&path=/shared/abc123/x";
    let de = policy::explain(proxy.admin(), &format!("{path}&country=DE")).await?;
    assert_eq!(de.json["verdict"], "block", "{}", de.json);
    assert_eq!(de.json["order"], "DE-LG-HH-2026-0099");
    let fr = policy::explain(proxy.admin(), &format!("{path}&country=FR")).await?;
    assert_eq!(fr.json["verdict"], "allow", "{}", fr.json);
    assert_eq!(origin.requests(), 1);
    Ok(())
}

#[tokio::test]
async fn admin_shows_the_running_table_and_explains_decisions() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let file = every_action().serial(42);
    let proxy = proxy_with(&origin, &file).start().await?;
    let d = policy::describe(proxy.admin()).await?;
    assert_eq!(d["serial"], 42);
    let sha = d["sha256"].as_str().expect("sha256");
    assert!(
        sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
        "{sha}"
    );
    let loaded_at = d["loaded_at"].as_str().expect("loaded_at");
    time::OffsetDateTime::parse(loaded_at, &time::format_description::well_known::Rfc3339)?;
    // The short form, for polling: the same header fields, no order list.
    let short = policy::describe_short(proxy.admin()).await?;
    assert_eq!(short["serial"], 42);
    assert_eq!(short["sha256"], d["sha256"]);
    assert_eq!(short["states"], d["states"]);
    assert!(short.get("orders").is_none(), "{short}");
    assert!(d["orders"].as_array().is_some_and(|o| !o.is_empty()), "{d}");
    assert_eq!(d["source"], "file");
    assert_eq!(d["last_error"], serde_json::Value::Null);
    assert_eq!(d["open_exchanges"], 0);
    let orders = d["orders"].as_array().expect("orders");
    assert_eq!(orders.len(), 6);
    let pirate = &orders[0];
    assert_eq!(pirate["id"], "PIRATE-451");
    assert_eq!(pirate["state"], "active");
    assert_eq!(pirate["action"], "unavailable_451");
    assert_eq!(orders[5]["mode"], "dry_run");
    assert_eq!(orders[4]["action"], "close");

    // Blocked, with the reasons.
    let ex = policy::explain(proxy.admin(), "host=WWW.Pirate.Example.&path=%2Fa%3Fq%3D1").await?;
    assert_eq!(ex.status, StatusCode::OK);
    assert_eq!(ex.json["serial"], 42);
    assert_eq!(ex.json["host"]["Ok"], "www.pirate.example", "{}", ex.json);
    assert_eq!(ex.json["verdict"], "block");
    assert_eq!(ex.json["order"], "PIRATE-451");
    assert_eq!(ex.json["action"], "unavailable_451");
    assert_eq!(ex.json["matched"], serde_json::json!(["PIRATE-451"]));
    let considered = ex.json["considered"].as_array().expect("considered");
    assert_eq!(considered.len(), 1, "{}", ex.json);
    assert_eq!(considered[0]["order"], "PIRATE-451");
    assert_eq!(considered[0]["outcome"], "Matched");
    // Allowed.
    let ex = policy::explain(proxy.admin(), "host=notpirate.example&path=/").await?;
    assert_eq!(ex.json["verdict"], "allow", "{}", ex.json);
    assert_eq!(ex.json["order"], serde_json::Value::Null);
    assert_eq!(ex.json["matched"], serde_json::json!([]));
    // An allowed host asked for on a connection whose SNI is suspended.
    let ex = policy::explain(proxy.admin(), "host=shop.example&sni=www.pirate.example").await?;
    assert_eq!(ex.json["verdict"], "misdirected", "{}", ex.json);
    let ex = policy::explain(proxy.admin(), "host=pirate.example&sni=shop.example").await?;
    assert_eq!(ex.json["verdict"], "block", "fronting: {}", ex.json);
    // A bad host, and a missing one.
    let ex = policy::explain(proxy.admin(), "host=user%40pirate.example").await?;
    assert_eq!(ex.json["verdict"], "bad_host", "{}", ex.json);
    let ex = policy::explain(proxy.admin(), "path=/").await?;
    assert_eq!(ex.status, StatusCode::BAD_REQUEST);

    // Metrics of the running table.
    let scrape = Scrape::fetch(proxy.admin()).await?;
    assert_eq!(scrape.get("portcullis_policy_serial", &[])?, 42.0);
    assert_eq!(
        scrape.get("portcullis_policy_orders", &[("state", "active")])?,
        6.0
    );
    assert_eq!(
        scrape.get("portcullis_policy_last_reload_success", &[])?,
        1.0
    );
    assert!(scrape.get("portcullis_policy_last_reload_timestamp_seconds", &[])? > 1.7e9);
    portcullis_tests::promtool_check(&scrape.text)?;

    // The audit log exists and has recorded the start (its format is tested elsewhere).
    let lines = proxy.policy_files().audit_lines()?;
    assert!(!lines.is_empty(), "the audit log is empty");
    // The last good copy is what was loaded.
    assert_eq!(
        std::fs::read_to_string(proxy.policy_files().last_good())?,
        file.render()
    );
    Ok(())
}
