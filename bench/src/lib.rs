//! Portcullis benchmarks: the side-by-side load comparison with nginx and
//! HAProxy (`portcullis-bench compare`), and the criterion micro-benchmarks
//! in `benches/`.
//!
//! The comparison drives real processes on loopback only: an nginx origin,
//! each proxy with one worker pinned to one CPU, and wrk/h2load pinned to the
//! other (and, for TLS handshakes, `openssl s_time`). It does not link the proxy; it runs its binary. It judges no
//! numbers: it measures, checks correctness, and reports with its method.
//!
//! Layout:
//! - [`compare`]: the run (set-up, rounds, report).
//! - [`scenario`]: the scenarios and measuring one run; [`check`]: the
//!   correctness check before timing; [`cache`]: the cache-hit scenarios'
//!   warm-up and hit validity check.
//! - [`peers`]: starting origin and proxies from `bench/peers/*.tmpl`;
//!   [`setup`]: which config (plain, or a policy set-up) each batch gets.
//! - [`policy`]: the legal-order files of the policy scenarios;
//!   [`reload`]: the reload-under-load scenario, driven by [`paced`], the
//!   harness's own paced load generator.
//! - [`procfs`]: /proc parsing; [`net`]: loopback-only client code.
//! - [`wrk`], [`h2load`], [`stime`]: load-generator output parsers.
//! - [`tls`]: the run's certificate for the TLS scenarios.
//! - [`stats`], [`report`], [`svg`], [`output`]: figures and their rendering.
//! - [`tools`], [`cmd`]: external tools and bounded child processes.

use serde::Serialize;

pub mod cache;
pub mod check;
pub mod cmd;
pub mod compare;
pub mod flood;
pub mod h2load;
pub mod net;
pub mod output;
pub mod paced;
pub mod peers;
pub mod policy;
pub mod procfs;
pub mod reload;
pub mod report;
pub mod scenario;
pub mod setup;
pub mod stats;
pub mod stime;
pub mod svg;
pub mod tls;
pub mod tools;
pub mod wrk;

/// What a load generator reports about one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadOutcome {
    /// Responses received (any status): the requests the proxy served.
    pub requests: u64,
    pub duration_s: f64,
    pub rps: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Connect/read/write errors and timeouts (wrk), failed/errored/timed-out
    /// streams (h2load).
    pub socket_errors: u64,
    /// Responses with a 4xx or 5xx status; in `policy-451`, where every
    /// response should be a 451, the responses that were not 4xx/5xx.
    pub http_errors: u64,
}
