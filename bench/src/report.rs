//! The result of a comparison: what ran, on what, how, and every figure per
//! round with its median and spread; rendered as JSON and Markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::reload::ReloadPlan;
use crate::scenario::Measured;
use crate::stats::Spread;

mod cache;
mod policy;

/// How the figures are made. Printed with every result: no number without
/// its method.
pub const METHOD: &str = "Each proxy runs with ONE worker pinned to the proxy CPU (taskset); \
the load generator (wrk or h2load), the origin (nginx serving fixed files) and the harness are \
pinned to the load CPU. Access logs are off everywhere. Proxy-core µs per request = busy jiffies \
of the proxy CPU from /proc/stat (user+nice+system+irq+softirq+steal, i.e. total minus idle and \
iowait; softirq holds the loopback TCP work no process is charged for) over the run, divided by \
the requests served. Proxy CPU % is the proxy process's own utime+stime over wall time. Peak RSS \
is VmHWM of the working process (nginx: its worker), reset before each run. Each round restarts \
every proxy, checks status and exact bodies through it, then runs each scenario after waiting for \
the machine to go quiet (under 10% busy over 0.5 s); the proxy order rotates every round. A run \
that started on a busy machine, or during which other tasks ran on the proxy CPU for 5% or more of \
its time, is repeated (3 tries at most); one still noisy is kept and flagged under Warnings. \
Figures are the median over rounds with the min-max spread. TLS scenarios: all three proxies \
serve the same ECDSA P-256 certificate made for the run; the keep-alive and HTTP/2 runs use TLS 1.3; \
the handshake scenarios run openssl s_time (-new: full handshakes; -reuse: resumed sessions), \
each connection carrying one 1 KiB request, and their figure is proxy-core µs per handshake. \
Policy scenarios: policy-451 sends wrk's keep-alive load to a host a legal order suspends (each \
proxy answers a fixed-size 451 page itself, checked before timing); policy-empty-table and \
policy-1m-table forward h1-keepalive-1k's load through Portcullis with an empty policy and with \
a table of policy_hosts host names (the forwarded host not in it); policy-reload-1m runs the \
harness's own paced load (latency from each request's due time) once with the big table idle and \
once with the next table renamed into place and POST /admin/policy/reload sent at a fixed time. \
Cache scenarios (cache-hit-1k, -64k, -1m): wrk's keep-alive load for one object the origin serves \
with Cache-Control: public, max-age=3600, through each proxy's cache (nginx proxy_cache, HAProxy's \
cache, Varnish's builtin VCL, Portcullis's cache) started empty; before each run the object is \
fetched until the proxy's own hit marker says hit; the origin logs every /cache/ request, and a \
run in which more than 1 in 1000 requests reached the origin, or whose warm-up never saw a hit, is \
INVALID: listed under Failures, left out of every figure.";

#[derive(Debug, Serialize)]
pub struct Report {
    /// When the run started.
    pub date_utc: String,
    pub smoke: bool,
    pub machine: Machine,
    pub tools: BTreeMap<String, String>,
    pub method: Method,
    pub cases: Vec<Case>,
    /// Things that make the run fail: a proxy that would not start or failed
    /// its correctness check, a load run that did not complete.
    pub failures: Vec<String>,
    /// Things a reader should know but that fail nothing (smoke judges no
    /// numbers): a noisy machine, errors under load.
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub clock_ticks_per_s: u64,
}

