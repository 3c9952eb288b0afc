//! Prometheus metrics. Every label value is bounded: site names from the config, status classes,
//! error kinds. Per-site handles are resolved once at start-up ([`SiteMetrics`]) so the request
//! path never looks a label up.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The site label for requests that matched no site (malformed or unknown host). Site names may
/// not start with `_`, so this cannot collide with a configured site.
pub const NO_SITE: &str = "_none";

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Why a request to an origin failed; the `kind` label of `portcullis_upstream_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// The TCP connection could not be established (refused, unreachable, connect timeout).
    Connect,
    /// No response headers within `response_timeout`.
    Timeout,
    /// The connection broke after the request was sent (reset, closed mid-response).
    Reset,
    /// The origin answered with something that is not valid HTTP.
    Protocol,
}

impl UpstreamErrorKind {
    const ALL: [UpstreamErrorKind; 4] = [
        UpstreamErrorKind::Connect,
        UpstreamErrorKind::Timeout,
        UpstreamErrorKind::Reset,
        UpstreamErrorKind::Protocol,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Reset => "reset",
            UpstreamErrorKind::Protocol => "protocol",
        }
    }
}

/// How a TLS handshake ended; the `result` label of `portcullis_tls_handshakes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeResult {
    Success,
    /// The client went away, sent something that is not a ClientHello, offered nothing we
    /// support (TLS 1.0/1.1, no common cipher), or failed later in the handshake.
    Error,
    /// The SNI matched no certificate and there is no default: answered `unrecognized_name`.
    UnknownSni,
    /// Not done within `tls.handshake_timeout`.
    Timeout,
    /// A legal order with `refuse_tls` suspends the SNI name: answered `access_denied`.
    Refused,
}

impl HandshakeResult {
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeResult::Success => "success",
            HandshakeResult::Error => "error",
            HandshakeResult::UnknownSni => "unknown_sni",
            HandshakeResult::Timeout => "timeout",
            HandshakeResult::Refused => "refused",
        }
    }
}

/// The negotiated protocol; the `version` label of `portcullis_tls_handshakes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
    /// No version was agreed (every failed handshake).
    Unknown,
}

impl TlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLSv1.2",
            TlsVersion::Tls13 => "TLSv1.3",
            TlsVersion::Unknown => "unknown",
        }
    }
}

/// The TLS families: handshakes, certificate reloads and expiry.
#[derive(Debug, Clone)]
pub struct TlsMetrics {
    cert_expiry: IntGaugeVec,
    reloads: IntCounterVec,
    handshakes: IntCounterVec,
}

impl TlsMetrics {
    /// Exports every handshake and reload series at zero (for configs with TLS listeners).
    pub fn init(&self) {
        for (result, version) in [
            (HandshakeResult::Success, TlsVersion::Tls12),
            (HandshakeResult::Success, TlsVersion::Tls13),
            (HandshakeResult::Error, TlsVersion::Unknown),
            (HandshakeResult::UnknownSni, TlsVersion::Unknown),
            (HandshakeResult::Timeout, TlsVersion::Unknown),
            (HandshakeResult::Refused, TlsVersion::Unknown),
        ] {
            self.handshakes
                .with_label_values(&[result.as_str(), version.as_str()]);
        }
        for result in ["success", "error"] {
            self.reloads.with_label_values(&[result]);
        }
    }

    pub fn handshake(&self, result: HandshakeResult, version: TlsVersion) {
        self.handshakes
            .with_label_values(&[result.as_str(), version.as_str()])
            .inc();
    }

    pub fn reload(&self, ok: bool) {
        let result = if ok { "success" } else { "error" };
        self.reloads.with_label_values(&[result]).inc();
    }

    /// Sets the expiry of each loaded pair (by label) and drops the series of pairs that are gone.
    pub fn set_expiries(&self, pairs: &[(String, i64)], removed: &[String]) {
        for label in removed {
            let _ = self.cert_expiry.remove_label_values(&[label]);
        }
        for (label, not_after) in pairs {
            self.cert_expiry.with_label_values(&[label]).set(*not_after);
        }
    }
}

