//! The scenarios, and measuring one run of one scenario against one proxy.
//!
//! A load run samples CPU `proxy_cpu`'s jiffies from /proc/stat and the
//! proxy's own utime+stime right before the load generator starts and right
//! after it exits; the key figure is the core's busy time over the run
//! divided by the requests served.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::cache::{CacheValidity, judge, origin_requests, warm_up};
use crate::cmd::{Finished, run_bounded_all};
use crate::net::{BENCH_HOST, ensure_loopback_url, open_idle};
use crate::peers::Server;
use crate::procfs::{self, CpuTimes, Quiet};
use crate::tools::{self, Tools};
use crate::{LoadOutcome, h2load, stime, wrk};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    KeepAlive1k,
    KeepAlive64k,
    NewConnection1k,
    H2c1k,
    TlsKeepAlive1k,
    TlsKeepAlive64k,
    TlsH2_1k,
    TlsHandshakeFull,
    TlsHandshakeResumed,
    /// Keep-alive requests for a host a legal order suspends: the proxy
    /// answers 451 itself.
    Policy451,
    /// `h1-keepalive-1k` through Portcullis with serial 1 and no orders:
    /// the baseline of [`Scenario::PolicyTable1m`].
    PolicyEmptyTable,
    /// `h1-keepalive-1k` through Portcullis with a 1,000,000-host table
    /// loaded (the forwarded host is not in it).
    PolicyTable1m,
    /// A 1,000,000-host reload under steady paced load (see `reload`).
    PolicyReload1m,
    /// Keep-alive requests for an object the proxy holds in its cache
    /// (see `cache`): 1 KiB, 64 KiB, 1 MiB.
    CacheHit1k,
    CacheHit64k,
    CacheHit1m,
    Idle,
}

/// The request (with a 1 KiB body) each handshake scenario sends on each
/// connection. s_time sends `GET <page> HTTP/1.0\r\n\r\n` and no Host
/// header, and Portcullis routes by host; the page string closes the request
/// line and adds the Host header, and s_time's own ` HTTP/1.0` lands in a
/// filler header. Read to the end of the connection (HTTP/1.0).
pub const STIME_PAGE: &str = "/1k HTTP/1.0\r\nHost: bench.example\r\nX-Bench:";

