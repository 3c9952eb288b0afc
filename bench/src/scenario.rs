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

use crate::cmd::run_bounded;
use crate::net::{BENCH_HOST, ensure_loopback_url, open_idle};
use crate::peers::Server;
use crate::procfs::{self, CpuTimes, Quiet};
use crate::tools::{self, Tools};
use crate::{LoadOutcome, h2load, wrk};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    KeepAlive1k,
    KeepAlive64k,
    NewConnection1k,
    H2c1k,
    Idle,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Scenario::KeepAlive1k,
        Scenario::KeepAlive64k,
        Scenario::NewConnection1k,
        Scenario::H2c1k,
        Scenario::Idle,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::KeepAlive1k => "h1-keepalive-1k",
            Scenario::KeepAlive64k => "h1-keepalive-64k",
            Scenario::NewConnection1k => "h1-new-conn-1k",
            Scenario::H2c1k => "h2c-1k",
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

    fn path(self) -> &'static str {
        match self {
            Scenario::KeepAlive64k => "/64k",
            _ => "/1k",
        }
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
}

/// The load generator's command line for `scenario` against `server`.
pub fn command(ctx: &RunCtx<'_>, server: &Server, scenario: Scenario) -> Result<Command> {
    let duration = ctx.duration_s.to_string();
    let conns = ctx.connections.to_string();
    let mut cmd = Command::new(ctx.tools.path(tools::TASKSET)?);
    cmd.arg("-c").arg(ctx.load_cpu.to_string());
    let url = match scenario {
        Scenario::H2c1k => {
            let url = format!("http://127.0.0.1:{}{}", server.h2_port, scenario.path());
            cmd.arg(ctx.tools.path(tools::H2LOAD)?)
                .args(["-t1", "-c", &conns, "-m"])
                .arg(ctx.h2_streams.to_string())
                .args(["-D", &duration])
                .arg(format!("--header=:authority: {BENCH_HOST}"))
                .arg(format!("--log-file={}", h2_log(ctx).display()));
            url
        }
        Scenario::KeepAlive1k | Scenario::KeepAlive64k | Scenario::NewConnection1k => {
            let url = format!("http://127.0.0.1:{}{}", server.h1_port, scenario.path());
            cmd.arg(ctx.tools.path(tools::WRK)?)
                .args(["-t1", "-c", &conns, "-d"])
                .arg(format!("{duration}s"))
                .arg("--latency")
                .arg("-H")
                .arg(format!("Host: {BENCH_HOST}"));
            if scenario == Scenario::NewConnection1k {
                cmd.args(["-H", "Connection: close"]);
            }
            url
        }
        Scenario::Idle => bail!("the idle scenario has no load generator"),
    };
    ensure_loopback_url(&url)?;
    cmd.arg(url);
    Ok(cmd)
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
    let cmd = command(ctx, server, scenario)?;
    // A reset failure only makes the peak a lifetime peak; say so, go on.
    if let Err(e) = procfs::reset_peak_rss(server.pid) {
        eprintln!("warning: {e:#}");
    }
    let limit = Duration::from_secs(ctx.duration_s + 10);
    let core_before = core_times(ctx.proxy_cpu)?;
    let proxy_before = procfs::read_pid_stat(server.pid)?.cpu_ticks;
    let started = Instant::now();
    let finished = run_bounded(cmd, limit, ctx.scratch, scenario.name())?;
    let wall_s = started.elapsed().as_secs_f64();
    let core_after = core_times(ctx.proxy_cpu)?;
    let proxy_after = procfs::read_pid_stat(server.pid)
        .with_context(|| format!("{} died during {}", server.name, scenario.name()))?
        .cpu_ticks;
    let peak_rss_kib = procfs::read_status_kib(server.pid, "VmHWM").ok();

    let outcome = if scenario == Scenario::H2c1k {
        let outcome = h2load::parse(&finished.stdout)
            .with_context(|| format!("h2load output:\n{}{}", finished.stdout, finished.stderr))?;
        let log = std::fs::read_to_string(h2_log(ctx)).context("reading h2load log")?;
        // The log can be tens of MB; do not keep it around.
        let _ = std::fs::remove_file(h2_log(ctx));
        h2load::with_percentiles(outcome, &h2load::latencies_us(&log)?)
    } else {
        wrk::parse(&finished.stdout)
            .with_context(|| format!("wrk output:\n{}{}", finished.stdout, finished.stderr))?
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
        Ok(())
    }

    #[test]
    fn cost_per_request() {
        // 500 busy jiffies at 100 Hz = 5 s of CPU over 500,000 requests.
        assert_eq!(us_per_request(500, 100, 500_000), Some(10.0));
        assert_eq!(us_per_request(500, 100, 0), None);
    }
}
