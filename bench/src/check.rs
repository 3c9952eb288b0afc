//! The correctness check run through each proxy before it is timed: status
//! 200 and the exact body, for each body size, over HTTP/1.1 and (when the
//! h2c scenario runs) HTTP/2.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cmd::run_bounded;
use crate::h2load::parse_nghttp_trace;
use crate::net::{BENCH_HOST, ensure_loopback_url, http_get};
use crate::peers::{Server, body};
use crate::tools::{self, Tools};

/// The paths the origin serves and their sizes.
pub const BODIES: [(&str, usize); 2] = [("/1k", 1024), ("/64k", 64 * 1024)];

pub fn check(server: &Server, tools: &Tools, scratch: &Path, h2: bool) -> Result<()> {
    for (path, len) in BODIES {
        let resp = http_get(server.h1_port, path, Duration::from_secs(5))
            .with_context(|| format!("{}: HTTP/1.1 GET {path}", server.name))?;
        if resp.status != 200 {
            bail!(
                "{}: HTTP/1.1 GET {path}: status {}, want 200",
                server.name,
                resp.status
            );
        }
        if resp.body.len() != len {
            bail!(
                "{}: HTTP/1.1 GET {path}: body {} bytes, want {len}",
                server.name,
                resp.body.len()
            );
        }
        if resp.body != body(len) {
            bail!(
                "{}: HTTP/1.1 GET {path}: body differs from the origin's",
                server.name
            );
        }
        if h2 {
            let url = format!("http://127.0.0.1:{}{path}", server.h2_port);
            ensure_loopback_url(&url)?;
            let mut cmd = Command::new(tools.path(tools::NGHTTP)?);
            // -n discards the body; -v traces frames, which carry its length.
            cmd.arg("-nv")
                .arg(format!("--header=:authority: {BENCH_HOST}"))
                .arg("--timeout=5")
                .arg(&url);
            let out = run_bounded(cmd, Duration::from_secs(10), scratch, "nghttp-check")?;
            let (status, got) = parse_nghttp_trace(&out.stdout).with_context(|| {
                format!(
                    "{}: HTTP/2 (h2c) GET {path}: {}{}",
                    server.name,
                    crate::cmd::last_lines(&out.stdout, 5),
                    crate::cmd::last_lines(&out.stderr, 5)
                )
            })?;
            if (status, got) != (200, len as u64) {
                bail!(
                    "{}: HTTP/2 (h2c) GET {path}: status {status} and {got} body bytes, want 200 and {len}",
                    server.name
                );
            }
        }
    }
    Ok(())
}
