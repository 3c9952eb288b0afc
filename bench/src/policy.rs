//! The legal-order files of the policy scenarios, written at run time into
//! the run's temporary directory (a 1,000,000-host file is ~19 MB: never
//! committed), and the 451 page the peers serve in `policy-451`.
//!
//! Every file follows the policy format of issue #5 (`serial`, `blocked_by`,
//! `orders[]` with the full order fields). The small files are YAML with hosts
//! as `{ name, include_subdomains }`; the big tables are JSON (a subset of
//! YAML) with exact hosts as plain strings, the form the configuration
//! reference recommends for generated tables: serde-saphyr reads YAML at a few
//! MB/s, so a 1,000,000-host YAML file takes tens of seconds to load, while
//! the proxy's JSON fast path reads the same table in about a second. The bench crate does not link
//! `portcullis-policy` (a half-finished policy crate must not stop the peers'
//! runs); its tests parse what is written here with it.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

/// The host the `policy-451` scenario requests: suspended by [`SUSPENDED_ORDER`].
/// It is also one of the bench site's hosts, so without the order it would be
/// forwarded: a 451 can only come from the policy.
pub const SUSPENDED_HOST: &str = "suspended.example";
/// A host first served, then suspended by the order the reload adds.
pub const RELOADED_HOST: &str = "reloaded.example";
/// The id of the order suspending [`SUSPENDED_HOST`].
pub const SUSPENDED_ORDER: &str = "BENCH-451";
/// The id of the order the reload adds (it suspends [`RELOADED_HOST`]).
pub const RELOADED_ORDER: &str = "BENCH-RELOAD";
/// The `blocked_by` URL: the 451's `Link: <…>; rel="blocked-by"` (RFC 7725).
pub const BLOCKED_BY: &str = "https://edge.example.net/legal";
/// The reference of [`SUSPENDED_ORDER`]; every proxy's 451 body carries it,
/// which is what the check looks for.
pub const REFERENCE: &str = "BENCH-2026-451";
/// Bulk orders hold this many hosts each, like `policy/benches/table.rs`.
pub const HOSTS_PER_ORDER: usize = 1000;
/// Serial of the table loaded at start-up; the reload brings `+ 1`.
pub const TABLE_SERIAL: u64 = 2_026_120_100;

const AUTHORITY: &str = "Benchmark District Court";
const JURISDICTION: &str = "DE";
const LEGAL_BASIS: &str = "Bench Act s. 97";
const EFFECTIVE_FROM: &str = "2025-01-02T00:00:00Z";
const NOTICE_URL: &str = "https://notices.example/bench/451";

/// One of the files the scenarios load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyFile {
    /// Serial 1 and `orders: []`: the baseline of `policy-1m-table`.
    Empty,
    /// Serial 1 and the one order suspending [`SUSPENDED_HOST`] (`policy-451`).
    Suspended,
    /// `hosts` host names in all: the order suspending [`SUSPENDED_HOST`] plus
    /// bulk orders of [`HOSTS_PER_ORDER`] exact names (`h{i}.example`).
    /// Generation 1 (the reload's file, serial + 1) replaces the first bulk
    /// order with [`RELOADED_ORDER`], which suspends [`RELOADED_HOST`] and as
    /// many new names (`r{i}.example`): the same host count, one order
    /// removed and one added, as a real new order would arrive.
    Table { hosts: usize, generation: u8 },
}

impl PolicyFile {
    pub fn serial(self) -> u64 {
        match self {
            PolicyFile::Empty | PolicyFile::Suspended => 1,
            PolicyFile::Table { generation, .. } => TABLE_SERIAL + u64::from(generation),
        }
    }

    /// Host names in the file.
    pub fn hosts(self) -> usize {
        match self {
            PolicyFile::Empty => 0,
            PolicyFile::Suspended => 1,
            PolicyFile::Table { hosts, .. } => hosts.max(1),
        }
    }
}

fn order_head(w: &mut impl Write, id: &str, reference: &str) -> io::Result<()> {
    write!(
        w,
        "  - id: \"{id}\"\n    \
         authority: {{ name: \"{AUTHORITY}\", type: court, jurisdiction: \"{JURISDICTION}\" }}\n    \
         legal_basis: \"{LEGAL_BASIS}\"\n    \
         reference: \"{reference}\"\n    \
         issued_at: \"2025-01-01T00:00:00Z\"\n    \
         effective_from: \"{EFFECTIVE_FROM}\"\n    \
         expires_at: null\n    \
         notice_url: \"{NOTICE_URL}\"\n    \
         disclosure: public\n    \
         mode: enforce\n    \
         scope:\n      \
         hosts:\n"
    )
}

fn host(w: &mut impl Write, name: std::fmt::Arguments<'_>) -> io::Result<()> {
    writeln!(
        w,
        "        - {{ name: \"{name}\", include_subdomains: false }}"
    )
}

fn order_tail(w: &mut impl Write) -> io::Result<()> {
    w.write_all(b"    action: { type: unavailable_451 }\n")
}

