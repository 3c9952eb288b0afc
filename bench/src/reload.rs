//! `policy-reload-1m`: a 1,000,000-host policy reload under steady load.
//!
//! Against one Portcullis started with the big table (serial S):
//!
//! 1. **Idle-table run**: the paced load ([`crate::paced`]) for the run's
//!    length with no reload: its p99 is the baseline.
//! 2. **Reload run**: the same load; at `swap_at` the next table (serial S+1,
//!    written before the run, on the same file system) is renamed over the
//!    policy file, and `POST /admin/policy/reload` is sent at once. The
//!    directory watch sees the rename too: whichever trigger wins, the time
//!    to apply runs from the rename to the first `GET /admin/policy` showing
//!    serial S+1 (polled every [`POLL`]; an upper bound, within one poll
//!    plus one admin round trip).
//! 3. The swap window is from the rename to `tail` after the new serial was
//!    seen, so the old table's release is inside it. Its p99 over the
//!    requests due in it, against the idle-table p99, is the ratio.
//!
//! After the run the new table must be in force: `portcullis_policy_serial`
//! on /metrics is S+1 and the host only the new table suspends gets 451.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::net::{BENCH_HOST, Response, http_exchange};
use crate::paced::{self, Latency, Pace};
use crate::peers::Server;
use crate::policy::RELOADED_HOST;
use crate::setup::{ADMIN_TOKEN, LivePolicy};

/// How often the harness asks `GET /admin/policy` for the serial.
pub const POLL: Duration = Duration::from_millis(5);
/// The longest a reload may take before the run counts as failed.
const APPLY_LIMIT: Duration = Duration::from_secs(10);

/// The load and the timeline of one reload measurement.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ReloadPlan {
    pub connections: usize,
    pub rate: u64,
    pub duration_s: u64,
    pub swap_at_s: u64,
    /// Requests due this long after the new serial was seen still count in
    /// the swap window.
    pub tail_ms: u64,
}

impl ReloadPlan {
    /// 10 s runs, the swap at 3 s; `--smoke`: 3 s runs, the swap at 1 s.
    pub fn new(rate: u64, smoke: bool) -> ReloadPlan {
        let (duration_s, swap_at_s) = if smoke { (3, 1) } else { (10, 3) };
        ReloadPlan {
            connections: 16,
            rate,
            duration_s,
            swap_at_s,
            tail_ms: 1000,
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "built-in paced load (not wrk): {} keep-alive connections, {} req/s in all, GET /1k \
             (Host: {BENCH_HOST}), {} s per run, latency from each request's due time; idle-table \
             run, then a run with the next table renamed into place and POST \
             /admin/policy/reload at {} s; swap window = rename to new serial seen + {} ms",
            self.connections, self.rate, self.duration_s, self.swap_at_s, self.tail_ms
        )
    }

