//! Large and unknown-length responses: over `max_object_size` they stream to the client as they
//! arrive and are not stored; of unknown length but under the limit they are stored.
//!
//! Streaming is proven without timing: the origin sends a first piece and then nothing until
//! the test, having received that piece through the proxy, releases the rest. A proxy that
//! buffered the whole response first would never deliver the piece (the test then fails after
//! [`FIRST_BYTES_BOUND`], a safety net and not a measurement).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::StatusCode;
use http_body_util::BodyExt;
use portcullis_tests::body;
use portcullis_tests::cache::{Answer, CacheStatus, Release, generated_bytes};
use portcullis_tests::client::{H1, get};

use super::{Cached, assert_hit, assert_not_stored, assert_stored};
use crate::SHOP;

const FIRST_BYTES_BOUND: Duration = Duration::from_secs(10);

/// The first piece the origin sends before waiting.
const FIRST: &[u8] = &[b'F'; 4096];

/// What the origin sends after the release: with FIRST, four times the 64 KiB limit.
const REST: u64 = 256 * 1024 - 4096;

/// A proxy whose cache stores objects of at most 64 KiB.
async fn small_objects() -> anyhow::Result<Cached> {
    Cached::with(|p| p.cache("max_object_size", "\"64KiB\"")).await
}

/// GETs `/big`, proves its first piece arrives while the origin still holds the rest, then
/// reads the rest and checks the length.
async fn streams_through(c: &Cached, length: bool) -> anyhow::Result<()> {
    let release = Release::new();
    let finished = Arc::new(AtomicBool::new(false));
    c.origin.on(
        "/big",
        Answer::streamed(FIRST, &release, REST, length, &finished).cache_control("max-age=600"),
    );
    let mut client = H1::connect(c.proxy.addr()).await?;
    let resp = client.send(get(SHOP, "/big")).await?;
    assert_eq!(resp.status(), StatusCode::OK);
    if length {
        // Known too large from its Content-Length: the head can already say so.
        if let Some(s) = CacheStatus::from_headers(resp.headers()) {
            assert!(
                s.fwd_is("uri-miss") && !s.stored && s.detail_is("too-large"),
                "`{}`",
                s.raw
            );
        }
    }
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while got.len() < FIRST.len() {
        let frame = tokio::time::timeout(FIRST_BYTES_BOUND, body.frame())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "the first {} bytes never arrived while the origin held the rest: \
                     the proxy buffered the response (got {} bytes)",
                    FIRST.len(),
                    got.len()
                )
            })?
            .ok_or_else(|| anyhow::anyhow!("the body ended after {} bytes", got.len()))??;
        if let Ok(data) = frame.into_data() {
            got.extend_from_slice(&data);
        }
    }
    assert_eq!(&got[..FIRST.len()], FIRST);
    assert!(
        !finished.load(Ordering::SeqCst),
        "the origin had not finished when the client had the first bytes"
    );
    release.open();
    let rest = body::count(body)
        .await
        .map_err(|(n, e)| anyhow::anyhow!("the body broke after {n} more bytes: {e}"))?;
    assert_eq!(got.len() as u64 + rest, FIRST.len() as u64 + REST);
    Ok(())
}

#[tokio::test]
async fn a_response_over_max_object_size_streams_and_is_not_stored() -> anyhow::Result<()> {
    let c = small_objects().await?;
    streams_through(&c, true).await?;
    // Not stored: the next request goes to the origin again.
    let again = c.get("/big").await?;
    assert_eq!(again.body.len() as u64, FIRST.len() as u64 + REST);
    assert_not_stored(&again, "too-large");
    assert_eq!(c.origin.requests("/big"), 2);
    Ok(())
}

