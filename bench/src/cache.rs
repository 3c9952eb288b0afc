//! The cache-hit scenarios' warm-up and validity check.
//!
//! Before a cache-hit run the object is fetched through the proxy until the
//! proxy's own hit marker says the answer came from its cache (at most
//! three tries; every answer must be 200 with the origin's exact bytes). The
//! origin logs one line per request under `/cache/` (and logs nothing else),
//! so the lines added during the timed run are the requests the proxy did
//! not answer from its cache. A run is valid only when the marker confirmed
//! a hit and at most one request in a thousand reached the origin; an
//! invalid run is reported as such, never as a figure.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::net::{Response, http_get};
use crate::peers::{ProxyKind, Server, body};

/// At most this share of a run's requests may reach the origin (one in a
/// thousand) for the run to count as cache hits.
pub const MAX_ORIGIN_SHARE: f64 = 0.001;

/// Whether a cache-hit run's requests were hits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheValidity {
    /// The proxy's hit marker on the last warm-up answer, as received.
    pub hit_marker: String,
    /// Whether that marker says "hit".
    pub marker_hit: bool,
    /// Warm-up requests it took (the first normally misses).
    pub warm_up_requests: u32,
    /// Requests that reached the origin's `/cache/` during the timed run.
    pub origin_requests: u64,
    pub valid: bool,
    /// Why the run is invalid, when it is.
    pub invalid_reason: Option<String>,
}

/// What `kind`'s answer says about coming from its cache: (hit?, the header
/// as received).
/// - nginx: `X-Cache-Status: HIT` (`$upstream_cache_status`);
/// - HAProxy: `X-Cache-Status: HIT` (set when `res.cache_hit`);
/// - Varnish: `X-Varnish` with two transaction ids (this request's and the
///   one that stored the object);
/// - Portcullis: RFC 9211 `Cache-Status` with a member carrying the `hit`
///   parameter (`portcullis; hit; ttl=3599`).
pub fn hit_marker(kind: ProxyKind, r: &Response) -> (bool, String) {
    let header = match kind {
        ProxyKind::Nginx | ProxyKind::Haproxy => "x-cache-status",
        ProxyKind::Varnish => "x-varnish",
        ProxyKind::Portcullis => "cache-status",
    };
    let Some(value) = r.header(header) else {
        return (false, format!("no {header} header"));
    };
    let hit = match kind {
        ProxyKind::Nginx | ProxyKind::Haproxy => value.eq_ignore_ascii_case("HIT"),
        ProxyKind::Varnish => value.split_whitespace().count() == 2,
        ProxyKind::Portcullis => cache_status_hit(value),
    };
    (hit, format!("{header}: {value}"))
}

/// Whether an RFC 9211 `Cache-Status` value has a member with the `hit`
/// parameter (`hit` is a boolean parameter: bare, or `hit=?1`).
pub fn cache_status_hit(value: &str) -> bool {
    value.split(',').any(|member| {
        member.split(';').skip(1).any(|param| {
            let param = param.trim();
            param.eq_ignore_ascii_case("hit") || param.eq_ignore_ascii_case("hit=?1")
        })
    })
}

/// Fetches `path` through `server` until its hit marker says hit (at most
/// three requests). Fails when an answer is not 200 with the origin's exact
/// `len` bytes: that is a correctness failure, not a miss. Returns the last
/// marker, whether it said hit, and the requests made.
pub fn warm_up(server: &Server, path: &str, len: usize) -> Result<(String, bool, u32)> {
    let kind = server
        .kind
        .with_context(|| format!("{} is not a proxy", server.name))?;
    let want = body(len);
    let mut last = (false, String::new());
    for n in 1..=3 {
        let r = http_get(server.h1_port, path, Duration::from_secs(10))
            .with_context(|| format!("{}: warm-up GET {path}", server.name))?;
        if r.status != 200 || r.body != want {
            bail!(
                "{}: warm-up GET {path}: status {} with {} body bytes, want 200 and the origin's {len}",
                server.name,
                r.status,
                r.body.len()
            );
        }
        last = hit_marker(kind, &r);
        if last.0 {
            return Ok((last.1, true, n));
        }
    }
    Ok((last.1, false, 3))
}

