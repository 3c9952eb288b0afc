//! Parsing wrk's report (run with `--latency`).

use anyhow::{Context, Result, bail};

use crate::LoadOutcome;

/// wrk prints times with a unit suffix (`289.00us`, `2.82ms`, `1.20s`,
/// `1.00m`); returns milliseconds.
fn parse_time_ms(s: &str) -> Result<f64> {
    let (num, factor) = if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000.0)
    } else {
        bail!("time without a unit: {s:?}");
    };
    let v: f64 = num.parse().with_context(|| format!("bad time {s:?}"))?;
    Ok(v * factor)
}

/// `42186 requests in 2.01s, 51.42MB read` → (42186, 2.01 s).
fn parse_requests_line(line: &str) -> Option<Result<(u64, f64)>> {
    let (count, rest) = line.trim().split_once(" requests in ")?;
    let parse = || -> Result<(u64, f64)> {
        let n: u64 = count
            .parse()
            .with_context(|| format!("bad request count in {line:?}"))?;
        let dur = rest.split(',').next().unwrap_or_default();
        Ok((n, parse_time_ms(dur)? / 1000.0))
    };
    Some(parse())
}

/// `Socket errors: connect 0, read 8, write 0, timeout 0` → 8.
fn parse_socket_errors(rest: &str) -> Result<u64> {
    rest.split(',')
        .map(|part| {
            let n = part.split_whitespace().last().unwrap_or_default();
            n.parse::<u64>()
                .with_context(|| format!("bad socket error count {part:?}"))
        })
        .sum()
}

pub fn parse(output: &str) -> Result<LoadOutcome> {
    let mut requests = None;
    let mut rps = None;
    let (mut p50, mut p99) = (None, None);
    let (mut socket_errors, mut http_errors) = (0, 0);
    let mut in_distribution = false;
    for line in output.lines() {
        let t = line.trim();
        if t == "Latency Distribution" {
            in_distribution = true;
            continue;
        }
        if in_distribution {
            // Lines look like `50%    2.82ms`; the block ends at the first
            // line that is not a percentile.
            if let Some((pct, value)) = t.split_once('%') {
                match pct {
                    "50" => p50 = Some(parse_time_ms(value.trim())?),
                    "99" => p99 = Some(parse_time_ms(value.trim())?),
                    _ => {}
                }
                continue;
            }
            in_distribution = false;
        }
        if let Some(r) = parse_requests_line(t) {
            requests = Some(r?);
        } else if let Some(v) = t.strip_prefix("Requests/sec:") {
            rps = Some(
                v.trim()
                    .parse::<f64>()
                    .with_context(|| format!("bad Requests/sec {v:?}"))?,
            );
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            http_errors = v
                .trim()
                .parse()
                .with_context(|| format!("bad non-2xx count {v:?}"))?;
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            socket_errors = parse_socket_errors(v)?;
        }
    }
    let (requests, duration_s) = requests.context("wrk output has no \"N requests in\" line")?;
    let rps = rps.context("wrk output has no Requests/sec line")?;
    Ok(LoadOutcome {
        requests,
        duration_s,
        rps,
        // wrk prints 0.00us percentiles when nothing completed; that is no
        // latency at all, not a fast one.
        p50_ms: p50.filter(|_| requests > 0),
        p99_ms: p99.filter(|_| requests > 0),
        socket_errors,
        http_errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real outputs of Debian's wrk 4.1.0 on this machine.
    const KEEPALIVE_1K: &str = include_str!("../fixtures/wrk-h1-1k.txt");
    const KEEPALIVE_64K: &str = include_str!("../fixtures/wrk-64k.txt");
    const NEW_CONNECTION: &str = include_str!("../fixtures/wrk-close.txt");
    const NOT_FOUND: &str = include_str!("../fixtures/wrk-404.txt");
    const SOCKET_ERRORS: &str = include_str!("../fixtures/wrk-errors.txt");

    #[test]
    fn keepalive_report() -> Result<()> {
        let o = parse(KEEPALIVE_1K)?;
        assert_eq!(o.requests, 42186);
        assert_eq!(o.duration_s, 2.01);
        assert_eq!(o.rps, 21019.17);
        assert_eq!(o.p50_ms, Some(2.82));
        assert_eq!(o.p99_ms, Some(7.30));
        assert_eq!((o.socket_errors, o.http_errors), (0, 0));

        let o = parse(KEEPALIVE_64K)?;
        assert_eq!(o.requests, 18685);
        assert_eq!(o.p99_ms, Some(11.93));

        let o = parse(NEW_CONNECTION)?;
        assert_eq!((o.requests, o.rps), (17961, 8912.59));
        assert_eq!(o.p50_ms, Some(3.95));
        Ok(())
    }

    #[test]
    fn microsecond_latencies_and_http_errors() -> Result<()> {
        let o = parse(NOT_FOUND)?;
        assert_eq!(o.requests, 23427);
        assert_eq!(o.http_errors, 23427);
        assert!(o.p50_ms.is_some_and(|p| (p - 0.289).abs() < 1e-9));
        assert!(o.p99_ms.is_some_and(|p| (p - 0.734).abs() < 1e-9));
        Ok(())
    }

    #[test]
    fn socket_errors_and_no_requests() -> Result<()> {
        let o = parse(SOCKET_ERRORS)?;
        assert_eq!(o.requests, 0);
        assert_eq!(o.socket_errors, 8);
        assert_eq!(o.p50_ms, None);
        Ok(())
    }

    #[test]
    fn refused_connection_is_an_error() {
        assert!(parse("unable to connect to 127.0.0.1:18099 Connection refused\n").is_err());
    }

    #[test]
    fn time_units() -> Result<()> {
        assert_eq!(parse_time_ms("1.50s")?, 1500.0);
        assert_eq!(parse_time_ms("2.00m")?, 120_000.0);
        assert!(parse_time_ms("12").is_err());
        Ok(())
    }
}