/// All metric families, registered in one registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    upstream_duration: HistogramVec,
    upstream_errors: IntCounterVec,
    bytes_sent: IntCounterVec,
    bytes_received: IntCounterVec,
    pub connections_active: IntGauge,
    pub connections_total: IntCounter,
    pub tls: TlsMetrics,
    pub policy: PolicyMetrics,
    pub cache: CacheMetrics,
    pub protection: ProtectionMetrics,
}

/// Why protection refused something; the `reason` label of
/// `portcullis_protection_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Over the client's request rate: 429.
    Rate,
    /// Over the client's concurrent connections: closed at accept.
    Connections,
    /// On the deny list: closed at accept, or 403.
    Deny,
    /// Over `shed.max_inflight_requests`: 503.
    Shed,
    /// A request head or body too slow: cut.
    Slow,
    /// HTTP/2 abuse (rapid resets, excessive load): the connection closed.
    H2Abuse,
}

impl Rejected {
    pub const ALL: [Rejected; 6] = [
        Rejected::Rate,
        Rejected::Connections,
        Rejected::Deny,
        Rejected::Shed,
        Rejected::Slow,
        Rejected::H2Abuse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rejected::Rate => "rate",
            Rejected::Connections => "connections",
            Rejected::Deny => "deny",
            Rejected::Shed => "shed",
            Rejected::Slow => "slow",
            Rejected::H2Abuse => "h2_abuse",
        }
    }
}

/// The site label of rejections made before any site is known (at accept, in a request head,
/// on an HTTP/2 connection).
pub const NO_SITE_YET: &str = "-";

/// The protection families.
#[derive(Debug, Clone)]
pub struct ProtectionMetrics {
    rejected: IntCounterVec,
    /// `portcullis_protection_tracked_clients`.
    pub tracked: IntGauge,
    /// The [`NO_SITE_YET`] series, by [`Rejected::ALL`] order.
    pub unsited: [IntCounter; 6],
}

impl ProtectionMetrics {
    /// One site's rejection series, in [`Rejected::ALL`] order.
    pub fn site(&self, site: &str) -> [IntCounter; 6] {
        Rejected::ALL.map(|r| self.rejected.with_label_values(&[site, r.as_str()]))
    }

    /// Counts a rejection made before any site was known.
    pub fn unsited(&self, reason: Rejected) {
        self.unsited[reason as usize].inc();
    }
}

/// How the cache answered a request; the `result` label of `portcullis_cache_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    /// Served from storage, fresh (or from another request's fill).
    Hit,
    /// Forwarded: nothing stored, no matching variant, or new content after validation.
    Miss,
    /// A stale stored response served (stale-while-revalidate, stale-if-error, max-stale).
    Stale,
    /// Validated with the origin (304) and served from storage.
    Revalidated,
    /// Not a cacheable request (unsafe method, Range): forwarded around the cache.
    Bypass,
}

impl CacheResult {
    pub const ALL: [CacheResult; 5] = [
        CacheResult::Hit,
        CacheResult::Miss,
        CacheResult::Stale,
        CacheResult::Revalidated,
        CacheResult::Bypass,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CacheResult::Hit => "hit",
            CacheResult::Miss => "miss",
            CacheResult::Stale => "stale",
            CacheResult::Revalidated => "revalidated",
            CacheResult::Bypass => "bypass",
        }
    }
}

/// The cache families.
#[derive(Debug, Clone)]
pub struct CacheMetrics {
    requests: IntCounterVec,
    pub bytes: IntGauge,
    pub objects: IntGauge,
    pub evictions: IntCounter,
    pub coalesced: IntCounter,
}

impl CacheMetrics {
    /// One site's `portcullis_cache_requests_total` series, in [`CacheResult::ALL`] order
    /// (resolved, so exported at zero, for cache-enabled sites only).
    pub fn site(&self, site: &str) -> [IntCounter; 5] {
        CacheResult::ALL.map(|r| self.requests.with_label_values(&[site, r.as_str()]))
    }
}

