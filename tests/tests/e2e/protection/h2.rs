//! HTTP/2 defences: a client that opens and resets streams in a loop is disconnected while
//! other connections keep working; an oversized header list is refused.

use std::time::Duration;

use http::StatusCode;
use portcullis_tests::client::{H1, H2, get, request};
use portcullis_tests::protection::rapid_reset;
use portcullis_tests::{Origin, body};

use super::{BOUND, from, rejected_at_least};
use crate::{SHOP, shop};

#[tokio::test]
async fn a_rapid_reset_client_is_disconnected_while_others_are_served() -> anyhow::Result<()> {
    // A slow origin: every stream is still waiting for it when the client cancels it.
    let origin = Origin::slow(Duration::from_millis(500))
        .h2c()
        .start()
        .await?;
    let proxy = shop(&origin).start().await?;
    let bystander = H2::connect_from(from(71), proxy.addr()).await?;
    let closed = rapid_reset(from(70), proxy.addr(), SHOP, 1000, None, BOUND).await?;
    assert!(closed, "the resetting connection must be closed");
    rejected_at_least(&proxy, "-", "h2_abuse", 1.0).await?;
    // Other connections, HTTP/2 and HTTP/1.1, are untouched.
    let reply = bystander.request(get(SHOP, "/still-here")).await?;
    assert_eq!(reply.status, StatusCode::OK);
    let mut h1 = H1::connect_from(from(72), proxy.addr()).await?;
    assert_eq!(h1.request(get(SHOP, "/h1")).await?.status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn cancelling_accepted_streams_past_the_cap_closes_the_connection() -> anyhow::Result<()> {
    // Each stream reaches its handler (and the origin) before the client cancels it, so h2's
    // own pending-accept limit does not apply: Portcullis's per-connection count does.
    let origin = Origin::slow(Duration::from_secs(5)).h2c().start().await?;
    let proxy = shop(&origin).start().await?;
    let streams = portcullis::protection::H2_RESET_BURST as u32 + 50;
    let pause = Some(Duration::from_millis(10));
    let closed = rapid_reset(from(74), proxy.addr(), SHOP, streams, pause, BOUND).await?;
    assert!(
        closed,
        "the connection must be closed past the cancelled-stream cap"
    );
    rejected_at_least(&proxy, "-", "h2_abuse", 1.0).await?;
    assert!(
        origin.requests() >= 100,
        "the streams were accepted and forwarded before being cancelled: {}",
        origin.requests()
    );
    Ok(())
}

#[tokio::test]
async fn an_oversized_header_list_is_refused_without_the_origin() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = shop(&origin)
        .limit("max_header_list_size", "\"8KiB\"")
        .start()
        .await?;
    let client = H2::connect_from(from(73), proxy.addr()).await?;
    let big = "x".repeat(16 * 1024);
    let req = request("GET", SHOP, "/big")
        .header("x-big", big)
        .body(body::empty())?;
    match client.request(req).await {
        // h2 answers 431 itself, or resets the stream: either way, not served.
        Ok(reply) => assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Err(e) => tracing_free_note(&e),
    }
    assert_eq!(
        origin.requests(),
        0,
        "the oversized request reached the origin"
    );
    // The connection survives a refused stream (RFC 9113 §10.5.1 allows either; h2 keeps it).
    let fresh = H2::connect_from(from(73), proxy.addr()).await?;
    let reply = fresh.request(get(SHOP, "/small")).await?;
    assert_eq!(reply.status, StatusCode::OK);
    Ok(())
}

/// An error from the refused stream is an acceptable outcome; keep it visible when debugging.
fn tracing_free_note(e: &anyhow::Error) {
    eprintln!("oversized header list refused with a stream error: {e:#}");
}
