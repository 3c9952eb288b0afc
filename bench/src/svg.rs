//! A hand-written SVG bar chart: per group (scenario) one bar per series
//! (proxy) at the median, with a whisker from min to max. No plotting crate:
//! the chart is a few dozen elements.

use std::fmt::Write as _;

use crate::stats::Spread;

/// One bar: a series (proxy) and its figure.
#[derive(Debug, Clone)]
pub struct Bar {
    pub series: String,
    pub value: Spread,
}

/// Bars sharing an x position (one scenario).
#[derive(Debug, Clone)]
pub struct Group {
    pub label: String,
    pub bars: Vec<Bar>,
}

/// One chart panel with its own y axis.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub y_label: String,
    pub groups: Vec<Group>,
}

const WIDTH: f64 = 900.0;
const PANEL_HEIGHT: f64 = 340.0;
const HEADER: f64 = 70.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 6] = [
    "#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860",
];

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The smallest 1, 2, 2.5 or 5 × 10^k at or above `x`, so ticks are round.
fn nice_ceiling(x: f64) -> f64 {
    if !x.is_finite() || x <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|v| *v >= x)
        .unwrap_or(10.0 * mag)
}

/// Decimals needed to print multiples of `step` exactly (0.5 → 1, 40 → 0).
fn tick_decimals(step: f64) -> usize {
    (0..4)
        .find(|d| {
            let scaled = step * 10f64.powi(*d);
            (scaled - scaled.round()).abs() < 1e-6
        })
        .map_or(3, |d| d as usize)
}