/// The legal-order families. Labelled by order id and action only: never by client, host or
/// path (POLICY-SPEC.md).
#[derive(Debug, Clone)]
pub struct PolicyMetrics {
    pub serial: IntGauge,
    reloads: IntCounterVec,
    pub last_reload_success: IntGauge,
    pub last_reload_timestamp: Gauge,
    orders: IntGaugeVec,
    blocked: IntCounterVec,
    dry_run: IntCounterVec,
    cut: IntCounterVec,
    bundles_refused: IntCounterVec,
    /// 1 while the policy source is reachable: the etcd watch is established (always 1 with
    /// `policy.source: file`).
    pub source_connected: IntGauge,
    /// Unix time of the last successful exchange with etcd.
    pub source_last_contact: Gauge,
    /// Times the etcd watch was re-established (after an error, a closed stream or a
    /// compaction).
    pub watch_restarts: IntCounter,
}

/// Reload outcomes, the `result` label of `portcullis_policy_reloads_total`.
pub const RELOAD_RESULTS: [&str; 4] = ["success", "invalid", "refused", "error"];

impl PolicyMetrics {
    /// Exports the reload series at zero.
    pub fn init(&self) {
        for r in RELOAD_RESULTS {
            self.reloads.with_label_values(&[r]);
        }
        for r in crate::bundle::REFUSAL_REASONS {
            self.bundles_refused.with_label_values(&[r]);
        }
    }

    /// Counts one refused bundle; `reason` is one of [`crate::bundle::REFUSAL_REASONS`].
    pub fn bundle_refused(&self, reason: &str) {
        self.bundles_refused.with_label_values(&[reason]).inc();
    }

    /// Counts one reload attempt; `result` is one of [`RELOAD_RESULTS`].
    pub fn reload(&self, result: &str, now_secs: f64) {
        self.reloads.with_label_values(&[result]).inc();
        self.last_reload_success.set(i64::from(result == "success"));
        self.last_reload_timestamp.set(now_secs);
    }

    /// Sets `portcullis_policy_orders{state}` from `(state, count)` pairs (every state given).
    pub fn set_orders(&self, counts: &[(&str, i64)]) {
        for (state, n) in counts {
            self.orders.with_label_values(&[state]).set(*n);
        }
    }

    pub fn blocked(&self, order: &str, action: &str) {
        self.blocked.with_label_values(&[order, action]).inc();
    }

    pub fn dry_run(&self, order: &str) {
        self.dry_run.with_label_values(&[order]).inc();
    }

    pub fn cut(&self, order: &str, n: u64) {
        self.cut.with_label_values(&[order]).inc_by(n);
    }
}

/// Label handles of one site, resolved once.
#[derive(Debug, Clone)]
pub struct SiteMetrics {
    requests: [IntCounter; 5],
    pub request_duration: Histogram,
    pub upstream_duration: Histogram,
    upstream_errors: [IntCounter; 4],
    pub bytes_sent: IntCounter,
    pub bytes_received: IntCounter,
    /// `portcullis_protection_rejected_total` of this site, by [`Rejected::ALL`] order.
    pub rejected: [IntCounter; 6],
}

impl SiteMetrics {
    pub fn count_rejected(&self, reason: Rejected) {
        self.rejected[reason as usize].inc();
    }

