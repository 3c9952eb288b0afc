//! Where a 1,000,000-host reload's time goes: parse (JSON → located tree → validated policy),
//! compile, and dropping the old table. Writes the table to a temporary file first, in the
//! bench's format (one order per 1000 exact names, plain strings).
//!
//! `cargo run --release -p portcullis-policy --example reload_cost [HOSTS]`

use std::fmt::Write as _;
use std::time::Instant;

use portcullis_policy::{CompiledPolicy, Policy};

fn table(hosts: usize) -> String {
    let mut s = String::with_capacity(hosts * 24 + 1024);
    s.push_str("{\"serial\": 1, \"blocked_by\": \"https://edge.example.net/legal\", \"orders\": [");
    let mut start = 0;
    let mut first = true;
    while start < hosts {
        let end = (start + 1000).min(hosts);
        if !first {
            s.push_str(",\n");
        }
        first = false;
        let id = start / 1000;
        let _ = write!(
            s,
            "{{\"id\": \"BULK-{id}\", \"authority\": {{\"name\": \"Court\", \"type\": \"court\", \
             \"jurisdiction\": \"DE\"}}, \"legal_basis\": \"law\", \
             \"reference\": \"REF-{id}\", \"issued_at\": \"2025-01-01T00:00:00Z\", \
             \"effective_from\": \"2025-01-01T00:00:00Z\", \"expires_at\": null, \
             \"notice_url\": \"https://example.org/n\", \"disclosure\": \"public\", \"mode\": \"enforce\", \
             \"action\": {{\"type\": \"unavailable_451\"}}, \"scope\": {{\"hosts\": ["
        );
        for i in start..end {
            if i > start {
                s.push(',');
            }
            let _ = write!(s, "\n  \"h{i}.example\"");
        }
        s.push_str("]}}");
        start = end;
    }
    s.push_str("\n]}\n");
    s
}

fn main() {
    let hosts: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let text = table(hosts);
    println!("{hosts} hosts, {} MB of JSON", text.len() >> 20);
    let mut old: Option<CompiledPolicy> = None;
    for round in 0..4 {
        let t = Instant::now();
        let policy = match Policy::parse(&text, "table.json") {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let parsed = t.elapsed();
        let compiled = CompiledPolicy::compile(policy);
        let compile = t.elapsed() - parsed;
        let t2 = Instant::now();
        drop(old.replace(compiled));
        let dropped = t2.elapsed();
        println!(
            "round {round}: parse {:>4} ms, compile {:>4} ms, drop old {:>4} ms",
            parsed.as_millis(),
            compile.as_millis(),
            dropped.as_millis()
        );
    }
}