impl Scenario {
    pub const ALL: [Scenario; 17] = [
        Scenario::KeepAlive1k,
        Scenario::KeepAlive64k,
        Scenario::NewConnection1k,
        Scenario::H2c1k,
        Scenario::TlsKeepAlive1k,
        Scenario::TlsKeepAlive64k,
        Scenario::TlsH2_1k,
        Scenario::TlsHandshakeFull,
        Scenario::TlsHandshakeResumed,
        Scenario::Policy451,
        Scenario::PolicyEmptyTable,
        Scenario::PolicyTable1m,
        Scenario::PolicyReload1m,
        Scenario::CacheHit1k,
        Scenario::CacheHit64k,
        Scenario::CacheHit1m,
        Scenario::Idle,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::KeepAlive1k => "h1-keepalive-1k",
            Scenario::KeepAlive64k => "h1-keepalive-64k",
            Scenario::NewConnection1k => "h1-new-conn-1k",
            Scenario::H2c1k => "h2c-1k",
            Scenario::TlsKeepAlive1k => "tls-keepalive-1k",
            Scenario::TlsKeepAlive64k => "tls-keepalive-64k",
            Scenario::TlsH2_1k => "tls-h2-1k",
            Scenario::TlsHandshakeFull => "tls-handshake-full",
            Scenario::TlsHandshakeResumed => "tls-handshake-resumed",
            Scenario::Policy451 => "policy-451",
            Scenario::PolicyEmptyTable => "policy-empty-table",
            Scenario::PolicyTable1m => "policy-1m-table",
            Scenario::PolicyReload1m => "policy-reload-1m",
            Scenario::CacheHit1k => "cache-hit-1k",
            Scenario::CacheHit64k => "cache-hit-64k",
            Scenario::CacheHit1m => "cache-hit-1m",
            Scenario::Idle => "idle-conns",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Scenario::KeepAlive1k => "HTTP/1.1 keep-alive, 1 KiB body (wrk -t1 -c64)",
            Scenario::KeepAlive64k => "HTTP/1.1 keep-alive, 64 KiB body (wrk -t1 -c64)",
            Scenario::NewConnection1k => {
                "HTTP/1.1, a new connection per request (wrk -t1 -c64, Connection: close), 1 KiB"
            }
            Scenario::H2c1k => "HTTP/2 cleartext, prior knowledge, 1 KiB (h2load -t1 -c64 -m10)",
            Scenario::TlsKeepAlive1k => "HTTPS (TLS 1.3) keep-alive, 1 KiB body (wrk -t1 -c64)",
            Scenario::TlsKeepAlive64k => "HTTPS (TLS 1.3) keep-alive, 64 KiB body (wrk -t1 -c64)",
            Scenario::TlsH2_1k => "HTTP/2 over TLS 1.3 (ALPN h2), 1 KiB (h2load -t1 -c64 -m10)",
            Scenario::TlsHandshakeFull => {
                "full TLS 1.3 handshake (ECDSA P-256, X25519) + one 1 KiB HTTP/1.0 request per \
                 connection (openssl s_time -new); figure per handshake"
            }
            Scenario::TlsHandshakeResumed => {
                "resumed TLS 1.3 handshake (session ticket) + one 1 KiB HTTP/1.0 request per \
                 connection (openssl s_time -reuse); figure per handshake"
            }
            Scenario::Policy451 => {
                "HTTP/1.1 keep-alive to a host suspended by a legal order: the proxy answers 451 \
                 itself (wrk -t1 -c64)"
            }
            Scenario::PolicyEmptyTable => {
                "HTTP/1.1 keep-alive 1 KiB forwarded, policy with no orders (serial 1) (wrk -t1 -c64)"
            }
            Scenario::PolicyTable1m => {
                "HTTP/1.1 keep-alive 1 KiB forwarded, 1,000,000-host policy loaded, the host not \
                 in it (wrk -t1 -c64)"
            }
            Scenario::PolicyReload1m => {
                "1,000,000-host policy reload under steady paced load: time to apply, failed \
                 requests, p99 during the swap vs an idle-table run"
            }
            Scenario::CacheHit1k => {
                "HTTP/1.1 keep-alive cache hits, 1 KiB object (wrk -t1 -c64); run valid only \
                 if (near) no request reached the origin"
            }
            Scenario::CacheHit64k => {
                "HTTP/1.1 keep-alive cache hits, 64 KiB object (wrk -t1 -c64); run valid only \
                 if (near) no request reached the origin"
            }
            Scenario::CacheHit1m => {
                "HTTP/1.1 keep-alive cache hits, 1 MiB object (wrk -t1 -c64); run valid only \
                 if (near) no request reached the origin"
            }
            Scenario::Idle => "idle keep-alive connections held open: memory per connection",
        }
    }

    pub fn parse(s: &str) -> Result<Scenario> {
        let names: Vec<&str> = Self::ALL.iter().map(|s| s.name()).collect();
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s.trim())
            .with_context(|| format!("unknown scenario {s:?} (known: {})", names.join(", ")))
    }

    pub fn path(self) -> &'static str {
        match self {
            Scenario::KeepAlive64k | Scenario::TlsKeepAlive64k => "/64k",
            Scenario::CacheHit1k => "/cache/1k",
            Scenario::CacheHit64k => "/cache/64k",
            Scenario::CacheHit1m => "/cache/1m",
            _ => "/1k",
        }
    }

    /// The cache-hit scenarios: their runs are checked to be hits.
    pub fn is_cache(self) -> bool {
        matches!(
            self,
            Scenario::CacheHit1k | Scenario::CacheHit64k | Scenario::CacheHit1m
        )
    }

    /// The size of the body a cache-hit scenario's object has.
    pub fn cache_object_len(self) -> Option<usize> {
        match self {
            Scenario::CacheHit1k => Some(1024),
            Scenario::CacheHit64k => Some(64 * 1024),
            Scenario::CacheHit1m => Some(1024 * 1024),
            _ => None,
        }
    }

    /// Whether the scenario goes through the proxies' TLS listener.
    pub fn is_tls(self) -> bool {
        matches!(
            self,
            Scenario::TlsKeepAlive1k
                | Scenario::TlsKeepAlive64k
                | Scenario::TlsH2_1k
                | Scenario::TlsHandshakeFull
                | Scenario::TlsHandshakeResumed
        )
    }

    /// The handshake scenarios count connections (each a handshake plus one
    /// request), not requests on long-lived connections.
    pub fn is_handshake(self) -> bool {
        matches!(
            self,
            Scenario::TlsHandshakeFull | Scenario::TlsHandshakeResumed
        )
    }

    /// What the key figure is per: "request" or "handshake".
    pub fn unit(self) -> &'static str {
        if self.is_handshake() {
            "handshake"
        } else {
            "request"
        }
    }

    /// Load generated by wrk.
    pub fn uses_wrk(self) -> bool {
        matches!(
            self,
            Scenario::KeepAlive1k
                | Scenario::KeepAlive64k
                | Scenario::NewConnection1k
                | Scenario::TlsKeepAlive1k
                | Scenario::TlsKeepAlive64k
                | Scenario::Policy451
                | Scenario::PolicyEmptyTable
                | Scenario::PolicyTable1m
                | Scenario::CacheHit1k
                | Scenario::CacheHit64k
                | Scenario::CacheHit1m
        )
    }

    /// The host wrk's requests name.
    fn host(self) -> &'static str {
        if self == Scenario::Policy451 {
            crate::policy::SUSPENDED_HOST
        } else {
            BENCH_HOST
        }
    }

    /// Load generated by h2load.
    pub fn uses_h2load(self) -> bool {
        matches!(self, Scenario::H2c1k | Scenario::TlsH2_1k)
    }
}

