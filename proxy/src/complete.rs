//! The end of one exchange: metrics that need the final byte count and duration, the connection's
//! in-flight count, and the access log line. Recorded exactly once, when the response body ends
//! or is dropped, through [`Completion`]'s `Drop`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::HeaderValue;

use crate::conn::InFlight;
use crate::metrics::SiteMetrics;

/// Fields of the access log line that are known before the response; boxed and only built when
/// the access log is on.
#[derive(Debug)]
pub struct AccessLog {
    pub request_id: HeaderValue,
    pub client: SocketAddr,
    pub method: http::Method,
    pub host: String,
    pub path: String,
    pub status: u16,
    pub upstream: Option<http::uri::Authority>,
    pub site: Arc<str>,
}

#[derive(Debug)]
pub struct Completion {
    metrics: Arc<SiteMetrics>,
    _in_flight: InFlight,
    start: Instant,
    bytes: u64,
    complete: bool,
    log: Option<Box<AccessLog>>,
}

impl Completion {
    pub fn new(
        metrics: Arc<SiteMetrics>,
        in_flight: InFlight,
        start: Instant,
        log: Option<Box<AccessLog>>,
    ) -> Self {
        Completion {
            metrics,
            _in_flight: in_flight,
            start,
            bytes: 0,
            complete: false,
            log,
        }
    }

    pub fn metrics(&self) -> &SiteMetrics {
        &self.metrics
    }

    pub fn add_bytes(&mut self, n: u64) {
        self.bytes += n;
    }

    /// The body reached its end; without this the exchange is logged as aborted.
    pub fn mark_complete(&mut self) {
        self.complete = true;
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        self.metrics.bytes_sent.inc_by(self.bytes);
        self.metrics.request_duration.observe(elapsed.as_secs_f64());
        if let Some(log) = self.log.take() {
            tracing::info!(
                target: "portcullis::access",
                request_id = log.request_id.to_str().unwrap_or("-"),
                client = %log.client,
                method = %log.method,
                host = %log.host,
                path = %log.path,
                status = log.status,
                bytes = self.bytes,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                upstream = log.upstream.as_ref().map_or("-", |a| a.as_str()),
                site = %log.site,
                complete = self.complete,
            );
        }
    }
}
