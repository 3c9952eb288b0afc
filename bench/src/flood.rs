//! `flood`: what a flood from one abusive client costs everyone else, Portcullis beside nginx
//! configured with the same per-client limits (Portcullis `protection.per_client`, nginx
//! `limit_req` + `limit_conn`, both at [`LIMITS`]).
//!
//! Per proxy, three phases of `--duration` seconds each:
//! 1. **alone**: the well-behaved client only — the paced client (`paced.rs`) from
//!    127.0.0.2, `--rate` requests/s over 2 keep-alive connections, well under its limit.
//! 2. **flood**: the same client while one abusive client (wrk -t1 -c64, from 127.0.0.1) sends
//!    at full speed; nearly all of its requests are refused (429). The well-behaved client's
//!    success rate and p99 are compared with phase 1, and the proxy core's busy time over the
//!    phase divided by the requests answered is the cost of a refused request (the few paced
//!    requests are in it too: under 1%).
//! 3. **forward**: the same wrk load against the proxy without limits: the cost of a forwarded
//!    1 KiB request, for the ratio (target: refusing costs at most a third of forwarding).
//!
//! Pinning is `compare`'s: the proxy (one worker) on `--proxy-cpu`, wrk, the paced client and
//! the origin on `--load-cpu`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::net::BENCH_HOST;
use crate::paced::{self, Pace, PacedRun};
use crate::peers::{Env, ProxyKind, Server, start_origin, start_proxy};
use crate::setup::{PolicyFiles, Setup};
use crate::{cmd, procfs, tools, wrk};

/// Per-client limits, the same for every proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub requests_per_second: u32,
    pub burst: u32,
    pub max_connections: u32,
}

/// The example: 100 requests/s, burst 200, 256 connections per client.
pub const LIMITS: Limits = Limits {
    requests_per_second: 100,
    burst: 200,
    max_connections: 256,
};

/// The config snippets that set `limits` (empty without them): Portcullis's `protection:`
/// section; nginx's zones (http level) and `limit_req` / `limit_conn` (location level). nginx's
/// `burst=N nodelay` admits N requests above the rate at once, Portcullis's bucket of N: the
/// same shape.
pub fn snippets(limits: Option<Limits>) -> Vec<(&'static str, String)> {
    let Some(l) = limits else {
        return ["PROTECTION", "LIMIT_ZONE", "LIMIT"]
            .map(|k| (k, String::new()))
            .to_vec();
    };
    vec![
        (
            "PROTECTION",
            format!(
                "protection:\n  per_client:\n    requests_per_second: {}\n    burst: {}\n    max_connections: {}\n",
                l.requests_per_second, l.burst, l.max_connections
            ),
        ),
        (
            "LIMIT_ZONE",
            format!(
                "    limit_req_zone $binary_remote_addr zone=perclient:10m rate={}r/s;\n    limit_conn_zone $binary_remote_addr zone=perconn:10m;\n",
                l.requests_per_second
            ),
        ),
        (
            "LIMIT",
            format!(
                "            limit_req zone=perclient burst={} nodelay;\n            limit_req_status 429;\n            limit_conn perconn {};\n",
                l.burst, l.max_connections
            ),
        ),
    ]
}

#[derive(Debug, clap::Args)]
pub struct FloodArgs {
    /// Seconds per phase.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=30))]
    pub duration: u64,
    /// Requests per second of the well-behaved client (its limit is 100).
    #[arg(long, default_value_t = 50)]
    pub rate: u64,
    /// Connections of the abusive client (wrk -c).
    #[arg(long, default_value_t = 64)]
    pub connections: u32,
    /// Comma-separated proxies: portcullis, nginx.
    #[arg(long, value_delimiter = ',', default_value = "portcullis,nginx")]
    pub proxies: Vec<String>,
    /// The portcullis binary; built with cargo if missing.
    /// [default: target/release/portcullis, under CARGO_TARGET_DIR if set]
    #[arg(long)]
    pub portcullis: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub proxy_cpu: usize,
    #[arg(long, default_value_t = 1)]
    pub load_cpu: usize,
    /// Two-second phases: checks that everything runs, judges no numbers.
    #[arg(long)]
    pub smoke: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// The well-behaved client over one phase.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Client {
    pub requests: u64,
    /// Share of its requests answered 200 with the whole body, in %.
    pub success_pct: f64,
    pub p99_ms: Option<f64>,
}

/// One proxy's results.
#[derive(Debug, Clone, Serialize)]
pub struct FloodResult {
    pub proxy: String,
    pub alone: Client,
    pub under_flood: Client,
    /// The abusive client's requests answered in the flood phase, and how many were refused.
    pub flood_requests: u64,
    pub flood_refused: u64,
    /// Proxy-core µs per request answered in the flood phase (nearly all refusals).
    pub core_us_per_refused: Option<f64>,
    /// Proxy-core µs per forwarded request, same load, no limits.
    pub core_us_per_forwarded: Option<f64>,
    /// refused ÷ forwarded.
    pub ratio: Option<f64>,
    /// The same two figures from the proxy process's own utime + stime (no softirq, but
    /// immune to other processes on the proxy core), and their ratio.
    pub process_us_per_refused: Option<f64>,
    pub process_us_per_forwarded: Option<f64>,
    pub process_ratio: Option<f64>,
    /// Whether the machine was quiet (under 10% busy) before each timed phase; figures from a
    /// noisy phase are suspect.
    pub quiet: bool,
}

