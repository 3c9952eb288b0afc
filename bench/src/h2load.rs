//! Parsing h2load's report and per-request log, and nghttp's verbose trace
//! (the HTTP/2 correctness check).
//!
//! h2load prints min/max/mean but no percentiles, so it runs with
//! `--log-file` and p50/p99 come from that log's per-request durations.

use anyhow::{Context, Result, bail};

use crate::LoadOutcome;
use crate::stats::percentile;

/// The value before `label` in a comma-separated h2load line, e.g. `done`
/// in `requests: 43943 total, 44583 started, 43943 done, ...`.
fn count_before(line: &str, label: &str) -> Result<u64> {
    line.split(',')
        .find_map(|part| {
            let mut words = part.split_whitespace().rev();
            (words.next() == Some(label)).then(|| words.next())?
        })
        .with_context(|| format!("no {label:?} count in {line:?}"))?
        .parse()
        .with_context(|| format!("bad {label:?} count in {line:?}"))
}

/// `1.25ms`, `708.48ms`, `57us`, `2.00s` → seconds.
fn parse_seconds(s: &str) -> Result<f64> {
    let (num, factor) = if let Some(n) = s.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        bail!("time without a unit: {s:?}");
    };
    Ok(num
        .parse::<f64>()
        .with_context(|| format!("bad time {s:?}"))?
        * factor)
}

/// Checks the TLS version and ALPN protocol h2load reports having
/// negotiated (`TLS Protocol: TLSv1.3`, `Application protocol: h2`).
pub fn ensure_tls(output: &str, version: &str, alpn: &str) -> Result<()> {
    let field = |label: &str| {
        output
            .lines()
            .find_map(|l| l.trim().strip_prefix(label).map(str::trim))
    };
    let got_version = field("TLS Protocol:");
    let got_alpn = field("Application protocol:");
    if got_version != Some(version) || got_alpn != Some(alpn) {
        bail!(
            "h2load negotiated {} with ALPN {}, want {version} and {alpn}",
            got_version.unwrap_or("no TLS"),
            got_alpn.unwrap_or("none")
        );
    }
    Ok(())
}

/// Parses h2load's summary. Latency percentiles are filled in separately
/// from the log file ([`latencies_us`]).
pub fn parse(output: &str) -> Result<LoadOutcome> {
    let mut finished = None;
    let mut requests = None;
    let mut http_errors = None;
    for line in output.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("finished in ") {
            // `finished in 2.00s, 21971.50 req/s, 24.52MB/s`
            let mut parts = rest.split(',').map(str::trim);
            let dur = parse_seconds(parts.next().unwrap_or_default())?;
            let rps: f64 = parts
                .next()
                .and_then(|p| p.strip_suffix(" req/s"))
                .with_context(|| format!("no req/s in {t:?}"))?
                .parse()
                .with_context(|| format!("bad req/s in {t:?}"))?;
            finished = Some((dur, rps));
        } else if t.starts_with("requests:") {
            // `succeeded` counts streams that got a whole response, of any
            // status: the same thing wrk counts as a request.
            let failed = count_before(t, "failed")?
                + count_before(t, "errored")?
                + count_before(t, "timeout")?;
            requests = Some((count_before(t, "succeeded")?, failed));
        } else if t.starts_with("status codes:") {
            // Same meaning as wrk's "Non-2xx or 3xx": 4xx and 5xx.
            http_errors = Some(count_before(t, "4xx")? + count_before(t, "5xx")?);
        }
    }
    let (duration_s, rps) = finished.context("h2load output has no \"finished in\" line")?;
    let (requests, socket_errors) = requests.context("h2load output has no requests: line")?;
    Ok(LoadOutcome {
        requests,
        duration_s,
        rps,
        p50_ms: None,
        p99_ms: None,
        socket_errors,
        http_errors: http_errors.context("h2load output has no status codes: line")?,
    })
}

/// Per-request durations (µs) from h2load's `--log-file`: lines of
/// `start_time<TAB>status<TAB>duration_us`, sorted ascending.
pub fn latencies_us(log: &str) -> Result<Vec<u64>> {
    let mut v = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split('\t')
                .nth(2)
                .and_then(|d| d.trim().parse::<u64>().ok())
                .with_context(|| format!("bad h2load log line {l:?}"))
        })
        .collect::<Result<Vec<u64>>>()?;
    v.sort_unstable();
    Ok(v)
}

/// Fills p50/p99 (ms) from the sorted per-request durations.
pub fn with_percentiles(mut o: LoadOutcome, sorted_us: &[u64]) -> LoadOutcome {
    let ms = |p| percentile(sorted_us, p).map(|us| us as f64 / 1000.0);
    o.p50_ms = ms(50.0);
    o.p99_ms = ms(99.0);
    o
}