#[derive(Debug, Serialize)]
pub struct Method {
    pub description: &'static str,
    pub duration_s: u64,
    pub rounds: usize,
    pub connections: u32,
    pub h2_streams: u32,
    /// openssl s_time processes side by side in the handshake scenarios.
    pub tls_clients: u32,
    /// Per proxy: TLS version and cipher curl negotiated in the check (the
    /// same OpenSSL client defaults wrk uses).
    pub tls_negotiated: BTreeMap<String, String>,
    pub idle_connections: usize,
    /// Host names in the policy table of the 1M scenarios (fewer in a smoke).
    pub policy_hosts: usize,
    /// The load and timeline of `policy-reload-1m`.
    pub reload: ReloadPlan,
    pub proxy_cpu: usize,
    pub load_cpu: usize,
    pub quiet_threshold_pct: f64,
    pub quiet_max_wait_s: u64,
    /// One load-generator command line per scenario, as run (ports vary).
    pub commands: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct Case {
    pub scenario: String,
    pub description: String,
    /// What the key figure and the rate are per: "request" or "handshake"
    /// (a TLS handshake plus one 1 KiB request on its connection).
    pub unit: &'static str,
    pub proxy: String,
    pub runs: Vec<Run>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub round: usize,
    /// Place of this proxy in the round's order (the order rotates).
    pub position: usize,
    /// Tries it took: a run on a noisy machine is repeated (bounded).
    pub attempts: usize,
    pub quiet_busy_pct: f64,
    pub was_quiet: bool,
    #[serde(flatten)]
    pub measured: Measured,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub core_us_per_req: Option<Spread>,
    pub rps: Option<Spread>,
    pub p50_ms: Option<Spread>,
    pub p99_ms: Option<Spread>,
    pub proxy_cpu_pct: Option<Spread>,
    pub peak_rss_mib: Option<Spread>,
    pub kib_per_idle_conn: Option<Spread>,
    pub idle_rss_before_mib: Option<Spread>,
    pub idle_rss_mib: Option<Spread>,
    pub socket_errors: u64,
    pub http_errors: u64,
    /// `policy-reload-1m`: time to apply, failed requests (summed), p99 of
    /// the idle-table run and of the swap window, and their ratio.
    pub reload_apply_ms: Option<Spread>,
    pub reload_errors: u64,
    pub reload_p99_idle_ms: Option<Spread>,
    pub reload_p99_swap_ms: Option<Spread>,
    pub reload_p99_ratio: Option<Spread>,
}

impl Summary {
    pub fn of(runs: &[Run]) -> Summary {
        let mut s = Summary::default();
        // A cache-hit run that was not hits has no figure to give.
        let loads: Vec<_> = runs
            .iter()
            .filter_map(|r| match &r.measured {
                Measured::Load(l) if l.valid() => Some(l),
                Measured::Load(_) => None,
                Measured::Idle(_) | Measured::Reload(_) => None,
            })
            .collect();
        let idles: Vec<_> = runs
            .iter()
            .filter_map(|r| match &r.measured {
                Measured::Idle(i) => Some(i),
                Measured::Load(_) | Measured::Reload(_) => None,
            })
            .collect();
        let reloads: Vec<_> = runs
            .iter()
            .filter_map(|r| match &r.measured {
                Measured::Reload(m) => Some(m),
                Measured::Load(_) | Measured::Idle(_) => None,
            })
            .collect();
        let opt = |v: Option<f64>| v.unwrap_or(f64::NAN);
        let mib = |kib: u64| kib as f64 / 1024.0;
        let over = |f: &dyn Fn(&crate::scenario::LoadMetrics) -> f64| {
            Spread::of(&loads.iter().map(|l| f(l)).collect::<Vec<_>>())
        };
        s.core_us_per_req = over(&|l| opt(l.core_us_per_req));
        s.rps = over(&|l| l.outcome.rps);
        s.p50_ms = over(&|l| opt(l.outcome.p50_ms));
        s.p99_ms = over(&|l| opt(l.outcome.p99_ms));
        s.proxy_cpu_pct = over(&|l| l.proxy_cpu_pct);
        s.peak_rss_mib = over(&|l| l.peak_rss_kib.map_or(f64::NAN, mib));
        s.socket_errors = loads.iter().map(|l| l.outcome.socket_errors).sum();
        s.http_errors = loads.iter().map(|l| l.outcome.http_errors).sum();
        let over_idle = |f: &dyn Fn(&crate::scenario::IdleMetrics) -> f64| {
            Spread::of(&idles.iter().map(|i| f(i)).collect::<Vec<_>>())
        };
        s.kib_per_idle_conn = over_idle(&|i| opt(i.kib_per_conn));
        s.idle_rss_before_mib = over_idle(&|i| mib(i.rss_before_kib));
        s.idle_rss_mib = over_idle(&|i| mib(i.rss_idle_kib));
        let over_reload = |f: &dyn Fn(&crate::reload::ReloadMetrics) -> f64| {
            Spread::of(&reloads.iter().map(|m| f(m)).collect::<Vec<_>>())
        };
        s.reload_apply_ms = over_reload(&|m| m.apply_ms);
        s.reload_errors = reloads.iter().map(|m| m.errors).sum();
        s.reload_p99_idle_ms = over_reload(&|m| opt(m.idle.p99_ms));
        s.reload_p99_swap_ms = over_reload(&|m| opt(m.swap_window.p99_ms));
        s.reload_p99_ratio = over_reload(&|m| opt(m.p99_ratio));
        s
    }
}

/// `10.1 (9.8–10.5)`, or just the value when there was one round.
pub(crate) fn fmt_spread(s: Option<Spread>, decimals: usize) -> String {
    match s {
        None => "—".to_owned(),
        Some(s) if s.n > 1 => format!(
            "{:.d$} ({:.d$}–{:.d$})",
            s.median,
            s.min,
            s.max,
            d = decimals
        ),
        Some(s) => format!("{:.d$}", s.median, d = decimals),
    }
}

impl Report {
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(md, "# Portcullis side-by-side benchmark\n");
        if self.smoke {
            let _ = writeln!(
                md,
                "**Smoke run** (one short round): it shows the harness works; its numbers mean nothing.\n"
            );
        }
        let _ = writeln!(md, "- Started (UTC): {}", self.date_utc);
        let _ = writeln!(
            md,
            "- Machine: {} CPUs, {}, Linux {}",
            m.nproc, m.cpu_model, m.kernel
        );
        for (tool, version) in &self.tools {
            let _ = writeln!(md, "- {tool}: {version}");
        }
        let me = &self.method;
        let _ = writeln!(
            md,
            "- Runs: {} round(s) of {} s per scenario; {} connections; h2 {} streams per connection; \
             {} idle connections; proxy CPU {}, load CPU {}",
            me.rounds,
            me.duration_s,
            me.connections,
            me.h2_streams,
            me.idle_connections,
            me.proxy_cpu,
            me.load_cpu
        );
        if !me.tls_negotiated.is_empty() {
            let negotiated: Vec<String> = me
                .tls_negotiated
                .iter()
                .map(|(proxy, tls)| format!("{proxy} {tls}"))
                .collect();
            let _ = writeln!(
                md,
                "- TLS negotiated with OpenSSL's client defaults (curl check): {}",
                negotiated.join("; ")
            );
        }
        let _ = writeln!(md, "\nMethod: {}\n", me.description);