/// Settings shared by every run.
#[derive(Debug)]
pub struct RunCtx<'a> {
    pub tools: &'a Tools,
    pub scratch: &'a Path,
    pub duration_s: u64,
    pub connections: u32,
    pub h2_streams: u32,
    pub proxy_cpu: usize,
    pub load_cpu: usize,
    pub idle_connections: usize,
    pub ticks_per_s: u64,
    pub quiet_threshold_pct: f64,
    pub quiet_max_wait: Duration,
    /// Tries per run when the machine is noisy (see `compare`).
    pub max_attempts: usize,
    /// `openssl s_time` processes run side by side in a handshake scenario.
    pub tls_clients: u32,
    /// The load and timeline of `policy-reload-1m`.
    pub reload: crate::reload::ReloadPlan,
    /// The origin's log of requests under `/cache/` (one line each).
    pub origin_cache_log: std::path::PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadMetrics {
    #[serde(flatten)]
    pub outcome: LoadOutcome,
    /// Busy and total jiffies of the proxy core over the run.
    pub core_busy_jiffies: u64,
    pub core_total_jiffies: u64,
    /// The key figure: proxy-core busy time ÷ requests served.
    pub core_us_per_req: Option<f64>,
    /// Share of the core's busy time spent in irq + softirq (loopback TCP
    /// work mostly), charged to no process.
    pub core_softirq_pct: f64,
    /// Share of the core's time spent running tasks other than the proxy:
    /// another process sharing the pinned core, which inflates the figure.
    pub core_foreign_pct: f64,
    /// The proxy process's own utime+stime (softirq work is not in it).
    pub proxy_cpu_pct: f64,
    pub proxy_us_per_req: Option<f64>,
    pub peak_rss_kib: Option<u64>,
    /// Cache-hit scenarios: whether the requests were hits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheValidity>,
}

