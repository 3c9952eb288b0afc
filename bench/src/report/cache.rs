//! The report's cache section: proxy-core µs per hit for each object size,
//! Portcullis against nginx's `proxy_cache`, and the origin requests that
//! prove the runs were hits.

use std::fmt::Write as _;

use super::{Case, Report, fmt_spread};
use crate::scenario::{Measured, Scenario};

const SCENARIOS: [(Scenario, &str); 3] = [
    (Scenario::CacheHit1k, "1 KiB"),
    (Scenario::CacheHit64k, "64 KiB"),
    (Scenario::CacheHit1m, "1 MiB"),
];

/// The bar: a Portcullis hit costs at most 1/1.3 of nginx's.
const TARGET_VS_NGINX: f64 = 1.0 / 1.3;

const PROXIES: [&str; 4] = ["nginx", "haproxy", "varnish", "portcullis"];

fn find<'a>(report: &'a Report, scenario: Scenario, proxy: &str) -> Option<&'a Case> {
    report
        .cases
        .iter()
        .find(|c| c.scenario == scenario.name() && c.proxy == proxy)
}

/// The figure, `invalid (n/N runs)` when runs were made but none was hits,
/// `—` when none was made.
fn cell(case: Option<&Case>) -> String {
    let Some(case) = case else {
        return "—".to_owned();
    };
    let invalid = invalid_runs(case);
    match case.summary.core_us_per_req {
        Some(s) if invalid == 0 => fmt_spread(Some(s), 1),
        Some(s) => format!(
            "{} ({invalid} of {} runs invalid)",
            fmt_spread(Some(s), 1),
            case.runs.len()
        ),
        None if invalid > 0 => format!("**invalid** ({invalid}/{} runs)", case.runs.len()),
        None => "—".to_owned(),
    }
}

fn invalid_runs(case: &Case) -> usize {
    case.runs
        .iter()
        .filter(|r| matches!(&r.measured, Measured::Load(l) if !l.valid()))
        .count()
}

/// Origin requests during the timed runs, summed over rounds.
fn origin_requests(case: &Case) -> u64 {
    case.runs
        .iter()
        .filter_map(|r| match &r.measured {
            Measured::Load(l) => l.cache.as_ref().map(|c| c.origin_requests),
            Measured::Idle(_) | Measured::Reload(_) => None,
        })
        .sum()
}

/// Appends the section when a cache scenario ran.
pub(super) fn write_section(md: &mut String, report: &Report) {
    if !SCENARIOS
        .iter()
        .any(|(s, _)| report.cases.iter().any(|c| c.scenario == s.name()))
    {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Cache hits (`cache-hit-1k`, `-64k`, `-1m`)\n\n\
         Proxy-core µs per hit, median (min–max) over rounds. Target: Portcullis ≤ 1/1.3 of nginx \
         `proxy_cache` (÷ nginx ≤ {TARGET_VS_NGINX:.2}). A run counts only if the proxy's own hit \
         marker said hit after the warm-up and at most 1 in 1000 timed requests reached the \
         origin; an invalid run gives no figure and is listed under Failures.\n\n\
         | object | nginx | HAProxy | Varnish | Portcullis | Portcullis ÷ nginx | origin requests during the timed runs |\n\
         |---|---|---|---|---|---|---|"
    );
    for (scenario, label) in SCENARIOS {
        let cases: Vec<Option<&Case>> = PROXIES.iter().map(|p| find(report, scenario, p)).collect();
        if cases.iter().all(Option::is_none) {
            continue;
        }
        let cost = |i: usize| cases[i].and_then(|c| c.summary.core_us_per_req);
        let ratio = match (cost(3), cost(0)) {
            (Some(p), Some(n)) if n.median > 0.0 => {
                let r = p.median / n.median;
                if r <= TARGET_VS_NGINX {
                    format!("**{r:.2}**")
                } else {
                    format!("{r:.2}")
                }
            }
            _ => "—".to_owned(),
        };
        let origin: Vec<String> = PROXIES
            .iter()
            .zip(&cases)
            .filter_map(|(p, c)| c.map(|c| format!("{p} {}", origin_requests(c))))
            .collect();
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {ratio} | {} |",
            cell(cases[0]),
            cell(cases[1]),
            cell(cases[2]),
            cell(cases[3]),
            origin.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::judge;
    use crate::output::tests::{case, report};

    #[test]
    fn invalid_runs_show_as_invalid_not_as_figures() {
        let nginx = case(Scenario::CacheHit1k, "nginx", 20.0, 10_000.0);
        let mut portcullis = case(Scenario::CacheHit1k, "portcullis", 5.0, 30_000.0);
        for r in &mut portcullis.runs {
            if let Measured::Load(l) = &mut r.measured {
                l.cache = Some(judge("no cache-status header".into(), false, 3, 1000, 1000));
            }
        }
        portcullis.summary = super::super::Summary::of(&portcullis.runs);
        assert!(portcullis.summary.core_us_per_req.is_none());
        let md = report(vec![nginx, portcullis]).to_markdown();
        assert!(md.contains("## Cache hits"), "{md}");
        assert!(
            md.contains("| 1 KiB | 21.0 (20.0–22.0) | — | — | **invalid** (3/3 runs) | — | nginx 0, portcullis 3000 |"),
            "{md}"
        );
        // Not in the main table either.
        assert!(!md.contains("| cache-hit-1k | portcullis |"), "{md}");
    }

    #[test]
    fn valid_runs_give_the_ratio_to_nginx() {
        let nginx = case(Scenario::CacheHit64k, "nginx", 20.0, 10_000.0);
        let portcullis = case(Scenario::CacheHit64k, "portcullis", 14.0, 30_000.0);
        let md = report(vec![nginx, portcullis]).to_markdown();
        assert!(
            md.contains("| 64 KiB | 21.0 (20.0–22.0) | — | — | 15.0 (14.0–16.0) | **0.71** |"),
            "{md}"
        );
    }
}
