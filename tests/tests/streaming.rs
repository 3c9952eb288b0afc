//! Bodies stream through the real binary with bounded memory: a large upload and a large
//! download, generated on the fly and counted on arrival, then the proxy's peak resident memory
//! (`VmHWM`) is held to a bound far below the transferred size.
//!
//! Its own test binary so nothing else competes for the two cores while it runs. The size is
//! 1 GiB each way; `PORTCULLIS_STREAM_MIB` overrides it (e.g. `=64` for a quick local run).

use anyhow::Context as _;
use http::StatusCode;
use portcullis_tests::client::{H1, get, request};
use portcullis_tests::{Origin, RepeatBody, Site, TestProxy, body};

/// Peak memory the proxy may reach while moving the bodies: buffers per connection, not bodies.
const MAX_HWM_KIB: u64 = 64 << 10;
const CHUNK: usize = 64 << 10;

fn size() -> anyhow::Result<u64> {
    let mib = match std::env::var("PORTCULLIS_STREAM_MIB") {
        Ok(v) => v.parse::<u64>().context("PORTCULLIS_STREAM_MIB")?,
        Err(_) => 1024,
    };
    Ok(mib << 20)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gigabyte_up_and_down_with_bounded_proxy_memory() -> anyhow::Result<()> {
    let size = size()?;
    let down = Origin::fixed(size, CHUNK).start().await?;
    let up = Origin::count_upload().start().await?;
    let proxy = TestProxy::new()
        .site(Site::new("down", "down.example").origin(&down.url()))
        .site(Site::new("up", "up.example").origin(&up.url()))
        .limit("max_request_body", "0")
        .spawn_binary(&[])?;
    let start_kib = proxy.proc_status_kib("VmHWM")?;

    let mut client = H1::connect(proxy.addr()).await?;
    let req = request("POST", "up.example", "/upload")
        .body(RepeatBody::new(size, CHUNK).chunked().boxed())?;
    let reply = client.request(req).await?;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), size.to_string(), "bytes the origin received");

    let resp = client.send(get("down.example", "/download")).await?;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers().get("content-length").map(|v| v.as_bytes()),
        Some(size.to_string().as_bytes())
    );
    let got = body::count(resp.into_body())
        .await
        .map_err(|(n, e)| anyhow::anyhow!("download cut after {n} of {size} bytes: {e}"))?;
    assert_eq!(got, size, "bytes the client received");

    let hwm_kib = proxy.proc_status_kib("VmHWM")?;
    println!(
        "proxy VmHWM {hwm_kib} KiB (at start {start_kib} KiB) after {} MiB each way",
        size >> 20
    );
    assert!(
        hwm_kib < MAX_HWM_KIB,
        "the proxy peaked at {hwm_kib} KiB resident (started at {start_kib} KiB) while moving \
         {} MiB each way; the bound is {MAX_HWM_KIB} KiB",
        size >> 20
    );
    Ok(())
}
