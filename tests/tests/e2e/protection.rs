//! Attack protection end to end (issue #8): clients are told apart by their loopback source
//! address (127.0.0.N; the whole 127.0.0.0/8 is local), or by X-Forwarded-For from a trusted
//! one. Every per-request refusal is checked to have never reached the origin.
//!
//! Assertions are about what happens (429, closed, counted), never about how long it took;
//! waits are [`eventually`] with generous bounds.

mod clients;
mod h2;
mod reload;
mod slow;

use std::net::IpAddr;
use std::time::Duration;

use portcullis_tests::{RunningProxy, Scrape, eventually};

/// Far longer than any timeout configured here: "closed within" this means "closed by the
/// proxy", not "closed in time".
const BOUND: Duration = Duration::from_secs(10);

/// A loopback source address, `127.0.0.{n}`.
fn from(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

/// `portcullis_protection_rejected_total{site, reason}` now.
async fn rejected(proxy: &RunningProxy, site: &str, reason: &str) -> anyhow::Result<f64> {
    Scrape::fetch(proxy.admin()).await?.get_or_zero(
        "portcullis_protection_rejected_total",
        &[("site", site), ("reason", reason)],
    )
}

/// Waits until `portcullis_protection_rejected_total{site, reason}` is at least `n`.
async fn rejected_at_least(
    proxy: &RunningProxy,
    site: &str,
    reason: &str,
    n: f64,
) -> anyhow::Result<f64> {
    eventually(&format!("rejected{{{site},{reason}}} >= {n}"), || async {
        let v = rejected(proxy, site, reason).await?;
        anyhow::ensure!(v >= n, "{v}");
        Ok(v)
    })
    .await
}