/// Writes `file`: YAML for the small files, JSON for the tables.
pub fn write_policy(w: &mut impl Write, file: PolicyFile) -> io::Result<()> {
    let PolicyFile::Table { hosts, generation } = file else {
        return write_small_policy(w, file);
    };
    writeln!(
        w,
        "{{\"serial\": {}, \"blocked_by\": \"{BLOCKED_BY}\", \"orders\": [",
        file.serial()
    )?;
    json_order(
        w,
        SUSPENDED_ORDER,
        REFERENCE,
        &mut std::iter::once(SUSPENDED_HOST.to_owned()),
    )?;
    let bulk = hosts.saturating_sub(1);
    let mut start = 0;
    while start < bulk {
        let end = (start + HOSTS_PER_ORDER).min(bulk);
        w.write_all(b",\n")?;
        if start == 0 && generation > 0 {
            let mut names = std::iter::once(RELOADED_HOST.to_owned())
                .chain((1..end).map(|i| format!("r{i}.example")));
            json_order(w, RELOADED_ORDER, "BENCH-2026-RELOAD", &mut names)?;
        } else {
            let id = format!("BULK-{}", start / HOSTS_PER_ORDER);
            let mut names = (start..end).map(|i| format!("h{i}.example"));
            json_order(w, &id, &format!("BENCH-2026-{id}"), &mut names)?;
        }
        start = end;
    }
    w.write_all(b"\n]}\n")
}

/// One order as a JSON object, its exact hosts as plain strings.
fn json_order(
    w: &mut impl Write,
    id: &str,
    reference: &str,
    hosts: &mut dyn Iterator<Item = String>,
) -> io::Result<()> {
    write!(
        w,
        "{{\"id\": \"{id}\", \"authority\": {{\"name\": \"{AUTHORITY}\", \"type\": \"court\", \
         \"jurisdiction\": \"{JURISDICTION}\"}}, \"legal_basis\": \"{LEGAL_BASIS}\", \
         \"reference\": \"{reference}\", \"issued_at\": \"2025-01-01T00:00:00Z\", \
         \"effective_from\": \"{EFFECTIVE_FROM}\", \"expires_at\": null, \
         \"notice_url\": \"{NOTICE_URL}\", \"disclosure\": \"public\", \"mode\": \"enforce\", \
         \"action\": {{\"type\": \"unavailable_451\"}}, \"scope\": {{\"hosts\": ["
    )?;
    for (i, name) in hosts.enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        write!(w, "\n  \"{name}\"")?;
    }
    w.write_all(b"]}}")
}

/// Writes the small files as YAML.
fn write_small_policy(w: &mut impl Write, file: PolicyFile) -> io::Result<()> {
    write!(
        w,
        "# Written by portcullis-bench for a policy scenario.\n\
         serial: {}\nblocked_by: \"{BLOCKED_BY}\"\n",
        file.serial()
    )?;
    if file == PolicyFile::Empty {
        return w.write_all(b"orders: []\n");
    }
    w.write_all(b"orders:\n")?;
    order_head(w, SUSPENDED_ORDER, REFERENCE)?;
    host(w, format_args!("{SUSPENDED_HOST}"))?;
    order_tail(w)
}

/// Writes `file` to `path`.
pub fn write_policy_file(path: &Path, file: PolicyFile) -> Result<()> {
    let f = File::create(path).with_context(|| format!("creating {path:?}"))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    write_policy(&mut w, file)
        .and_then(|()| w.flush())
        .with_context(|| format!("writing {path:?}"))
}

/// The 451 page nginx and HAProxy serve for [`SUSPENDED_HOST`]: the fields
/// and layout of the page Portcullis renders for [`SUSPENDED_ORDER`]
/// (`portcullis_policy::page`), as a fixed string, since neither peer
/// generates one. One line, single-quoted attributes and no `"`, `$`, `\`
/// or `#`, so it sits verbatim inside a double-quoted nginx or HAProxy string.
pub fn peer_451_body() -> String {
    let fields = [
        ("Blocked host", SUSPENDED_HOST),
        ("Demanded by", AUTHORITY),
        ("Authority type", "court"),
        ("Jurisdiction", JURISDICTION),
        ("Legal basis", LEGAL_BASIS),
        ("Reference", REFERENCE),
        ("Territorial scope", "worldwide"),
        ("In effect since", EFFECTIVE_FROM),
        // Portcullis shows its per-request id here; the peers a fixed one.
        ("Request id", "0000000000000000"),
    ];
    let rows: String = fields
        .iter()
        .map(|(k, v)| format!("<tr><th>{k}</th><td>{v}</td></tr>"))
        .collect();
    format!(
        "<!DOCTYPE html><html><head><meta charset='utf-8'>\
         <title>451 Unavailable For Legal Reasons</title></head><body>\
         <h1>Unavailable For Legal Reasons</h1>\
         <p>Access to this resource has been blocked in response to a legal demand.</p>\
         <table>{rows}</table>\
         <p>The order is published at <a href='{NOTICE_URL}' rel='nofollow'>{NOTICE_URL}</a>.</p>\
         </body></html>"
    )
}

