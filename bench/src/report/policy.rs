//! The report's legal-order section: the 451 path against forwarding, the
//! forwarding cost with the big table against an empty one, and the reload
//! under load.

use std::fmt::Write as _;

use super::{Case, Report, fmt_spread};
use crate::scenario::Scenario;
use crate::stats::Spread;

fn find<'a>(report: &'a Report, scenario: Scenario, proxy: &str) -> Option<&'a Case> {
    report
        .cases
        .iter()
        .find(|c| c.scenario == scenario.name() && c.proxy == proxy)
}

fn cost(case: Option<&Case>) -> Option<Spread> {
    case.and_then(|c| c.summary.core_us_per_req)
}

/// `a ÷ b` of two medians, as `0.62`, or `—`.
fn ratio(a: Option<Spread>, b: Option<Spread>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.median > 0.0 => format!("{:.2}", a.median / b.median),
        _ => "—".to_owned(),
    }
}

fn proxies(report: &Report, scenario: Scenario) -> Vec<&Case> {
    report
        .cases
        .iter()
        .filter(|c| c.scenario == scenario.name())
        .collect()
}

/// Appends the section when a policy scenario ran.
pub(super) fn write_section(md: &mut String, report: &Report) {
    let blocked = proxies(report, Scenario::Policy451);
    let empty = find(report, Scenario::PolicyEmptyTable, "portcullis");
    let big = find(report, Scenario::PolicyTable1m, "portcullis");
    let reload = find(report, Scenario::PolicyReload1m, "portcullis");
    if blocked.is_empty() && empty.is_none() && big.is_none() && reload.is_none() {
        return;
    }
    let hosts = report.method.policy_hosts;
    let _ = writeln!(md, "\n## Legal-order policy\n");
    if !blocked.is_empty() {
        let _ = writeln!(
            md,
            "### 451 answered by the proxy vs forwarding (`policy-451` vs `h1-keepalive-1k`)\n\n\
             The 451 path must be cheaper than forwarding (ratio below 1).\n\n\
             | proxy | 451 proxy-core µs/req | forward 1 KiB µs/req | 451 ÷ forward | 451 req/s | 451 p99 ms | errors (socket/not 451) |\n\
             |---|---|---|---|---|---|---|"
        );
        for c in blocked {
            let forward = cost(find(report, Scenario::KeepAlive1k, &c.proxy));
            let s = &c.summary;
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {}/{} |",
                c.proxy,
                fmt_spread(s.core_us_per_req, 1),
                fmt_spread(forward, 1),
                ratio(s.core_us_per_req, forward),
                fmt_spread(s.rps, 0),
                fmt_spread(s.p99_ms, 2),
                s.socket_errors,
                s.http_errors
            );
        }
    }
    if empty.is_some() || big.is_some() {
        let _ = writeln!(
            md,
            "\n### Forwarding with a {hosts}-host table vs an empty one (Portcullis, `policy-1m-table`)\n\n\
             The forwarding cost must not depend on the table size (ratio 1 within the noise).\n\n\
             | policy | proxy-core µs/req | req/s | p99 ms | peak RSS MiB | ÷ empty table |\n\
             |---|---|---|---|---|---|"
        );
        let base = cost(empty);
        for (label, c) in [
            ("serial 1, `orders: []`".to_owned(), empty),
            (format!("{hosts} hosts, forwarded host not in it"), big),
        ] {
            let Some(c) = c else { continue };
            let s = &c.summary;
            let _ = writeln!(
                md,
                "| {label} | {} | {} | {} | {} | {} |",
                fmt_spread(s.core_us_per_req, 1),
                fmt_spread(s.rps, 0),
                fmt_spread(s.p99_ms, 2),
                fmt_spread(s.peak_rss_mib, 1),
                ratio(s.core_us_per_req, base)
            );
        }
    }
    if let Some(c) = reload {
        let p = &report.method.reload;
        let s = &c.summary;
        let _ = writeln!(
            md,
            "\n### {hosts}-host reload under load (Portcullis, `policy-reload-1m`)\n\n\
             {} connections, {} req/s paced, {} s runs, swap at {} s; targets: apply < 1 s, 0 failed \
             requests, p99 during the swap ≤ 2 × idle.\n\n\
             | time to apply ms | failed requests | p99 idle table ms | p99 during swap ms | swap ÷ idle |\n\
             |---|---|---|---|---|\n\
             | {} | {} | {} | {} | {} |",
            p.connections,
            p.rate,
            p.duration_s,
            p.swap_at_s,
            fmt_spread(s.reload_apply_ms, 0),
            s.reload_errors,
            fmt_spread(s.reload_p99_idle_ms, 2),
            fmt_spread(s.reload_p99_swap_ms, 2),
            fmt_spread(s.reload_p99_ratio, 2),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::output::tests::{case, report};
    use crate::paced::Latency;
    use crate::reload::{ReloadMetrics, ReloadPlan};
    use crate::report::{Case, Run, Summary};
    use crate::scenario::{Measured, Scenario};

    fn reload_case() -> Case {
        let lat = |p99| Latency {
            requests: 40_000,
            p50_ms: Some(0.5),
            p99_ms: Some(p99),
            max_ms: Some(p99 * 2.0),
            ..Latency::default()
        };
        let runs: Vec<Run> = [2.0, 3.0, 5.0]
            .into_iter()
            .enumerate()
            .map(|(round, swap)| Run {
                round,
                position: 0,
                attempts: 1,
                quiet_busy_pct: 1.0,
                was_quiet: true,
                measured: Measured::Reload(Box::new(ReloadMetrics {
                    table_hosts: 1_000_000,
                    serial_before: 1,
                    serial_after: 2,
                    plan: ReloadPlan::new(4000, false),
                    idle: lat(1.0),
                    reload_run: lat(swap),
                    swap_window: lat(swap),
                    window_ms: [3000.0, 4700.0],
                    apply_ms: 600.0 + round as f64,
                    post_status: 200,
                    post_ms: 590.0,
                    errors: round as u64,
                    first_error: None,
                    p99_ratio: Some(swap),
                })),
            })
            .collect();
        Case {
            scenario: Scenario::PolicyReload1m.name().to_owned(),
            description: String::new(),
            unit: "request",
            proxy: "portcullis".to_owned(),
            summary: Summary::of(&runs),
            runs,
        }
    }

    #[test]
    fn the_policy_section_compares_each_figure_with_its_baseline() {
        let r = report(vec![
            case(Scenario::KeepAlive1k, "nginx", 40.0, 18000.0),
            case(Scenario::Policy451, "nginx", 20.0, 30000.0),
            case(Scenario::Policy451, "haproxy", 25.0, 28000.0),
            case(Scenario::PolicyEmptyTable, "portcullis", 50.0, 17000.0),
            case(Scenario::PolicyTable1m, "portcullis", 55.0, 16000.0),
            reload_case(),
        ]);
        let md = r.to_markdown();
        assert!(md.contains("## Legal-order policy"));
        // Medians: 451 21.0 vs forward 41.0; HAProxy ran no forward row.
        assert!(md.contains("| nginx | 21.0 (20.0–22.0) | 41.0 (40.0–42.0) | 0.51 |"));
        assert!(md.contains("| haproxy | 26.0 (25.0–27.0) | — | — |"));
        assert!(md.contains("| serial 1, `orders: []` | 51.0 (50.0–52.0) |"));
        assert!(md.contains("| 1000000 hosts, forwarded host not in it | 56.0 (55.0–57.0) |"));
        assert!(md.contains(" | 1.10 |\n"));
        assert!(md.contains(
            "| 601 (600–602) | 3 | 1.00 (1.00–1.00) | 3.00 (2.00–5.00) | 3.00 (2.00–5.00) |"
        ));
        // The reload has no wrk row in the main table.
        assert!(!md.contains("| policy-reload-1m | portcullis |"));
    }

    #[test]
    fn no_section_without_policy_scenarios() {
        let r = report(vec![case(Scenario::KeepAlive1k, "nginx", 40.0, 18000.0)]);
        assert!(!r.to_markdown().contains("Legal-order policy"));
    }
}