    fn pace(&self, port: u16) -> Pace {
        Pace {
            port,
            host: BENCH_HOST.to_owned(),
            path: "/1k".to_owned(),
            body_len: 1024,
            connections: self.connections,
            rate: self.rate,
            duration: Duration::from_secs(self.duration_s),
            source: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReloadMetrics {
    pub table_hosts: usize,
    pub serial_before: u64,
    pub serial_after: u64,
    pub plan: ReloadPlan,
    /// The idle-table run.
    pub idle: Latency,
    /// The whole reload run.
    pub reload_run: Latency,
    /// The requests of the reload run due in the swap window.
    pub swap_window: Latency,
    /// The window, ms from the start of the reload run.
    pub window_ms: [f64; 2],
    /// From the rename to the first GET /admin/policy showing the new serial.
    pub apply_ms: f64,
    /// The POST's status and how long it took to answer.
    pub post_status: u16,
    pub post_ms: f64,
    /// Socket errors and responses other than 200 + the 1 KiB body in the
    /// reload run (the target is 0).
    pub errors: u64,
    pub first_error: Option<String>,
    /// p99 in the swap window ÷ p99 of the idle-table run (target ≤ 2).
    pub p99_ratio: Option<f64>,
}

/// `GET /admin/policy?orders=none` (with the bearer token) → its `serial`. The short form
/// (no order list) keeps the 5 ms polling from loading the worker being measured.
pub fn admin_serial(admin_port: u16) -> Result<u64> {
    let resp = admin(admin_port, "GET", "/admin/policy?orders=none")?;
    if resp.status != 200 {
        bail!(
            "GET /admin/policy: status {}, want 200 (is the policy runtime in this build?)",
            resp.status
        );
    }
    parse_serial(&resp.body)
}

/// The `serial` of `GET /admin/policy`'s JSON (a number, or a string of
/// digits).
pub fn parse_serial(body: &[u8]) -> Result<u64> {
    let v: serde_json::Value =
        serde_json::from_slice(body).context("GET /admin/policy: not JSON")?;
    match v.get("serial") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .context("GET /admin/policy: no numeric \"serial\"")
}

/// `portcullis_policy_serial` from a Prometheus text exposition.
pub fn metric_serial(metrics: &str) -> Option<u64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix("portcullis_policy_serial")?;
        // Not a longer name (`…_serial_foo`); labels are allowed.
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            return None;
        }
        let value: f64 = rest.rsplit(' ').find(|s| !s.is_empty())?.parse().ok()?;
        (value >= 0.0).then_some(value as u64)
    })
}