        let load: Vec<&Case> = self
            .cases
            .iter()
            .filter(|c| c.summary.rps.is_some() && c.unit == "request")
            .collect();
        if !load.is_empty() {
            let _ = writeln!(
                md,
                "## Proxy-core cost and throughput (median, min–max over rounds)\n\n\
                 | scenario | proxy | proxy-core µs/req | req/s | p50 ms | p99 ms | proxy CPU % | peak RSS MiB | errors (socket/HTTP) |\n\
                 |---|---|---|---|---|---|---|---|---|"
            );
            for c in load {
                let s = &c.summary;
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {}/{} |",
                    c.scenario,
                    c.proxy,
                    fmt_spread(s.core_us_per_req, 1),
                    fmt_spread(s.rps, 0),
                    fmt_spread(s.p50_ms, 2),
                    fmt_spread(s.p99_ms, 2),
                    fmt_spread(s.proxy_cpu_pct, 0),
                    fmt_spread(s.peak_rss_mib, 1),
                    s.socket_errors,
                    s.http_errors
                );
            }
        }
        let handshakes: Vec<&Case> = self
            .cases
            .iter()
            .filter(|c| c.summary.rps.is_some() && c.unit == "handshake")
            .collect();
        if !handshakes.is_empty() {
            let _ = writeln!(
                md,
                "\n## TLS handshakes, each followed by one 1 KiB request on its connection (median, min–max over rounds)\n\n\
                 {} `openssl s_time` processes side by side; every connection is checked to be the kind of \
                 handshake the scenario names.\n\n\
                 | scenario | proxy | proxy-core µs/handshake | handshakes/s | proxy CPU % | peak RSS MiB |\n\
                 |---|---|---|---|---|---|",
                me.tls_clients
            );
            for c in handshakes {
                let s = &c.summary;
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} |",
                    c.scenario,
                    c.proxy,
                    fmt_spread(s.core_us_per_req, 1),
                    fmt_spread(s.rps, 0),
                    fmt_spread(s.proxy_cpu_pct, 0),
                    fmt_spread(s.peak_rss_mib, 1),
                );
            }
        }
        let idle: Vec<&Case> = self
            .cases
            .iter()
            .filter(|c| c.summary.idle_rss_mib.is_some())
            .collect();
        if !idle.is_empty() {
            let _ = writeln!(
                md,
                "\n## Idle keep-alive connections ({} held open)\n\n\
                 | proxy | KiB per idle connection | RSS before MiB | RSS with them open MiB | opened (last round) |\n\
                 |---|---|---|---|---|",
                me.idle_connections
            );
            for c in idle {
                let s = &c.summary;
                let opened = c.runs.iter().rev().find_map(|r| match &r.measured {
                    Measured::Idle(i) => Some(format!("{}/{}", i.opened, i.requested)),
                    Measured::Load(_) | Measured::Reload(_) => None,
                });
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} |",
                    c.proxy,
                    fmt_spread(s.kib_per_idle_conn, 2),
                    fmt_spread(s.idle_rss_before_mib, 1),
                    fmt_spread(s.idle_rss_mib, 1),
                    opened.unwrap_or_default()
                );
            }
        }
        cache::write_section(&mut md, self);
        policy::write_section(&mut md, self);
        for (title, items) in [("Failures", &self.failures), ("Warnings", &self.warnings)] {
            if !items.is_empty() {
                let _ = writeln!(md, "\n## {title}\n");
                for item in items {
                    let _ = writeln!(md, "- {}", item.replace('\n', " "));
                }
            }
        }
        md
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the Unix epoch (no date crate
/// needed for one timestamp).
pub fn utc_datetime(secs: u64) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_datetime(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_datetime(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_datetime(1_795_673_827), "2026-11-26T06:17:07Z");
        assert_eq!(utc_datetime(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn spreads_format() {
        let s = Spread::of(&[9.8, 10.1, 10.5]);
        assert_eq!(fmt_spread(s, 1), "10.1 (9.8–10.5)");
        assert_eq!(fmt_spread(Spread::of(&[3.0]), 2), "3.00");
        assert_eq!(fmt_spread(None, 1), "—");
    }
}