    pub fn count_status(&self, status: http::StatusCode) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.requests[class].inc();
    }

    pub fn count_upstream_error(&self, kind: UpstreamErrorKind) {
        let i = UpstreamErrorKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        self.upstream_errors[i].inc();
    }
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Metric names and label sets are compile-time constants; failure here is a programming
    // error caught by every test, never a runtime condition.
    r.unwrap_or_else(|e| panic!("metric definition is invalid: {e}"))
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0, 60.0,
        ];
        let requests = must(IntCounterVec::new(
            Opts::new(
                "portcullis_requests_total",
                "Requests answered, by site and status class.",
            ),
            &["site", "status_class"],
        ));
        let request_duration = must(HistogramVec::new(
            HistogramOpts::new(
                "portcullis_request_duration_seconds",
                "Time from request head received to response body finished.",
            )
            .buckets(buckets.clone()),
            &["site"],
        ));
        let upstream_duration = must(HistogramVec::new(
            HistogramOpts::new(
                "portcullis_upstream_duration_seconds",
                "Time from sending a request to an origin to its response headers.",
            )
            .buckets(buckets),
            &["site"],
        ));
        let upstream_errors = must(IntCounterVec::new(
            Opts::new(
                "portcullis_upstream_errors_total",
                "Failed exchanges with origins, by site and kind (connect, timeout, reset, protocol).",
            ),
            &["site", "kind"],
        ));
        let bytes_sent = must(IntCounterVec::new(
            Opts::new(
                "portcullis_bytes_sent_total",
                "Response body bytes sent to clients.",
            ),
            &["site"],
        ));
        let bytes_received = must(IntCounterVec::new(
            Opts::new(
                "portcullis_bytes_received_total",
                "Request body bytes received from clients.",
            ),
            &["site"],
        ));
        let connections_active = must(IntGauge::new(
            "portcullis_connections_active",
            "Client connections open now.",
        ));
        let connections_total = must(IntCounter::new(
            "portcullis_connections_total",
            "Client connections accepted.",
        ));
        let tls = TlsMetrics {
            cert_expiry: must(IntGaugeVec::new(
                Opts::new(
                    "portcullis_tls_cert_expiry_timestamp_seconds",
                    "notAfter of each loaded certificate pair, unix seconds, by pair label.",
                ),
                &["name"],
            )),
            reloads: must(IntCounterVec::new(
                Opts::new(
                    "portcullis_tls_reloads_total",
                    "Certificate directory reloads (watch or SIGHUP), by result; an error keeps the last good set.",
                ),
                &["result"],
            )),
            handshakes: must(IntCounterVec::new(
                Opts::new(
                    "portcullis_tls_handshakes_total",
                    "TLS handshakes on client connections, by result and negotiated version.",
                ),
                &["result", "version"],
            )),
        };
        let policy = PolicyMetrics {
            serial: must(IntGauge::new(
                "portcullis_policy_serial",
                "Serial of the legal-order policy being enforced (0 before one is loaded).",
            )),
            reloads: must(IntCounterVec::new(
                Opts::new(
                    "portcullis_policy_reloads_total",
                    "Policy reload attempts by result: success, invalid (the file has errors), refused (serial rule), error (cannot read).",
                ),
                &["result"],
            )),
            last_reload_success: must(IntGauge::new(
                "portcullis_policy_last_reload_success",
                "1 if the last policy reload attempt applied (or changed nothing), 0 if it failed.",
            )),
            last_reload_timestamp: must(Gauge::new(
                "portcullis_policy_last_reload_timestamp_seconds",
                "Unix time of the last policy reload attempt.",
            )),
            orders: must(IntGaugeVec::new(
                Opts::new(
                    "portcullis_policy_orders",
                    "Orders in the running policy by state (pending, active, expired, lifted).",
                ),
                &["state"],
            )),
            blocked: must(IntCounterVec::new(
                Opts::new(
                    "portcullis_policy_blocked_requests_total",
                    "Requests refused by a legal order, by winning order and action.",
                ),
                &["order", "action"],
            )),
            dry_run: must(IntCounterVec::new(
                Opts::new(
                    "portcullis_policy_dry_run_total",
                    "Requests a dry_run order would have blocked, by order.",
                ),
                &["order"],
            )),
            cut: must(IntCounterVec::new(
                Opts::new(
                    "portcullis_policy_connections_cut_total",
                    "Open exchanges (downloads, WebSockets, HTTP/2 streams) cut because an order newly blocked them, by order.",
                ),
                &["order"],
            )),
            bundles_refused: must(IntCounterVec::new(
                Opts::new(
                    "portcullis_policy_bundles_refused_total",
                    "Policy bundles refused (policy.trusted_keys set), by reason: unsigned, bad_signature, untrusted_key, malformed, serial (lower or unchanged serial).",
                ),
                &["reason"],
            )),
            source_connected: must(IntGauge::new(
                "portcullis_policy_source_connected",
                "1 while the policy source is reachable (policy.source: etcd: the watch is established; always 1 for a file).",
            )),
            source_last_contact: must(Gauge::new(
                "portcullis_policy_source_last_contact_timestamp_seconds",
                "Unix time of the last successful exchange with etcd (0 with policy.source: file).",
            )),
            watch_restarts: must(IntCounter::new(
                "portcullis_policy_watch_restarts_total",
                "Times the etcd watch of the policy was re-established (error, closed stream, compaction).",
            )),
        };
        let cache = CacheMetrics {
            requests: must(IntCounterVec::new(
                Opts::new(
                    "portcullis_cache_requests_total",
                    "Requests to cache-enabled sites by how the cache answered: hit, miss, stale, revalidated, bypass.",
                ),
                &["site", "result"],
            )),
            bytes: must(IntGauge::new(
                "portcullis_cache_bytes",
                "Bytes held by stored responses (bodies and headers).",
            )),
            objects: must(IntGauge::new(
                "portcullis_cache_objects",
                "Stored responses (each Vary variant counts once).",
            )),
            evictions: must(IntCounter::new(
                "portcullis_cache_evictions_total",
                "Stored responses evicted to stay within cache.max_size.",
            )),
            coalesced: must(IntCounter::new(
                "portcullis_cache_coalesced_total",
                "Requests that waited for another request's origin fetch of the same URL instead of making their own.",
            )),
        };
        let rejected = must(IntCounterVec::new(
            Opts::new(
                "portcullis_protection_rejected_total",
                "Requests and connections refused by attack protection, by site (\"-\" before a site is known) and reason: rate, connections, deny, shed, slow, h2_abuse.",
            ),
            &["site", "reason"],
        ));
        let protection = ProtectionMetrics {
            unsited: Rejected::ALL.map(|r| rejected.with_label_values(&[NO_SITE_YET, r.as_str()])),
            rejected,
            tracked: must(IntGauge::new(
                "portcullis_protection_tracked_clients",
                "Clients (and per-site buckets) whose rate and connection state is held, bounded by protection.max_tracked_clients.",
            )),
        };
        let build_info = must(IntGaugeVec::new(
            Opts::new("portcullis_build_info", "Build information; always 1."),
            &["version"],
        ));
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(request_duration.clone()),
            Box::new(upstream_duration.clone()),
            Box::new(upstream_errors.clone()),
            Box::new(bytes_sent.clone()),
            Box::new(bytes_received.clone()),
            Box::new(connections_active.clone()),
            Box::new(connections_total.clone()),
            Box::new(tls.cert_expiry.clone()),
            Box::new(tls.reloads.clone()),
            Box::new(tls.handshakes.clone()),
            Box::new(policy.serial.clone()),
            Box::new(policy.reloads.clone()),
            Box::new(policy.last_reload_success.clone()),
            Box::new(policy.last_reload_timestamp.clone()),
            Box::new(policy.orders.clone()),
            Box::new(policy.blocked.clone()),
            Box::new(policy.dry_run.clone()),
            Box::new(policy.cut.clone()),
            Box::new(policy.bundles_refused.clone()),
            Box::new(policy.source_connected.clone()),
            Box::new(policy.source_last_contact.clone()),
            Box::new(policy.watch_restarts.clone()),
            Box::new(cache.requests.clone()),
            Box::new(cache.bytes.clone()),
            Box::new(cache.objects.clone()),
            Box::new(cache.evictions.clone()),
            Box::new(cache.coalesced.clone()),
            Box::new(protection.rejected.clone()),
            Box::new(protection.tracked.clone()),
            Box::new(build_info),
        ] {
            must(registry.register(c));
        }
        Metrics {
            registry,
            requests,
            request_duration,
            upstream_duration,
            upstream_errors,
            bytes_sent,
            bytes_received,
            connections_active,
            connections_total,
            tls,
            policy,
            cache,
            protection,
        }
    }

    /// Resolves (and thereby exports at zero) every series of one site.
    pub fn site(&self, site: &str) -> SiteMetrics {
        SiteMetrics {
            requests: STATUS_CLASSES.map(|c| self.requests.with_label_values(&[site, c])),
            request_duration: self.request_duration.with_label_values(&[site]),
            upstream_duration: self.upstream_duration.with_label_values(&[site]),
            upstream_errors: UpstreamErrorKind::ALL
                .map(|k| self.upstream_errors.with_label_values(&[site, k.as_str()])),
            bytes_sent: self.bytes_sent.with_label_values(&[site]),
            bytes_received: self.bytes_received.with_label_values(&[site]),
            rejected: self.protection.site(site),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail for well-formed metric families.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