fn admin(port: u16, method: &str, path: &str) -> Result<Response> {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    http_exchange(
        port,
        method,
        path,
        "127.0.0.1",
        &[("Authorization", auth.as_str())],
        APPLY_LIMIT,
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the idle-table run and the reload run against `server` (started
/// with the reload set-up) and measures them.
pub fn measure_reload(plan: &ReloadPlan, server: &Server) -> Result<ReloadMetrics> {
    let admin_port = server.admin_port.context("Portcullis has no admin port")?;
    let live = server
        .policy
        .as_ref()
        .context("Portcullis was started without a policy file")?;
    measure(plan, server.h1_port, admin_port, live)
}

fn measure(
    plan: &ReloadPlan,
    h1_port: u16,
    admin_port: u16,
    live: &LivePolicy,
) -> Result<ReloadMetrics> {
    let (staged, next) = live
        .staged
        .clone()
        .context("no staged policy file for the reload (was it used already?)")?;
    let serial = admin_serial(admin_port)?;
    if serial != live.serial {
        bail!("Portcullis runs serial {serial}, want {}", live.serial);
    }
    let pace = plan.pace(h1_port);

    let idle = paced::start(&pace)?.join()?.all();
    std::thread::sleep(Duration::from_secs(1));

    let running = paced::start(&pace)?;
    let swap_at = running.started + Duration::from_secs(plan.swap_at_s);
    if let Some(wait) = swap_at.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    let renamed = Instant::now();
    let swap = (|| -> Result<(Response, Instant, Instant)> {
        std::fs::rename(&staged, &live.file)
            .with_context(|| format!("renaming {staged:?} over {:?}", live.file))?;
        // The POST answers once the reload's bookkeeping (last good copy, audit record) is
        // done, after the swap: send it on its own thread and watch for the new serial
        // meanwhile, so the time to apply ends when the new table is in force.
        let poster = std::thread::spawn(move || {
            let post = admin(admin_port, "POST", "/admin/policy/reload");
            (post, Instant::now())
        });
        loop {
            let seen = admin_serial(admin_port);
            let now = Instant::now();
            if matches!(seen, Ok(s) if s == next) {
                let (post, posted) = poster
                    .join()
                    .map_err(|_| anyhow::anyhow!("the POST thread panicked"))?;
                let post = post?;
                if matches!(post.status, 401 | 403 | 404 | 405) {
                    bail!(
                        "POST /admin/policy/reload: status {} ({})",
                        post.status,
                        String::from_utf8_lossy(&post.body).trim()
                    );
                }
                return Ok((post, posted, now));
            }
            if now.duration_since(renamed) > APPLY_LIMIT {
                bail!(
                    "serial {next} not in force {APPLY_LIMIT:?} after the reload (last: {seen:?})"
                );
            }
            std::thread::sleep(POLL);
        }
    })();
    // Let the load finish even when the swap failed: its threads are bounded.
    let started = running.started;
    let run = running.join()?;
    let (post, posted, applied) = swap?;

    let offset_us = |t: Instant| {
        u64::try_from(t.saturating_duration_since(started).as_micros()).unwrap_or(u64::MAX)
    };
    let from = offset_us(renamed);
    let to = offset_us(applied).saturating_add(plan.tail_ms * 1000);
    let swap_window = run.latency(from, to);
    let reload_run = run.all();
    let errors = reload_run.socket_errors + reload_run.bad_responses;
    let first_error = run.failures.first().map(|f| f.error.clone()).or_else(|| {
        run.samples
            .iter()
            .any(|s| !s.ok)
            .then(|| "a response other than 200 with the 1 KiB body".to_owned())
    });

    let metrics = admin(admin_port, "GET", "/metrics")?;
    let metric = metric_serial(&String::from_utf8_lossy(&metrics.body));
    if metric != Some(next) {
        bail!("after the reload portcullis_policy_serial is {metric:?}, want {next}");
    }
    let probe = http_exchange(
        h1_port,
        "GET",
        "/1k",
        RELOADED_HOST,
        &[],
        Duration::from_secs(5),
    )?;
    if probe.status != 451 {
        bail!(
            "after the reload {RELOADED_HOST} got status {}, want 451 (the new table is not in force)",
            probe.status
        );
    }
    Ok(ReloadMetrics {
        table_hosts: live.hosts,
        serial_before: serial,
        serial_after: next,
        plan: *plan,
        p99_ratio: ratio(swap_window.p99_ms, idle.p99_ms),
        idle,
        reload_run,
        swap_window,
        window_ms: [from as f64 / 1000.0, to as f64 / 1000.0],
        apply_ms: ms(applied.duration_since(renamed)),
        post_status: post.status,
        post_ms: ms(posted.duration_since(renamed)),
        errors,
        first_error,
    })
}

pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use crate::peers::body;
    use crate::policy::{PolicyFile, write_policy_file};

    #[test]
    fn serials_from_the_admin_json_and_the_metrics() -> Result<()> {
        assert_eq!(parse_serial(br#"{"serial": 7, "sha256": "ab"}"#)?, 7);
        assert_eq!(parse_serial(br#"{"serial": "2026120101"}"#)?, 2_026_120_101);
        assert!(parse_serial(br#"{"orders": 3}"#).is_err());
        assert!(parse_serial(b"serial 7").is_err());
        let metrics = "# HELP portcullis_policy_serial The running serial.\n\
                       # TYPE portcullis_policy_serial gauge\n\
                       portcullis_policy_serial_x 1\n\
                       portcullis_policy_serial 2026120101\n";
        assert_eq!(metric_serial(metrics), Some(2_026_120_101));
        assert_eq!(
            metric_serial("portcullis_policy_serial{node=\"a\"} 3\n"),
            Some(3)
        );
        assert_eq!(metric_serial("portcullis_policy_reloads_total 1\n"), None);
        assert_eq!(ratio(Some(3.0), Some(1.5)), Some(2.0));
        assert_eq!(ratio(Some(3.0), None), None);
        Ok(())
    }

    /// A stand-in for Portcullis's side of the contract: 200 + 1 KiB for any
    /// host, 451 for the reloaded host once the new serial runs; the admin
    /// endpoints read the serial from the policy file on POST.
    fn fake_proxy(file: PathBuf, serial: u64, new_serial: u64) -> Result<(u16, u16)> {
        let state = Arc::new(AtomicU64::new(serial));
        let mut ports = Vec::new();
        for _ in 0..2 {
            let listener = TcpListener::bind(crate::net::loopback(0))?;
            ports.push(listener.local_addr()?.port());
            let (state, file) = (Arc::clone(&state), file.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming().flatten() {
                    let (state, file) = (Arc::clone(&state), file.clone());
                    std::thread::spawn(move || serve(conn, &state, &file, new_serial));
                }
            });
        }
        Ok((ports[0], ports[1]))
    }

    fn serve(conn: TcpStream, state: &AtomicU64, file: &PathBuf, new_serial: u64) {
        let Ok(mut writer) = conn.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(conn);
        loop {
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) => head.push(line.trim_end().to_owned()),
                }
            }
            let target = head.first().cloned().unwrap_or_default();
            let host = head
                .iter()
                .find_map(|h| h.strip_prefix("Host: "))
                .unwrap_or("");
            let (status, text): (u16, Vec<u8>) = if target.starts_with("POST /admin/policy/reload")
            {
                let text = std::fs::read_to_string(file).unwrap_or_default();
                // YAML `serial: N` or the tables' JSON `{"serial": N, …`.
                let found = text
                    .split_once("serial")
                    .map(|(_, rest)| rest.trim_start_matches(['"', ':', ' ']))
                    .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|v| v.parse().ok());
                if let Some(serial) = found {
                    state.store(serial, Ordering::SeqCst);
                }
                (200, b"reloaded".to_vec())
            } else if target.starts_with("GET /admin/policy") {
                let json = format!("{{\"serial\": {}}}", state.load(Ordering::SeqCst));
                (200, json.into_bytes())
            } else if target.starts_with("GET /metrics ") {
                let m = format!(
                    "portcullis_policy_serial {}\n",
                    state.load(Ordering::SeqCst)
                );
                (200, m.into_bytes())
            } else if host == RELOADED_HOST && state.load(Ordering::SeqCst) == new_serial {
                (451, b"blocked".to_vec())
            } else {
                (200, body(1024))
            };
            let close = head.iter().any(|h| h == "Connection: close");
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n",
                text.len()
            );
            if writer.write_all(head.as_bytes()).is_err()
                || writer.write_all(&text).is_err()
                || close
            {
                return;
            }
        }
    }

    #[test]
    fn a_reload_against_a_stand_in_is_measured_end_to_end() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let old = PolicyFile::Table {
            hosts: 50,
            generation: 0,
        };
        let new = PolicyFile::Table {
            hosts: 50,
            generation: 1,
        };
        std::fs::create_dir(tmp.path().join("live"))?;
        let live = LivePolicy {
            file: tmp.path().join("live/policy.yaml"),
            state_dir: tmp.path().join("state"),
            serial: old.serial(),
            hosts: 50,
            staged: Some((tmp.path().join("staged.yaml"), new.serial())),
        };
        write_policy_file(&live.file, old)?;
        write_policy_file(&tmp.path().join("staged.yaml"), new)?;
        let (h1, admin) = fake_proxy(live.file.clone(), old.serial(), new.serial())?;
        let plan = ReloadPlan {
            connections: 2,
            rate: 200,
            duration_s: 1,
            swap_at_s: 0,
            tail_ms: 200,
        };
        let m = measure(&plan, h1, admin, &live)?;
        assert_eq!(
            (m.serial_before, m.serial_after),
            (old.serial(), new.serial())
        );
        assert_eq!((m.errors, m.post_status), (0, 200));
        assert_eq!((m.idle.requests, m.reload_run.requests), (200, 200));
        assert!(m.swap_window.requests > 0 && m.swap_window.requests <= 200);
        assert!(m.window_ms[0] <= m.window_ms[1] && m.apply_ms >= m.post_ms);
        assert!(m.p99_ratio.is_some());
        // One reload per start: the serial has moved on and the staged file is gone.
        assert!(measure(&plan, h1, admin, &live).is_err());
        Ok(())
    }
}