/// Requests the origin has logged under `/cache/` so far (one line each).
pub fn origin_requests(log: &Path) -> Result<u64> {
    match std::fs::read(log) {
        Ok(bytes) => Ok(bytes.iter().filter(|b| **b == b'\n').count() as u64),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).with_context(|| format!("reading {}", log.display())),
    }
}

/// Judges a run: `served` requests, `origin` of which reached the origin.
pub fn judge(
    hit_marker: String,
    marker_hit: bool,
    warm_up_requests: u32,
    origin: u64,
    served: u64,
) -> CacheValidity {
    let mut reasons = Vec::new();
    if !marker_hit {
        reasons.push(format!(
            "no hit marker after {warm_up_requests} warm-up requests ({hit_marker})"
        ));
    }
    if served == 0 {
        reasons.push("no request served".to_owned());
    } else if origin as f64 > served as f64 * MAX_ORIGIN_SHARE {
        reasons.push(format!(
            "the origin served {origin} of the {served} requests (more than 1 in 1000)"
        ));
    }
    CacheValidity {
        hit_marker,
        marker_hit,
        warm_up_requests,
        origin_requests: origin,
        valid: reasons.is_empty(),
        invalid_reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(headers: &[(&str, &str)]) -> Response {
        Response {
            status: 200,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn hit_markers() {
        let nginx = |v| hit_marker(ProxyKind::Nginx, &response(&[("x-cache-status", v)])).0;
        assert!(nginx("HIT"));
        assert!(!nginx("MISS") && !nginx("EXPIRED") && !nginx("BYPASS"));
        assert!(hit_marker(ProxyKind::Haproxy, &response(&[("x-cache-status", "HIT")])).0);
        assert!(!hit_marker(ProxyKind::Haproxy, &response(&[])).0);
        let varnish = |v| hit_marker(ProxyKind::Varnish, &response(&[("x-varnish", v)])).0;
        assert!(varnish("32770 3"));
        assert!(!varnish("2"));
        let p = |v| hit_marker(ProxyKind::Portcullis, &response(&[("cache-status", v)])).0;
        assert!(p("portcullis; hit; ttl=3599"));
        assert!(p("origin-cache; fwd=uri-miss, portcullis; hit"));
        assert!(p("portcullis;hit=?1"));
        assert!(!p("portcullis; fwd=uri-miss; stored"));
        assert!(!p("portcullis; fwd=stale"));
        assert!(!p("hit"), "a cache named hit is not a hit");
        let (hit, seen) = hit_marker(ProxyKind::Portcullis, &response(&[]));
        assert!(!hit);
        assert_eq!(seen, "no cache-status header");
    }

    #[test]
    fn judging() {
        let ok = judge("x-cache-status: HIT".into(), true, 2, 0, 100_000);
        assert!(ok.valid && ok.invalid_reason.is_none());
        assert!(judge("x".into(), true, 2, 100, 100_000).valid);
        let many = judge("x".into(), true, 2, 101, 100_000);
        assert!(!many.valid);
        assert!(
            many.invalid_reason
                .unwrap_or_default()
                .contains("101 of the 100000")
        );
        let no_marker = judge("no cache-status header".into(), false, 3, 0, 100_000);
        assert!(!no_marker.valid);
        assert!(!judge("x".into(), true, 2, 0, 0).valid);
    }

    #[test]
    fn origin_log_lines() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let log = tmp.path().join("origin-cache.log");
        assert_eq!(origin_requests(&log)?, 0);
        std::fs::write(&log, "/cache/1k\n/cache/1k\n")?;
        assert_eq!(origin_requests(&log)?, 2);
        Ok(())
    }
}