/// What a wrk phase cost: per answered request, on the proxy core and in the proxy process.
#[derive(Debug, Clone, Copy)]
struct Cost {
    core_us: Option<f64>,
    process_us: Option<f64>,
}

fn client(run: &PacedRun) -> Client {
    let total = (run.samples.len() + run.failures.len()) as u64;
    let ok = run.samples.iter().filter(|s| s.ok).count() as u64;
    Client {
        requests: total,
        success_pct: if total == 0 {
            0.0
        } else {
            ok as f64 * 100.0 / total as f64
        },
        p99_ms: run.all().p99_ms,
    }
}

fn pin_self(cpu: usize) -> Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)
        .with_context(|| format!("pinning the harness to CPU {cpu}"))
}

fn core_busy(cpu: usize) -> Result<procfs::CpuTimes> {
    procfs::read_stat()?
        .cpu(cpu)
        .with_context(|| format!("/proc/stat has no line for CPU {cpu}"))
}

/// Runs wrk at full speed against `server` for `secs`; returns its outcome and what an
/// answered request cost.
fn flood(
    args: &FloodArgs,
    tools: &tools::Tools,
    dir: &std::path::Path,
    server: &Server,
    secs: u64,
) -> Result<(crate::LoadOutcome, Cost)> {
    let mut c = Command::new(tools.path(tools::TASKSET)?);
    c.arg("-c")
        .arg(args.load_cpu.to_string())
        .arg(tools.path(tools::WRK)?)
        .args(["-t1", "-c"])
        .arg(args.connections.to_string())
        .arg("-d")
        .arg(format!("{secs}s"))
        .arg("--latency")
        .arg("-H")
        .arg(format!("Host: {BENCH_HOST}"))
        .arg(format!("http://127.0.0.1:{}/1k", server.h1_port));
    let before = core_busy(args.proxy_cpu)?;
    let proc_before = procfs::read_pid_stat(server.pid)?.cpu_ticks;
    let done = cmd::run_bounded(c, Duration::from_secs(secs + 10), dir, "flood-wrk")?;
    let after = core_busy(args.proxy_cpu)?;
    let proc_after = procfs::read_pid_stat(server.pid)?.cpu_ticks;
    let outcome = wrk::parse(&done.stdout)
        .with_context(|| format!("wrk output:\n{}{}", done.stdout, done.stderr))?;
    let (busy, _) = procfs::CpuTimes::delta(&before, &after);
    let ticks = procfs::clock_ticks_per_second().max(1);
    let per = |t: u64| {
        (outcome.requests > 0).then(|| t as f64 * 1e6 / ticks as f64 / outcome.requests as f64)
    };
    let cost = Cost {
        core_us: per(busy),
        process_us: per(proc_after.saturating_sub(proc_before)),
    };
    Ok((outcome, cost))
}

/// Waits for the machine to go quiet before a timed phase (as `compare` does).
fn quiet(smoke: bool) -> Result<bool> {
    let max = Duration::from_secs(if smoke { 2 } else { 60 });
    let q = procfs::wait_quiet(10.0, Duration::from_millis(500), max)?;
    if !q.quiet {
        eprintln!(
            "warning: the machine is {:.0}% busy before a timed phase; figures are suspect",
            q.busy_pct
        );
    }
    Ok(q.quiet)
}

fn pace(port: u16, rate: u64, secs: u64) -> Pace {
    Pace {
        port,
        host: BENCH_HOST.to_owned(),
        path: "/1k".to_owned(),
        body_len: 1024,
        connections: 2,
        rate,
        duration: Duration::from_secs(secs),
        source: Some(IpAddr::from([127, 0, 0, 2])),
    }
}