fn fmt_value(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn panel(svg: &mut String, p: &Panel, series: &[String], y0: f64) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = PANEL_HEIGHT - TOP - BOTTOM;
    let (top, bottom) = (y0 + TOP, y0 + TOP + plot_h);
    let max = p
        .groups
        .iter()
        .flat_map(|g| g.bars.iter().map(|b| b.value.max))
        .fold(0.0, f64::max);
    let y_max = nice_ceiling(max * 1.05);
    let y = |v: f64| bottom - (v / y_max).clamp(0.0, 1.0) * plot_h;

    let _ = writeln!(
        svg,
        r#"<text class="title" x="{}" y="{}" text-anchor="middle">{}</text>"#,
        WIDTH / 2.0,
        y0 + 22.0,
        escape(&p.title)
    );
    // Axes, grid and ticks; all tick labels share the step's decimals.
    let decimals = tick_decimals(y_max / 5.0);
    for i in 0..=5 {
        let v = y_max * f64::from(i) / 5.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{x2}" y2="{yy:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{v:.decimals$}</text>"##,
            yy = y(v),
            x2 = LEFT + plot_w,
            tx = LEFT - 6.0,
            ty = y(v) + 4.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}" stroke="#333"/><line x1="{LEFT}" y1="{bottom}" x2="{x2}" y2="{bottom}" stroke="#333"/>"##,
        x2 = LEFT + plot_w
    );
    let (lx, ly) = (18.0, (top + bottom) / 2.0);
    let _ = writeln!(
        svg,
        r#"<text class="axis" x="{lx}" y="{ly}" text-anchor="middle" transform="rotate(-90 {lx} {ly})">{}</text>"#,
        escape(&p.y_label)
    );

    let group_w = plot_w / p.groups.len().max(1) as f64;
    // Bars fill 70% of a group but stay narrow enough to read as bars.
    let inner = (group_w * 0.7).min(70.0 * series.len() as f64);
    let bar_w = inner / series.len().max(1) as f64;
    for (gi, g) in p.groups.iter().enumerate() {
        let gx = LEFT + group_w * gi as f64 + (group_w - inner) / 2.0;
        for b in &g.bars {
            let Some(si) = series.iter().position(|s| *s == b.series) else {
                continue;
            };
            let x = gx + bar_w * si as f64;
            let cx = x + bar_w / 2.0;
            let v = b.value;
            let _ = writeln!(
                svg,
                r#"<rect class="bar" x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: median {} (min {}, max {}, {} rounds)</title></rect>"#,
                y(v.median),
                bar_w * 0.9,
                bottom - y(v.median),
                COLORS[si % COLORS.len()],
                escape(&format!("{} / {}", g.label, b.series)),
                fmt_value(v.median),
                fmt_value(v.min),
                fmt_value(v.max),
                v.n
            );
            // Whisker from min to max with caps.
            let cx = cx - bar_w * 0.05;
            let cap = bar_w * 0.2;
            let _ = writeln!(
                svg,
                r##"<path class="whisker" d="M{:.1} {:.1}H{:.1}M{cx:.1} {:.1}V{:.1}M{:.1} {:.1}H{:.1}" stroke="#222" fill="none"/>"##,
                cx - cap,
                y(v.max),
                cx + cap,
                y(v.max),
                y(v.min),
                cx - cap,
                y(v.min),
                cx + cap
            );
            let _ = writeln!(
                svg,
                r#"<text class="value" x="{cx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                y(v.max) - 4.0,
                fmt_value(v.median)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + group_w * (gi as f64 + 0.5),
            bottom + 18.0,
            escape(&g.label)
        );
    }
}

/// The whole chart: a title, a legend of `series`, then the panels stacked.
pub fn render(title: &str, subtitle: &str, series: &[String], panels: &[Panel]) -> String {
    let height = HEADER + PANEL_HEIGHT * panels.len() as f64;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        "<style>.title{{font-size:15px;font-weight:bold}}.axis{{font-size:13px}}.value{{font-size:10px}}</style>"
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text class="title" x="{}" y="22" text-anchor="middle">{}</text><text x="{}" y="40" text-anchor="middle">{}</text>"#,
        WIDTH / 2.0,
        escape(title),
        WIDTH / 2.0,
        escape(subtitle)
    );
    for (i, s) in series.iter().enumerate() {
        let x = LEFT + 150.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<g class="legend"><rect x="{x}" y="52" width="14" height="14" fill="{}"/><text x="{}" y="63">{}</text></g>"#,
            COLORS[i % COLORS.len()],
            x + 20.0,
            escape(s)
        );
    }
    for (i, p) in panels.iter().enumerate() {
        panel(&mut svg, p, series, HEADER + PANEL_HEIGHT * i as f64);
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(v: &[f64]) -> Spread {
        Spread::of(v).unwrap_or(Spread {
            median: 0.0,
            min: 0.0,
            max: 0.0,
            n: 0,
        })
    }

    #[test]
    fn chart_is_well_formed_and_names_every_proxy() -> Result<(), roxmltree::Error> {
        let series: Vec<String> = ["nginx", "haproxy", "portcullis <dev> & co"]
            .map(String::from)
            .to_vec();
        let groups = ["h1-keepalive-1k", "h1-keepalive-64k"]
            .iter()
            .map(|g| Group {
                label: g.to_string(),
                bars: series
                    .iter()
                    .map(|s| Bar {
                        series: s.clone(),
                        value: spread(&[10.0, 11.0, 12.5]),
                    })
                    .collect(),
            })
            .collect();
        let panels = [
            Panel {
                title: "Proxy-core µs per request".into(),
                y_label: "µs / request".into(),
                groups,
            },
            Panel {
                title: "Idle".into(),
                y_label: "KiB".into(),
                groups: vec![],
            },
        ];
        let svg = render("Portcullis vs nginx & HAProxy", "date", &series, &panels);
        let doc = roxmltree::Document::parse(&svg)?;
        let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
        for s in &series {
            assert!(texts.iter().any(|t| t == s), "legend lacks {s}");
        }
        let bars = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("bar"))
            .count();
        assert_eq!(bars, 6);
        let whiskers = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("whisker"))
            .count();
        assert_eq!(whiskers, 6);
        Ok(())
    }

    #[test]
    fn nice_axis_maxima() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.3), 10.0);
        assert_eq!(nice_ceiling(18.0), 20.0);
        assert_eq!(nice_ceiling(21.0), 25.0);
        assert_eq!(nice_ceiling(36.5), 50.0);
        assert_eq!(tick_decimals(40.0), 0);
        assert_eq!(tick_decimals(0.5), 1);
        assert_eq!(tick_decimals(0.05), 2);
    }
}