#[tokio::test]
async fn a_chunked_response_over_max_object_size_streams_and_is_not_stored() -> anyhow::Result<()> {
    let c = small_objects().await?;
    streams_through(&c, false).await?;
    let again = c.get("/big").await?;
    assert_eq!(again.body.len() as u64, FIRST.len() as u64 + REST);
    // Not stored. (No Cache-Status check: without a length, the head leaves before the size
    // is known.)
    assert_eq!(c.origin.requests("/big"), 2);
    Ok(())
}

#[tokio::test]
async fn a_chunked_response_under_max_object_size_is_stored() -> anyhow::Result<()> {
    let c = small_objects().await?;
    let content = generated_bytes(30_000, 1000);
    c.origin.on(
        "/chunked",
        Answer::ok(content.clone())
            .cache_control("max-age=600")
            .chunked(),
    );
    // The first reply's head leaves before the end (and so the size) is known: only the next
    // request tells whether it was stored.
    let first = c.get("/chunked").await?;
    assert_eq!(first.body, content);
    let second = c.get("/chunked").await?;
    assert_eq!(second.body, content);
    assert_hit(&second);
    assert_eq!(c.origin.requests("/chunked"), 1);
    Ok(())
}

#[tokio::test]
async fn a_response_under_max_object_size_is_stored() -> anyhow::Result<()> {
    // 60 KiB under a 64 KiB limit: stored whether or not the limit counts the headers too.
    let c = small_objects().await?;
    c.origin.on(
        "/fits",
        Answer::generated(60 * 1024, 4096, true).cache_control("max-age=600"),
    );
    assert_stored(&c.get("/fits").await?, "uri-miss");
    let hit = c.get("/fits").await?;
    assert_eq!(hit.body.len(), 60 * 1024);
    assert_eq!(hit.body, generated_bytes(60 * 1024, 4096));
    assert_hit(&hit);
    assert_eq!(c.origin.requests("/fits"), 1);
    Ok(())
}

/// Bodies being stored count against `max_size` while they stream: with a 64 KiB cache, a
/// second 40 KiB response arriving while the first is still being filled streams through
/// unstored (`detail=busy`) instead of taking memory the cache does not have.
#[tokio::test]
async fn fills_in_progress_are_bounded_by_max_size() -> anyhow::Result<()> {
    let c = Cached::with(|p| {
        p.cache("max_size", "\"64KiB\"")
            .cache("max_object_size", "\"48KiB\"")
    })
    .await?;
    let release = Release::new();
    let piece: &[u8] = &[b'p'; 1024];
    let rest = 40 * 1024 - piece.len() as u64;
    for path in ["/one", "/two"] {
        let finished = Arc::new(AtomicBool::new(false));
        c.origin.on(
            path,
            Answer::streamed(piece, &release, rest, true, &finished).cache_control("max-age=600"),
        );
    }
    let mut first = H1::connect(c.proxy.addr()).await?;
    let one = first.send(get(SHOP, "/one")).await?;
    let status = CacheStatus::from_headers(one.headers()).expect("Cache-Status on /one");
    assert!(status.stored, "the first fill has room: `{}`", status.raw);
    let mut second = H1::connect(c.proxy.addr()).await?;
    let two = second.send(get(SHOP, "/two")).await?;
    let status = CacheStatus::from_headers(two.headers()).expect("Cache-Status on /two");
    assert!(
        !status.stored && status.detail_is("busy"),
        "40 KiB more while 40 KiB are being filled does not fit 64 KiB: `{}`",
        status.raw
    );
    release.open();
    for (path, resp) in [("/one", one), ("/two", two)] {
        let n = body::count(resp.into_body())
            .await
            .map_err(|(n, e)| anyhow::anyhow!("{path}: the body broke after {n} bytes: {e}"))?;
        assert_eq!(n, 40 * 1024, "{path} arrives whole either way");
    }
    assert_hit(&c.get("/one").await?);
    let again = c.get("/two").await?;
    assert_stored(&again, "uri-miss");
    assert_eq!(c.origin.requests("/one"), 1);
    assert_eq!(c.origin.requests("/two"), 2);
    Ok(())
}