/// Runs the flood benchmark; prints a table and returns the results.
pub fn run(args: &FloodArgs) -> Result<Vec<FloodResult>> {
    let secs = if args.smoke { 2 } else { args.duration };
    let kinds = args
        .proxies
        .iter()
        .map(|p| ProxyKind::parse(p))
        .collect::<Result<Vec<_>>>()?;
    if let Some(k) = kinds
        .iter()
        .find(|k| !matches!(k, ProxyKind::Portcullis | ProxyKind::Nginx))
    {
        bail!("{} has no flood set-up (portcullis, nginx)", k.name());
    }
    let root = crate::compare::workspace_root();
    let tools = tools::ensure(&[tools::TASKSET, tools::NGINX, tools::WRK])?;
    let portcullis = if kinds.contains(&ProxyKind::Portcullis) {
        Some(tools::portcullis_under_test(
            args.portcullis.as_deref(),
            &root,
        )?)
    } else {
        None
    };
    pin_self(args.load_cpu)?;
    let scratch = tempfile::Builder::new()
        .prefix("portcullis-flood-")
        .tempdir()
        .context("creating the run directory")?;
    let dir = scratch.path();
    let policy = PolicyFiles::prepare(dir, &[], 0)?;
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(4096);
    let env = |flood| Env {
        dir,
        tools: &tools,
        portcullis: portcullis.as_deref(),
        proxy_cpu: args.proxy_cpu,
        load_cpu: args.load_cpu,
        nofile,
        max_conns: 4096.min(nofile),
        tls: None,
        policy: &policy,
        flood,
    };
    let origin = start_origin(&env(None))?;
    let origin_port = origin.h1_port;
    let mut results = Vec::new();
    for kind in kinds {
        eprintln!("flood: {} ...", kind.name());
        let limited = start_proxy(&env(Some(LIMITS)), kind, origin_port, Setup::Plain, false)?;
        let alone = paced::start(&pace(limited.h1_port, args.rate, secs))?.join()?;
        let mut was_quiet = quiet(args.smoke)?;
        let running = paced::start(&pace(limited.h1_port, args.rate, secs))?;
        let started = Instant::now();
        let (abusive, refused_cost) = flood(args, &tools, dir, &limited, secs)?;
        let under = running.join()?;
        if started.elapsed() < Duration::from_secs(secs) {
            bail!("{}: the flood ended early", kind.name());
        }
        drop(limited);
        let open = start_proxy(&env(None), kind, origin_port, Setup::Plain, false)?;
        was_quiet &= quiet(args.smoke)?;
        let (forwarded, forward_cost) = flood(args, &tools, dir, &open, secs)?;
        drop(open);
        if forwarded.http_errors > 0 {
            eprintln!(
                "warning: {}: {} of {} forwarded requests were not 2xx",
                kind.name(),
                forwarded.http_errors,
                forwarded.requests
            );
        }
        results.push(FloodResult {
            proxy: kind.name().to_owned(),
            alone: client(&alone),
            under_flood: client(&under),
            flood_requests: abusive.requests,
            flood_refused: abusive.http_errors,
            core_us_per_refused: refused_cost.core_us,
            core_us_per_forwarded: forward_cost.core_us,
            ratio: refused_cost
                .core_us
                .zip(forward_cost.core_us)
                .map(|(r, f)| r / f),
            process_us_per_refused: refused_cost.process_us,
            process_us_per_forwarded: forward_cost.process_us,
            process_ratio: refused_cost
                .process_us
                .zip(forward_cost.process_us)
                .map(|(r, f)| r / f),
            quiet: was_quiet,
        });
    }
    println!("{}", table(&results, secs));
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_vec_pretty(&results)?)
            .with_context(|| format!("writing {out:?}"))?;
    }
    Ok(results)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:.digits$}"))
}

/// The results as a Markdown table.
pub fn table(results: &[FloodResult], secs: u64) -> String {
    let mut t = format!(
        "Flood ({secs} s phases; limits {} req/s, burst {}, {} connections per client)\n\n\
         | proxy | well-behaved alone: ok %, p99 ms | under flood: ok %, p99 ms | flood req/s (refused %) | core µs / refused | core µs / forwarded | ratio | process µs refused / forwarded (ratio) | quiet |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        LIMITS.requests_per_second, LIMITS.burst, LIMITS.max_connections
    );
    for r in results {
        let refused_pct = if r.flood_requests == 0 {
            0.0
        } else {
            r.flood_refused as f64 * 100.0 / r.flood_requests as f64
        };
        t.push_str(&format!(
            "| {} | {:.2}, {} | {:.2}, {} | {:.0} ({refused_pct:.2}) | {} | {} | {} | {} / {} ({}) | {} |\n",
            r.proxy,
            r.alone.success_pct,
            opt(r.alone.p99_ms, 2),
            r.under_flood.success_pct,
            opt(r.under_flood.p99_ms, 2),
            r.flood_requests as f64 / secs as f64,
            opt(r.core_us_per_refused, 1),
            opt(r.core_us_per_forwarded, 1),
            opt(r.ratio, 2),
            opt(r.process_us_per_refused, 1),
            opt(r.process_us_per_forwarded, 1),
            opt(r.process_ratio, 2),
            if r.quiet { "yes" } else { "no" },
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::render;

    #[test]
    fn the_limits_render_into_both_configs() -> Result<()> {
        let s = snippets(Some(LIMITS));
        let get = |k: &str| {
            s.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert!(get("PROTECTION").contains("requests_per_second: 100"));
        assert!(get("LIMIT_ZONE").contains("rate=100r/s"));
        assert!(get("LIMIT").contains("burst=200 nodelay") && get("LIMIT").contains("perconn 256"));
        assert!(snippets(None).iter().all(|(_, v)| v.is_empty()));
        // The Portcullis snippet is a valid config section.
        let yaml = render(
            "listeners:\n  - address: \"127.0.0.1:0\"\n{{PROTECTION}}sites:\n  - name: b\n    hosts: [b.example]\n    origins: [\"http://127.0.0.1:1\"]\n",
            &s,
        )?;
        assert!(yaml.contains("protection:\n  per_client:"));
        Ok(())
    }
}
