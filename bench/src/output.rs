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
    let probes: [(tools::Tool, &[&str]); 7] = [
        (tools::NGINX, &["-v"]),
        (tools::HAPROXY, &["-v"]),
        (tools::WRK, &["-v"]),
        (tools::H2LOAD, &["--version"]),
        (tools::TASKSET, &["--version"]),
        (tools::OPENSSL, &["version"]),
        (tools::CURL, &["--version"]),
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
        "Portcullis vs nginx and HAProxy",
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
mod tests {
    use super::*;

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