/// Status and body length of the one response in an `nghttp -nv` trace.
/// The body is discarded (`-n`), so its length is the sum of the DATA
/// frames' payloads, minus padding when a frame is padded.
pub fn parse_nghttp_trace(trace: &str) -> Result<(u16, u64)> {
    let mut status = None;
    let mut body = 0u64;
    let mut last_was_padded_data = false;
    for line in trace.lines() {
        let t = line.trim();
        if let Some(idx) = t.find(":status: ") {
            let code = &t[idx + ":status: ".len()..];
            status = Some(
                code.trim()
                    .parse::<u16>()
                    .with_context(|| format!("bad :status {code:?}"))?,
            );
        }
        match t.strip_prefix("(padlen=") {
            Some(p) if last_was_padded_data => {
                let pad: u64 = p.trim_end_matches(')').parse().unwrap_or(0);
                // The pad length byte itself is part of the frame too.
                body = body.saturating_sub(pad + 1);
            }
            _ => {}
        }
        last_was_padded_data = false;
        if let Some(rest) = t.split_once("] recv DATA frame <length=").map(|(_, r)| r) {
            let (len, flags) = rest.split_once(',').unwrap_or((rest, ""));
            body += len
                .parse::<u64>()
                .with_context(|| format!("bad DATA length in {t:?}"))?;
            let flags = flags.trim().strip_prefix("flags=0x").unwrap_or("0");
            let flags = u8::from_str_radix(flags.get(..2).unwrap_or("0"), 16).unwrap_or(0);
            last_was_padded_data = flags & 0x08 != 0;
        }
    }
    let status = status.context("no :status in the nghttp trace (no HTTP/2 response)")?;
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real outputs of Debian's h2load/nghttp 1.52.0 on this machine.
    const H2LOAD: &str = include_str!("../fixtures/h2load-nginx.txt");
    const H2LOAD_LOG: &str = include_str!("../fixtures/h2load-log.tsv");
    const NGHTTP_64K: &str = include_str!("../fixtures/nghttp-64k.txt");
    const H2LOAD_TLS: &str = include_str!("../fixtures/h2load-tls-nginx.txt");

    #[test]
    fn h2load_over_tls() -> Result<()> {
        let o = parse(H2LOAD_TLS)?;
        assert!(o.requests > 0 && o.socket_errors == 0);
        ensure_tls(H2LOAD_TLS, "TLSv1.3", "h2")?;
        assert!(ensure_tls(H2LOAD_TLS, "TLSv1.2", "h2").is_err());
        assert!(ensure_tls(H2LOAD_TLS, "TLSv1.3", "http/1.1").is_err());
        // h2c: no TLS lines at all.
        assert!(ensure_tls(H2LOAD, "TLSv1.3", "h2").is_err());
        Ok(())
    }

    #[test]
    fn h2load_summary() -> Result<()> {
        let o = parse(H2LOAD)?;
        assert_eq!(o.requests, 43943);
        assert_eq!(o.duration_s, 2.0);
        assert_eq!(o.rps, 21971.50);
        assert_eq!((o.socket_errors, o.http_errors), (0, 0));
        assert_eq!(o.p50_ms, None);
        Ok(())
    }

    #[test]
    fn h2load_failures_and_missing_lines() -> Result<()> {
        let text = "finished in 1.00s, 10.00 req/s, 1KB/s\n\
                    requests: 12 total, 12 started, 12 done, 10 succeeded, 2 failed, 1 errored, 0 timeout\n\
                    status codes: 7 2xx, 0 3xx, 2 4xx, 1 5xx\n";
        let o = parse(text)?;
        assert_eq!((o.requests, o.socket_errors, o.http_errors), (10, 3, 3));
        assert!(parse("starting benchmark...\n").is_err());
        Ok(())
    }

    #[test]
    fn log_percentiles() -> Result<()> {
        let lat = latencies_us(H2LOAD_LOG)?;
        assert_eq!(lat.len(), 200);
        assert!(lat.windows(2).all(|w| w[0] <= w[1]));
        let o = with_percentiles(parse(H2LOAD)?, &lat);
        let (p50, p99) = (o.p50_ms.unwrap_or(0.0), o.p99_ms.unwrap_or(0.0));
        assert!(p50 > 0.0 && p50 <= p99);
        assert!(latencies_us("1\t200\n").is_err());
        Ok(())
    }

    #[test]
    fn nghttp_trace_status_and_body_length() -> Result<()> {
        assert_eq!(parse_nghttp_trace(NGHTTP_64K)?, (200, 65536));
        let padded = "[  0.001] recv (stream_id=13) :status: 404\n\
                      [  0.001] recv DATA frame <length=20, flags=0x09, stream_id=13>\n\
                      \x20         (padlen=9)\n";
        assert_eq!(parse_nghttp_trace(padded)?, (404, 10));
        let refused = "[ERROR] Could not connect to the address 127.0.0.1\n\
                       Some requests were not processed. total=1, processed=0\n";
        assert!(parse_nghttp_trace(refused).is_err());
        Ok(())
    }
}