impl LoadMetrics {
    /// False for a cache-hit run whose requests were not (all) hits: its
    /// figure is not a cache hit's cost and is left out of every summary.
    pub fn valid(&self) -> bool {
        self.cache.as_ref().is_none_or(|c| c.valid)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct IdleMetrics {
    pub requested: usize,
    pub opened: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub rss_before_kib: u64,
    pub rss_idle_kib: u64,
    pub kib_per_conn: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Measured {
    Load(LoadMetrics),
    Idle(IdleMetrics),
    Reload(Box<crate::reload::ReloadMetrics>),
}

/// The load generator's command lines for `scenario` against `server`: one,
/// or `ctx.tls_clients` s_time processes for a handshake scenario.
pub fn commands(ctx: &RunCtx<'_>, server: &Server, scenario: Scenario) -> Result<Vec<Command>> {
    let duration = ctx.duration_s.to_string();
    let conns = ctx.connections.to_string();
    let pinned = || -> Result<Command> {
        let mut cmd = Command::new(ctx.tools.path(tools::TASKSET)?);
        cmd.arg("-c").arg(ctx.load_cpu.to_string());
        Ok(cmd)
    };
    let tls_port = || {
        server
            .tls_port
            .with_context(|| format!("{} has no TLS listener", server.name))
    };
    if scenario.is_handshake() {
        let addr = format!("127.0.0.1:{}", tls_port()?);
        ensure_loopback_url(&format!("https://{addr}/"))?;
        let mode = if scenario == Scenario::TlsHandshakeFull {
            "-new"
        } else {
            "-reuse"
        };
        let mut cmds = Vec::new();
        for _ in 0..ctx.tls_clients.max(1) {
            let mut cmd = pinned()?;
            cmd.arg(ctx.tools.path(tools::OPENSSL)?)
                .args(["s_time", "-connect", &addr, mode, "-tls1_3", "-time"])
                .arg(&duration)
                .args(["-www", STIME_PAGE]);
            cmds.push(cmd);
        }
        return Ok(cmds);
    }
    let mut cmd = pinned()?;
    let url = match scenario {
        Scenario::H2c1k | Scenario::TlsH2_1k => {
            let url = if scenario == Scenario::TlsH2_1k {
                format!("https://127.0.0.1:{}{}", tls_port()?, scenario.path())
            } else {
                format!("http://127.0.0.1:{}{}", server.h2_port, scenario.path())
            };
            cmd.arg(ctx.tools.path(tools::H2LOAD)?)
                .args(["-t1", "-c", &conns, "-m"])
                .arg(ctx.h2_streams.to_string())
                .args(["-D", &duration])
                .arg(format!("--header=:authority: {BENCH_HOST}"))
                .arg(format!("--log-file={}", h2_log(ctx).display()));
            if scenario == Scenario::TlsH2_1k {
                // ALPN offers h2 alone: an HTTP/1.1 fallback would not be h2.
                cmd.arg("--npn-list=h2");
            }
            url
        }
        Scenario::KeepAlive1k
        | Scenario::KeepAlive64k
        | Scenario::NewConnection1k
        | Scenario::TlsKeepAlive1k
        | Scenario::TlsKeepAlive64k
        | Scenario::Policy451
        | Scenario::PolicyEmptyTable
        | Scenario::PolicyTable1m
        | Scenario::CacheHit1k
        | Scenario::CacheHit64k
        | Scenario::CacheHit1m => {
            let url = if scenario.is_tls() {
                format!("https://127.0.0.1:{}{}", tls_port()?, scenario.path())
            } else {
                format!("http://127.0.0.1:{}{}", server.h1_port, scenario.path())
            };
            cmd.arg(ctx.tools.path(tools::WRK)?)
                .args(["-t1", "-c", &conns, "-d"])
                .arg(format!("{duration}s"))
                .arg("--latency")
                .arg("-H")
                .arg(format!("Host: {}", scenario.host()));
            if scenario == Scenario::NewConnection1k {
                cmd.args(["-H", "Connection: close"]);
            }
            url
        }
        Scenario::TlsHandshakeFull
        | Scenario::TlsHandshakeResumed
        | Scenario::PolicyReload1m
        | Scenario::Idle => {
            bail!("{} has no single load generator", scenario.name())
        }
    };
    ensure_loopback_url(&url)?;
    cmd.arg(url);
    Ok(vec![cmd])
}

fn h2_log(ctx: &RunCtx<'_>) -> std::path::PathBuf {
    ctx.scratch.join("h2load-requests.log")
}

pub fn wait_quiet(ctx: &RunCtx<'_>) -> Result<Quiet> {
    procfs::wait_quiet(
        ctx.quiet_threshold_pct,
        Duration::from_millis(500),
        ctx.quiet_max_wait,
    )
}

fn core_times(cpu: usize) -> Result<CpuTimes> {
    procfs::read_stat()?
        .cpu(cpu)
        .with_context(|| format!("/proc/stat has no line for CPU {cpu}"))
}

/// Runs one load scenario against `server` and measures it.
pub fn measure_load(ctx: &RunCtx<'_>, server: &Server, scenario: Scenario) -> Result<LoadMetrics> {
    let cmds = commands(ctx, server, scenario)?;
    // Cache hits: the object must be in the proxy's cache before timing.
    let warmed = match scenario.cache_object_len() {
        Some(len) => Some(warm_up(server, scenario.path(), len)?),
        None => None,
    };
    let origin_before = origin_requests(&ctx.origin_cache_log)?;
    // A reset failure only makes the peak a lifetime peak; say so, go on.
    if let Err(e) = procfs::reset_peak_rss(server.pid) {
        eprintln!("warning: {e:#}");
    }
    // s_time stops at whole seconds by time(2): up to a second late.
    let limit = Duration::from_secs(ctx.duration_s + 10);
    let core_before = core_times(ctx.proxy_cpu)?;
    let proxy_before = procfs::read_pid_stat(server.pid)?.cpu_ticks;
    let started = Instant::now();
    let finished = run_bounded_all(cmds, limit, ctx.scratch, scenario.name())?;
    let wall_s = started.elapsed().as_secs_f64();
    let core_after = core_times(ctx.proxy_cpu)?;
    let proxy_after = procfs::read_pid_stat(server.pid)
        .with_context(|| format!("{} died during {}", server.name, scenario.name()))?
        .cpu_ticks;
    let peak_rss_kib = procfs::read_status_kib(server.pid, "VmHWM").ok();
    let origin_after = origin_requests(&ctx.origin_cache_log)?;

    let outcome = if scenario.is_handshake() {
        handshake_outcome(scenario, &finished, wall_s)?
    } else {
        let [finished] = &finished[..] else {
            bail!("{}: expected one load generator", scenario.name());
        };
        if scenario.uses_h2load() {
            let outcome = h2load::parse(&finished.stdout).with_context(|| {
                format!("h2load output:\n{}{}", finished.stdout, finished.stderr)
            })?;
            if scenario == Scenario::TlsH2_1k {
                h2load::ensure_tls(&finished.stdout, "TLSv1.3", "h2")?;
            }
            let log = std::fs::read_to_string(h2_log(ctx)).context("reading h2load log")?;
            // The log can be tens of MB; do not keep it around.
            let _ = std::fs::remove_file(h2_log(ctx));
            h2load::with_percentiles(outcome, &h2load::latencies_us(&log)?)
        } else {
            let outcome = wrk::parse(&finished.stdout)
                .with_context(|| format!("wrk output:\n{}{}", finished.stdout, finished.stderr))?;
            expect_451(scenario, outcome)
        }
    };
    let (busy, total) = CpuTimes::delta(&core_before, &core_after);
    let core = core_after.since(&core_before);
    let proxy_ticks = proxy_after.saturating_sub(proxy_before);
    let pct = |part: u64, whole: u64| {
        if whole == 0 {
            0.0
        } else {
            part as f64 * 100.0 / whole as f64
        }
    };
    let per_req = |ticks: u64| us_per_request(ticks, ctx.ticks_per_s, outcome.requests);
    let proxy_cpu_s = proxy_ticks as f64 / ctx.ticks_per_s.max(1) as f64;
    let cache = warmed.map(|(marker, hit, tries)| {
        judge(
            marker,
            hit,
            tries,
            origin_after.saturating_sub(origin_before),
            outcome.requests,
        )
    });
    Ok(LoadMetrics {
        core_busy_jiffies: busy,
        core_total_jiffies: total,
        core_us_per_req: per_req(busy),
        core_softirq_pct: pct(core.irq + core.softirq, busy),
        core_foreign_pct: pct(core.task_time().saturating_sub(proxy_ticks), total),
        proxy_cpu_pct: proxy_cpu_s / wall_s * 100.0,
        proxy_us_per_req: per_req(proxy_ticks),
        peak_rss_kib,
        outcome,
        cache,
    })
}

/// In `policy-451` every response should be a 451, which wrk counts among
/// its "Non-2xx or 3xx responses"; there the unexpected responses are the
/// others (wrk cannot tell a 451 from another 4xx/5xx: the check before the
/// run confirms the 451 itself).
fn expect_451(scenario: Scenario, mut outcome: LoadOutcome) -> LoadOutcome {
    if scenario == Scenario::Policy451 {
        outcome.http_errors = outcome.requests.saturating_sub(outcome.http_errors);
    }
    outcome
}

/// Sums the s_time reports and checks each connection made the handshake the
/// scenario is about and read a whole 1 KiB response.
fn handshake_outcome(
    scenario: Scenario,
    finished: &[Finished],
    wall_s: f64,
) -> Result<LoadOutcome> {
    let mut reports = Vec::new();
    for f in finished {
        reports.push(stime::parse(&f.stdout).with_context(|| {
            format!(
                "s_time output:\n{}{}",
                crate::cmd::last_lines(&f.stdout, 5),
                crate::cmd::last_lines(&f.stderr, 5)
            )
        })?);
    }
    let s = stime::STime::sum(&reports);
    if s.connections == 0 {
        bail!("s_time made no connection");
    }
    let want_resumed = scenario == Scenario::TlsHandshakeResumed;
    let wrong = if want_resumed { s.full } else { s.resumed };
    if wrong > 0 {
        bail!(
            "s_time: {} of {} connections were {} handshakes, want none",
            wrong,
            s.connections,
            if want_resumed { "full" } else { "resumed" }
        );
    }
    // The 1 KiB body plus a response head; less means the proxy did not
    // serve the request.
    if s.bytes_per_conn < 1024 {
        bail!(
            "s_time read {} bytes per connection, less than the 1 KiB body",
            s.bytes_per_conn
        );
    }
    Ok(LoadOutcome {
        requests: s.connections,
        duration_s: wall_s,
        rps: s.connections as f64 / wall_s.max(1e-9),
        p50_ms: None,
        p99_ms: None,
        socket_errors: 0,
        http_errors: 0,
    })
}

/// Opens `ctx.idle_connections` keep-alive connections with one request
/// each, and reports how much the proxy's RSS grew per connection.
pub fn measure_idle(ctx: &RunCtx<'_>, server: &Server) -> Result<IdleMetrics> {
    let rss = || procfs::read_status_kib(server.pid, "VmRSS");
    let rss_before_kib = rss()?;
    let idle = open_idle(
        server.h1_port,
        "/1k",
        ctx.idle_connections,
        Instant::now() + Duration::from_secs(15),
    );
    // Let the proxy finish freeing per-request state before reading RSS.
    std::thread::sleep(Duration::from_secs(1));
    let rss_idle_kib = rss()?;
    let opened = idle.opened();
    let metrics = IdleMetrics {
        requested: ctx.idle_connections,
        opened,
        failed: idle.failed,
        first_error: idle.first_error.clone(),
        rss_before_kib,
        rss_idle_kib,
        kib_per_conn: (opened > 0)
            .then(|| (rss_idle_kib as f64 - rss_before_kib as f64) / opened as f64),
    };
    drop(idle);
    // Give the proxy a moment to close its ends before the next run.
    std::thread::sleep(Duration::from_millis(500));
    Ok(metrics)
}

/// The key figure: busy jiffies → µs, divided by requests served.
pub fn us_per_request(busy_jiffies: u64, ticks_per_s: u64, requests: u64) -> Option<f64> {
    (requests > 0 && ticks_per_s > 0)
        .then(|| busy_jiffies as f64 * 1e6 / ticks_per_s as f64 / requests as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_round_trip() -> Result<()> {
        for s in Scenario::ALL {
            assert_eq!(Scenario::parse(s.name())?, s);
        }
        assert!(Scenario::parse("tls-1k").is_err());
        let handshakes: Vec<_> = Scenario::ALL
            .into_iter()
            .filter(|s| s.is_handshake())
            .collect();
        assert_eq!(
            handshakes,
            [Scenario::TlsHandshakeFull, Scenario::TlsHandshakeResumed]
        );
        assert!(
            handshakes
                .iter()
                .all(|s| s.is_tls() && s.unit() == "handshake")
        );
        for s in Scenario::ALL {
            // Every load scenario has exactly one way to generate load.
            let ways = [
                s.uses_wrk(),
                s.uses_h2load(),
                s.is_handshake(),
                s == Scenario::PolicyReload1m,
            ]
            .iter()
            .filter(|w| **w)
            .count();
            assert_eq!(ways, usize::from(s != Scenario::Idle), "{}", s.name());
        }
        Ok(())
    }

    #[test]
    fn stime_page_makes_one_valid_request() {
        // What s_time writes: "GET %s HTTP/1.0\r\n\r\n".
        let wire = format!("GET {STIME_PAGE} HTTP/1.0\r\n\r\n");
        let lines: Vec<&str> = wire.split("\r\n").collect();
        assert_eq!(
            lines,
            [
                "GET /1k HTTP/1.0",
                "Host: bench.example",
                "X-Bench: HTTP/1.0",
                "",
                ""
            ]
        );
    }

    #[test]
    fn policy_451_counts_the_responses_that_were_not_refused() {
        let o = LoadOutcome {
            requests: 100,
            duration_s: 1.0,
            rps: 100.0,
            p50_ms: None,
            p99_ms: None,
            socket_errors: 0,
            http_errors: 97,
        };
        assert_eq!(expect_451(Scenario::Policy451, o.clone()).http_errors, 3);
        assert_eq!(expect_451(Scenario::KeepAlive1k, o).http_errors, 97);
    }

    #[test]
    fn cost_per_request() {
        // 500 busy jiffies at 100 Hz = 5 s of CPU over 500,000 requests.
        assert_eq!(us_per_request(500, 100, 500_000), Some(10.0));
        assert_eq!(us_per_request(500, 100, 0), None);
    }
}
