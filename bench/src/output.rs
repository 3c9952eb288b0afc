//! Writing the report: Markdown, JSON and the SVG chart, plus the bits of
//! provenance (tool versions, command lines) that go into it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::report::Report;
use crate::svg::{self, Bar, Group, Panel};
use crate::tools::{self, Tools};

pub fn tool_versions(tools: &Tools, portcullis: Option<&Path>) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    let probes: [(tools::Tool, &[&str]); 8] = [
        (tools::NGINX, &["-v"]),
        (tools::HAPROXY, &["-v"]),
        (tools::WRK, &["-v"]),
        (tools::H2LOAD, &["--version"]),
        (tools::TASKSET, &["--version"]),
        (tools::OPENSSL, &["version"]),
        (tools::CURL, &["--version"]),
        (tools::VARNISHD, &["-V"]),
    ];
    for (tool, args) in probes {
        if let Ok(path) = tools.path(tool) {
            v.insert(tool.bin.to_owned(), tools::version_of(path, args));
        }
    }
    if let Some(bin) = portcullis {
        v.insert(
            "portcullis".to_owned(),
            format!(
                "{} ({})",
                tools::version_of(bin, &["--version"]),
                bin.display()
            ),
        );
    }
    v
}

/// A command line as one could paste it into a shell (for the record).
pub fn shell_words(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| {
            let s = a.to_string_lossy();
            if s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
            {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The chart: proxy-core µs/request per scenario, and, when the idle
/// scenario ran, KiB per idle connection.
pub fn chart(report: &Report) -> String {
    let mut series: Vec<String> = Vec::new();
    for c in &report.cases {
        if !series.contains(&c.proxy) {
            series.push(c.proxy.clone());
        }
    }
    let mut load: Vec<Group> = Vec::new();
    let mut handshake: Vec<Group> = Vec::new();
    let mut idle: Vec<Group> = Vec::new();
    for c in &report.cases {
        let (groups, value) = match (c.summary.core_us_per_req, c.summary.kib_per_idle_conn) {
            (Some(v), _) if c.unit == "handshake" => (&mut handshake, v),
            (Some(v), _) => (&mut load, v),
            (None, Some(v)) => (&mut idle, v),
            (None, None) => continue,
        };
        let bar = Bar {
            series: c.proxy.clone(),
            value,
        };
        match groups.iter_mut().find(|g| g.label == c.scenario) {
            Some(g) => g.bars.push(bar),
            None => groups.push(Group {
                label: c.scenario.clone(),
                bars: vec![bar],
            }),
        }
    }
    let mut panels = Vec::new();
    if !load.is_empty() {
        panels.push(Panel {
            title: "Proxy-core CPU time per request (lower is better)".into(),
            y_label: "µs per request (median, min–max)".into(),
            groups: load,
        });
    }
    // Handshakes cost ten times a request: their own panel and axis.
    if !handshake.is_empty() {
        panels.push(Panel {
            title: "Proxy-core CPU time per TLS handshake + one 1 KiB request (lower is better)"
                .into(),
            y_label: "µs per handshake (median, min–max)".into(),
            groups: handshake,
        });
    }
    if !idle.is_empty() {
        panels.push(Panel {
            title: format!(
                "Memory per idle keep-alive connection ({} open)",
                report.method.idle_connections
            ),
            y_label: "KiB per connection".into(),
            groups: idle,
        });
    }
    let m = &report.machine;
    let subtitle = format!(
        "{} · {} CPUs, {} · {} round(s) × {} s · one worker pinned to CPU {}{}",
        report.date_utc,
        m.nproc,
        m.cpu_model,
        report.method.rounds,
        report.method.duration_s,
        report.method.proxy_cpu,
        if report.smoke {
            " · SMOKE: not a measurement"
        } else {
            ""
        }
    );
    svg::render(
        "Portcullis vs nginx, HAProxy (and Varnish for cache hits)",
        &subtitle,
        &series,
        &panels,
    )
}

/// Writes `<stem>.md`, `<stem>.json` and `<stem>.svg` under `dir` and prints
/// the Markdown to stdout.
pub fn write_all(report: &Report, dir: &Path, stem: &str) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let md = report.to_markdown();
    let json = serde_json::to_string_pretty(report).context("serialising the report")?;
    for (ext, text) in [
        ("md", md.clone()),
        ("json", json + "\n"),
        ("svg", chart(report)),
    ] {
        let path = dir.join(format!("{stem}.{ext}"));
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    println!("{md}");
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::LoadOutcome;
    use crate::report::{Case, Machine, Method, Run, Summary};
    use crate::scenario::{LoadMetrics, Measured, Scenario};

    pub(crate) fn case(scenario: Scenario, proxy: &str, us: f64, rate: f64) -> Case {
        let runs: Vec<Run> = (0..3)
            .map(|round| Run {
                round,
                position: 0,
                attempts: 1,
                quiet_busy_pct: 1.0,
                was_quiet: true,
                measured: Measured::Load(LoadMetrics {
                    outcome: LoadOutcome {
                        requests: 1000,
                        duration_s: 5.0,
                        rps: rate + round as f64,
                        p50_ms: None,
                        p99_ms: None,
                        socket_errors: 0,
                        http_errors: 0,
                    },
                    core_busy_jiffies: 100,
                    core_total_jiffies: 500,
                    core_us_per_req: Some(us + round as f64),
                    core_softirq_pct: 20.0,
                    core_foreign_pct: 0.0,
                    proxy_cpu_pct: 50.0,
                    proxy_us_per_req: Some(us),
                    peak_rss_kib: Some(10240),
                    cache: None,
                }),
            })
            .collect();
        Case {
            scenario: scenario.name().to_owned(),
            description: scenario.describe().to_owned(),
            unit: scenario.unit(),
            proxy: proxy.to_owned(),
            summary: Summary::of(&runs),
            runs,
        }
    }

    pub(crate) fn report(cases: Vec<Case>) -> Report {
        Report {
            date_utc: "2026-11-26T00:00:00Z".into(),
            smoke: false,
            machine: Machine {
                nproc: 2,
                cpu_model: "test".into(),
                kernel: "6".into(),
                clock_ticks_per_s: 100,
            },
            tools: BTreeMap::new(),
            method: Method {
                description: crate::report::METHOD,
                duration_s: 5,
                rounds: 3,
                connections: 64,
                h2_streams: 10,
                tls_clients: 8,
                tls_negotiated: [(
                    "nginx".to_owned(),
                    "TLSv1.3 / TLS_AES_256_GCM_SHA384".to_owned(),
                )]
                .into(),
                idle_connections: 10,
                policy_hosts: 1_000_000,
                reload: crate::reload::ReloadPlan::new(4000, false),
                proxy_cpu: 0,
                load_cpu: 1,
                quiet_threshold_pct: 10.0,
                quiet_max_wait_s: 30,
                commands: BTreeMap::new(),
            },
            cases,
            failures: vec![],
            warnings: vec![],
        }
    }

    #[test]
    fn handshakes_get_their_own_table_and_panel() -> Result<(), roxmltree::Error> {
        let r = report(vec![
            case(Scenario::TlsKeepAlive1k, "nginx", 60.0, 9000.0),
            case(Scenario::TlsHandshakeFull, "nginx", 900.0, 1500.0),
            case(Scenario::TlsHandshakeResumed, "nginx", 400.0, 2500.0),
        ]);
        let md = r.to_markdown();
        let requests = md.find("proxy-core µs/req |").unwrap_or(usize::MAX);
        let handshakes = md
            .find("proxy-core µs/handshake | handshakes/s")
            .unwrap_or(0);
        assert!(requests < handshakes, "{md}");
        assert!(md.contains("| tls-keepalive-1k | nginx | 61.0 (60.0–62.0) |"));
        assert!(
            md.contains("| tls-handshake-full | nginx | 901.0 (900.0–902.0) | 1501 (1500–1502) |")
        );
        assert!(!md[requests..handshakes].contains("tls-handshake"));
        assert!(md.contains("nginx TLSv1.3 / TLS_AES_256_GCM_SHA384"));

        let svg = chart(&r);
        let doc = roxmltree::Document::parse(&svg)?;
        let titles: Vec<&str> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("title"))
            .filter_map(|n| n.text())
            .collect();
        assert!(
            titles
                .iter()
                .any(|t| t.starts_with("Proxy-core CPU time per request"))
        );
        assert!(
            titles
                .iter()
                .any(|t| t.starts_with("Proxy-core CPU time per TLS handshake"))
        );
        Ok(())
    }

    #[test]
    fn shell_quoting() {
        let mut cmd = Command::new("wrk");
        cmd.args(["-t1", "-H", "Host: bench.example", "it's"]);
        assert_eq!(
            shell_words(&cmd),
            r"wrk -t1 -H 'Host: bench.example' 'it'\''s'"
        );
    }
}
