//! Parsing `openssl s_time` output (the TLS handshake scenarios).
//!
//! s_time opens one connection after another for `-time` seconds. With
//! `-new` every connection is a full handshake; with `-reuse` it first makes
//! one connection to get a session, then resumes that session on every
//! connection it times. For each timed connection it prints one mark: `r`
//! when the session was resumed (`SSL_session_reused`), otherwise a mark for
//! the version of a full handshake (`*` for TLS 1.2 and 1.3). So the output
//! itself proves what kind of handshake each connection made. It ends with
//!
//! ```text
//! 547 connections in 0.56s; 976.79 connections/user sec, bytes read 696331
//! 547 connections in 3 real seconds, 1273 bytes read per connection
//! ```

use anyhow::{Context, Result, bail};

/// What one s_time process reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct STime {
    /// Timed connections (the "N connections in T real seconds" line).
    pub connections: u64,
    /// Whole seconds s_time itself measured (time(2) resolution).
    pub real_s: u64,
    /// Bytes of HTTP response read per connection (with `-www`).
    pub bytes_per_conn: u64,
    /// Connections marked `r`: resumed sessions.
    pub resumed: u64,
    /// Connections marked with a version (`*`, `t`, `3`): full handshakes.
    pub full: u64,
}

impl STime {
    /// Sums the reports of processes run side by side.
    pub fn sum(all: &[STime]) -> STime {
        let connections: u64 = all.iter().map(|s| s.connections).sum();
        let bytes: u64 = all.iter().map(|s| s.bytes_per_conn * s.connections).sum();
        STime {
            connections,
            real_s: all.iter().map(|s| s.real_s).max().unwrap_or(0),
            bytes_per_conn: bytes.checked_div(connections).unwrap_or(0),
            resumed: all.iter().map(|s| s.resumed).sum(),
            full: all.iter().map(|s| s.full).sum(),
        }
    }
}

/// A line made only of per-connection marks.
fn is_marks(line: &str) -> bool {
    !line.is_empty() && line.chars().all(|c| matches!(c, 'r' | '*' | 't' | '3'))
}

pub fn parse(output: &str) -> Result<STime> {
    let mut out = STime::default();
    let mut found = false;
    for line in output.lines() {
        let t = line.trim();
        if is_marks(t) {
            let resumed = t.chars().filter(|c| *c == 'r').count() as u64;
            out.resumed += resumed;
            out.full += t.len() as u64 - resumed;
        } else if let Some((n, rest)) = t.split_once(" connections in ")
            && let Some((secs, rest)) = rest.split_once(" real seconds, ")
        {
            // `547 connections in 3 real seconds, 1273 bytes read per connection`
            out.connections = n
                .parse()
                .with_context(|| format!("bad connection count in {t:?}"))?;
            out.real_s = secs
                .parse()
                .with_context(|| format!("bad seconds in {t:?}"))?;
            out.bytes_per_conn = rest
                .strip_suffix(" bytes read per connection")
                .with_context(|| format!("no bytes per connection in {t:?}"))?
                .parse()
                .with_context(|| format!("bad bytes per connection in {t:?}"))?;
            found = true;
        }
    }
    if !found {
        bail!("s_time output has no \"N connections in T real seconds\" line");
    }
    if out.resumed + out.full != out.connections {
        bail!(
            "s_time marked {} connections ({} resumed, {} full) but counted {}",
            out.resumed + out.full,
            out.resumed,
            out.full,
            out.connections
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real outputs of Debian's OpenSSL 3.0 s_time on this machine (marks
    // shortened to match the counts).
    const NEW: &str = "Collecting connection statistics for 2 seconds\n\
        *****\n\n\
        5 connections in 0.56s; 976.79 connections/user sec, bytes read 6365\n\
        5 connections in 3 real seconds, 1273 bytes read per connection\n";
    const REUSE: &str = "\n\nNow timing with session id reuse.\nstarting\n\
        rrrrrrr\n\n\
        7 connections in 0.44s; 1963.64 connections/user sec, bytes read 8911\n\
        7 connections in 3 real seconds, 1273 bytes read per connection\n";

    #[test]
    fn full_handshakes() -> Result<()> {
        let s = parse(NEW)?;
        assert_eq!(
            s,
            STime {
                connections: 5,
                real_s: 3,
                bytes_per_conn: 1273,
                resumed: 0,
                full: 5
            }
        );
        Ok(())
    }

    #[test]
    fn resumed_handshakes_and_sums() -> Result<()> {
        let s = parse(REUSE)?;
        assert_eq!((s.connections, s.resumed, s.full), (7, 7, 0));
        let total = STime::sum(&[parse(NEW)?, s]);
        assert_eq!((total.connections, total.resumed, total.full), (12, 7, 5));
        assert_eq!((total.bytes_per_conn, total.real_s), (1273, 3));
        assert_eq!(STime::sum(&[]), STime::default());
        Ok(())
    }

    #[test]
    fn mixed_marks_are_counted() -> Result<()> {
        let s = parse(
            "starting\nrr*r\n4 connections in 1 real seconds, 0 bytes read per connection\n",
        )?;
        assert_eq!((s.resumed, s.full, s.bytes_per_conn), (3, 1, 0));
        Ok(())
    }

    #[test]
    fn failures_are_errors() {
        // A refused connection: s_time stops before its summary.
        assert!(
            parse("Collecting connection statistics for 1 seconds\nUnable to get connection\n")
                .is_err()
        );
        // Marks and count disagree.
        assert!(
            parse("**\n3 connections in 1 real seconds, 10 bytes read per connection\n").is_err()
        );
        assert!(parse("x connections in 1 real seconds, 10 bytes read per connection\n").is_err());
    }
}