/// The `Link` header every proxy's 451 carries (RFC 7725 §4).
pub fn link_header() -> String {
    format!("<{BLOCKED_BY}>; rel=\"blocked-by\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_policy::page::{Format, blocked_response};
    use portcullis_policy::{CompiledPolicy, Policy, RequestFacts};
    use std::time::SystemTime;

    fn text(file: PolicyFile) -> String {
        let mut out = Vec::new();
        if let Err(e) = write_policy(&mut out, file) {
            panic!("writing to a Vec: {e}");
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn parsed(file: PolicyFile) -> Policy {
        match Policy::parse(&text(file), "bench.yaml") {
            Ok(p) => p,
            Err(e) => panic!("{file:?} does not parse:\n{e}"),
        }
    }

    fn blocked(c: &CompiledPolicy, host: &str) -> bool {
        c.decide(&RequestFacts {
            host,
            path: "/1k",
            country: None,
            sni: None,
            now: SystemTime::now(),
        })
        .is_blocked()
    }

    #[test]
    fn the_empty_policy_is_accepted() {
        let p = parsed(PolicyFile::Empty);
        assert_eq!((p.serial, p.orders.len()), (1, 0));
        let c = CompiledPolicy::compile(p);
        assert!(!blocked(&c, SUSPENDED_HOST));
        assert!(!blocked(&c, "bench.example"));
    }

    #[test]
    fn the_suspended_host_is_blocked_and_the_bench_host_is_not() {
        let p = parsed(PolicyFile::Suspended);
        assert_eq!(p.orders.len(), 1);
        assert_eq!(p.orders[0].id, SUSPENDED_ORDER);
        let c = CompiledPolicy::compile(p);
        assert!(blocked(&c, SUSPENDED_HOST));
        assert!(!blocked(&c, "bench.example"));
        assert!(!blocked(&c, RELOADED_HOST));
    }

    #[test]
    fn tables_have_the_host_count_and_the_reload_swaps_one_order() {
        let n = 2_500;
        let old = parsed(PolicyFile::Table {
            hosts: n,
            generation: 0,
        });
        let new = parsed(PolicyFile::Table {
            hosts: n,
            generation: 1,
        });
        assert_eq!((old.serial, new.serial), (TABLE_SERIAL, TABLE_SERIAL + 1));
        // The suspended host's order plus ceil(2499 / 1000) bulk orders.
        assert_eq!((old.orders.len(), new.orders.len()), (4, 4));
        assert_eq!(new.orders[1].id, RELOADED_ORDER);
        let (old, new) = (CompiledPolicy::compile(old), CompiledPolicy::compile(new));
        assert_eq!((old.host_count(), new.host_count()), (n, n));
        // The running table accepts the reload's file, and not the other way round.
        assert!(old.check_replacement(&new).is_ok());
        assert!(new.check_replacement(&old).is_err());
        for c in [&old, &new] {
            assert!(blocked(c, SUSPENDED_HOST));
            assert!(blocked(c, "h2498.example"));
            assert!(!blocked(c, "bench.example"));
        }
        assert!(!blocked(&old, RELOADED_HOST) && blocked(&new, RELOADED_HOST));
        assert!(blocked(&old, "h999.example") && !blocked(&new, "h999.example"));
        assert!(blocked(&new, "r999.example"));
    }

    #[test]
    fn table_files_are_named_by_their_size() {
        let t = PolicyFile::Table {
            hosts: 1_000_000,
            generation: 1,
        };
        assert_eq!((t.hosts(), t.serial()), (1_000_000, TABLE_SERIAL + 1));
        assert_eq!(PolicyFile::Empty.hosts(), 0);
        // One bulk order's worth of bytes, to size the 1M file (~19 MB as JSON).
        let one = text(PolicyFile::Table {
            hosts: 1 + HOSTS_PER_ORDER,
            generation: 0,
        });
        assert!(one.len() > 15_000 && one.len() < 25_000, "{}", one.len());
        assert!(
            one.starts_with('{'),
            "tables are JSON: the proxy's fast path"
        );
    }

    #[test]
    fn the_peers_page_looks_like_portcullis_page() {
        let p = parsed(PolicyFile::Suspended);
        let Some(r) = blocked_response(
            &p.orders[0],
            &p.blocked_by,
            SUSPENDED_HOST,
            "0123456789abcdef",
            Format::Html,
        ) else {
            panic!("a 451 order has a page");
        };
        assert_eq!(r.status, 451);
        assert!(r.body.contains(REFERENCE));
        assert!(r.headers.contains(&("Link", link_header())));
        assert!(
            r.headers
                .contains(&("Cache-Control", "no-store".to_owned()))
        );
        let peer = peer_451_body();
        assert!(peer.contains(REFERENCE));
        // Same fields, same layout: within 10% of Portcullis's page size.
        let (a, b) = (peer.len() as f64, r.body.len() as f64);
        assert!((a / b - 1.0).abs() < 0.1, "peer {a} bytes, portcullis {b}");
        // Safe inside a double-quoted nginx or HAProxy string.
        assert!(!peer.contains(['"', '$', '\\', '#', '\n']));
    }
}
