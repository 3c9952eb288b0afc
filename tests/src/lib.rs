//! Integration harness for Portcullis: real servers on `127.0.0.1:0`, driven through builders in
//! the manner of linkerd's `linkerd/app/integration`.
//!
//! What it gives a test:
//! - [`origin`]: an [`Origin`] builder (hyper 1, HTTP/1.1 and optionally h2c) with handler
//!   closures and counters of accepted connections and requests; [`canned`] holds the stock
//!   behaviours (echo, large streamed body, slow, gated, WebSocket echo, reset mid-body, a
//!   closed port).
//! - [`proxy`]: a [`TestProxy`] builder that renders a config YAML into a temp dir and starts the
//!   proxy in-process with a shutdown handle; [`process`] starts the real `portcullis` binary
//!   from the same builder.
//! - [`client`]: HTTP/1.1 and h2c (prior knowledge) clients that keep their connection, so tests
//!   can count and reuse connections; [`raw`]: a byte-level TCP client for malformed requests and
//!   for watching a connection get closed.
//! - [`metrics`]: a `/metrics` scraper that reads sample values by name and labels, and
//!   `promtool check metrics`.
//! - [`tls`]: a certificate directory signed by a test CA, a rustls client trusting it, and
//!   `curl`/`openssl s_client` runners (a missing tool fails, naming its package).
//! - [`policy`]: legal-order policy files built in code, the running proxy's policy files
//!   changed the way deploy tools change them (rename, in place, symlink swap), and the admin
//!   policy endpoints.
//! - [`bundle`]: a [`bundle::Signer`] that turns policy files into signed bundles, and a
//!   tampered bundle.
//! - [`etcd`]: a real etcd on loopback (temporary data dir, free ports), stopped and
//!   restarted on demand, and a relay to it that cuts one node off, for the fleet tests.
//! - [`body`]: bodies generated on the fly (never held in memory) and a byte counter.
//! - [`mmdb`]: a writer of MaxMind DB (`.mmdb`) files, for GeoIP tests and fixtures.
//! - [`cache`]: a [`ScriptedOrigin`] answering what the test scripts per path (and recording
//!   what it was asked), `Cache-Status` and `Age` readers, HTTP dates on the proxy's cache
//!   clock, and the admin purge endpoint.
//! - [`eventually`]: bounded retries for conditions that become true asynchronously.
//!
//! What it does not: assert timing (that is the benchmark's job), or use fixed ports or any
//! host beyond loopback.

pub mod body;
pub mod bundle;
pub mod cache;
pub mod canned;
pub mod client;
pub mod etcd;
pub mod metrics;
pub mod mmdb;
pub mod origin;
pub mod policy;
pub mod process;
pub mod protection;
pub mod proxy;
pub mod raw;
pub mod tls;

use std::future::Future;
use std::time::Duration;

pub use body::{RepeatBody, TestBody};
pub use cache::{Answer, CacheStatus, ScriptedOrigin};
pub use client::{H1, H2, Reply};
pub use etcd::Etcd;
pub use metrics::{Scrape, promtool_check};
pub use origin::{Origin, OriginHandle};
pub use process::ProxyProcess;
pub use proxy::{RunningProxy, Site, TestProxy};
pub use raw::{RawConn, RawResponse};
pub use tls::{TestCerts, TlsClient};

/// How long [`eventually`] keeps trying. Generous: the 2-core CI machine may be busy compiling.
const EVENTUALLY_FOR: Duration = Duration::from_secs(10);
const EVENTUALLY_EVERY: Duration = Duration::from_millis(20);

/// Retries `check` until it returns `Ok`, for at most ten seconds, and returns its value; after
/// that, fails with `what` and the last error.
///
/// For conditions that become true asynchronously (a metric recorded when a body is dropped, a
/// listener closing); the bound is a safety net, not a timing assertion.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let deadline = tokio::time::Instant::now() + EVENTUALLY_FOR;
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(e.context(format!("{what}: still not true after {EVENTUALLY_FOR:?}")));
            }
            Err(_) => tokio::time::sleep(EVENTUALLY_EVERY).await,
        }
    }
}

/// Shows the proxy's logs in test output when `RUST_LOG` is set (e.g. `RUST_LOG=debug`);
/// silent otherwise. Safe to call from every test.
pub fn trace_init() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}
