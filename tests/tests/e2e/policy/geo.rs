//! Country scope: the client's country from a GeoIP database on the peer address, or from a
//! trusted proxy's country header / X-Forwarded-For, and never from anyone else's headers.
//!
//! The database is the test fixture `tests/fixtures/geo/country-test.mmdb` (written by
//! `portcullis_tests::mmdb`): 127.0.0.2 is DE, 127.0.0.3 US, 127.0.0.1 unknown. Loopback on
//! Linux answers every 127.x address, so a client binds the one it wants to come from.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use portcullis_tests::policy::{Order, PolicyFile};
use portcullis_tests::{Origin, RawConn, TestProxy};

use super::proxy_with;

const DE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const US: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
const UNKNOWN: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

fn fixture() -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/geo/country-test.mmdb");
    format!("\"{}\"", p.display())
}

/// The contract's German order: one path of files.example, for clients in Germany; unknown
/// countries allowed. A second order blocks strict.example wherever the country is unknown.
fn geo_policy() -> PolicyFile {
    PolicyFile::new(1)
        .order(
            Order::new("DE-LG-HH-2026-0099", "files.example")
                .path("/shared/abc123/")
                .countries(&["DE"], "allow"),
        )
        .order(Order::new("STRICT-1", "strict.example").countries(&["DE"], "block"))
}

async fn status_from(from: IpAddr, proxy: std::net::SocketAddr, head: &str) -> anyhow::Result<u16> {
    let mut conn = RawConn::connect_from(from, proxy).await?;
    conn.write(head.as_bytes()).await?;
    Ok(conn.read_response().await?.status)
}

fn get(host: &str, path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
}

#[tokio::test]
async fn the_peer_country_decides_geo_scoped_orders() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy: TestProxy = proxy_with(&origin, &geo_policy()).geoip("mmdb", &fixture());
    let proxy = proxy.start().await?;
    let blocked = get("files.example", "/shared/abc123/file.zip", "");
    assert_eq!(
        status_from(DE, proxy.addr(), &blocked).await?,
        451,
        "from DE"
    );
    assert_eq!(
        status_from(US, proxy.addr(), &blocked).await?,
        200,
        "from US"
    );
    assert_eq!(
        status_from(UNKNOWN, proxy.addr(), &blocked).await?,
        200,
        "unknown country, on_unknown_country: allow"
    );
    let other_path = get("files.example", "/shared/other/", "");
    assert_eq!(status_from(DE, proxy.addr(), &other_path).await?, 200);
    // on_unknown_country: block.
    let strict = get("strict.example", "/", "");
    assert_eq!(status_from(UNKNOWN, proxy.addr(), &strict).await?, 451);
    assert_eq!(status_from(US, proxy.addr(), &strict).await?, 200);
    assert_eq!(status_from(DE, proxy.addr(), &strict).await?, 451);
    Ok(())
}

#[tokio::test]
async fn a_country_header_from_an_untrusted_client_is_ignored_and_stripped() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = proxy_with(&origin, &geo_policy())
        .geoip("mmdb", &fixture())
        .start()
        .await?;
    let blocked = "/shared/abc123/file.zip";
    // A German client claiming to be in the US is still in Germany.
    let spoof = get(
        "files.example",
        blocked,
        "CF-IPCountry: US\r\nX-Forwarded-For: 127.0.0.3\r\n",
    );
    assert_eq!(status_from(DE, proxy.addr(), &spoof).await?, 451);
    // A US client claiming Germany is served, and the origin never sees the claim.
    let claim = get("files.example", "/page", "CF-IPCountry: DE\r\n");
    let mut conn = RawConn::connect_from(US, proxy.addr()).await?;
    conn.write(claim.as_bytes()).await?;
    let reply = conn.read_response().await?;
    assert_eq!(reply.status, 200);
    let seen: portcullis_tests::canned::Echoed = serde_json::from_slice(&reply.body)?;
    assert!(
        !seen
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("cf-ipcountry")),
        "the client's country header reached the origin: {:?}",
        seen.headers
    );
    Ok(())
}

#[tokio::test]
async fn a_trusted_proxy_names_the_country_and_the_client_address() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = proxy_with(&origin, &geo_policy())
        .geoip("mmdb", &fixture())
        .geoip("trusted_proxies", "[\"127.0.0.1/32\"]")
        .geoip("country_header", "\"X-Country\"")
        .start()
        .await?;
    let path = "/shared/abc123/file.zip";
    // The trusted proxy's header wins over its own (unknown) location.
    let header = get("files.example", path, "X-Country: de\r\n");
    assert_eq!(status_from(UNKNOWN, proxy.addr(), &header).await?, 451);
    // Without the header, the right-most untrusted X-Forwarded-For address is the client.
    let xff = get(
        "files.example",
        path,
        "X-Forwarded-For: 127.0.0.3, 127.0.0.2\r\n",
    );
    assert_eq!(
        status_from(UNKNOWN, proxy.addr(), &xff).await?,
        451,
        "127.0.0.2 is DE"
    );
    let xff = get(
        "files.example",
        path,
        "X-Forwarded-For: 127.0.0.2, 127.0.0.3\r\n",
    );
    assert_eq!(
        status_from(UNKNOWN, proxy.addr(), &xff).await?,
        200,
        "127.0.0.3 is US"
    );
    // The trusted proxy's X-Forwarded-For is appended to, not replaced.
    let mut conn = RawConn::connect_from(UNKNOWN, proxy.addr()).await?;
    conn.write(get("shop.example", "/", "X-Forwarded-For: 203.0.113.7\r\n").as_bytes())
        .await?;
    let reply = conn.read_response().await?;
    let seen: portcullis_tests::canned::Echoed = serde_json::from_slice(&reply.body)?;
    let xff: Vec<&str> = seen
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("x-forwarded-for"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(xff, ["203.0.113.7, 127.0.0.1"]);
    // A client that is not trusted (127.0.0.3) cannot use the header.
    let header = get("files.example", path, "X-Country: DE\r\n");
    assert_eq!(status_from(US, proxy.addr(), &header).await?, 200);
    Ok(())
}
