//! The correctness check run through each proxy before it is timed: status
//! 200 and the exact body, for each body size, over HTTP/1.1 and (when the
//! h2c scenario runs) HTTP/2; when a TLS scenario runs, the same over HTTPS
//! with curl trusting the run's CA only: TLS 1.3, HTTP/1.1, and HTTP/2 by
//! ALPN when the HTTP/2-over-TLS scenario runs. Under a policy set-up, also
//! what the policy must do ([`check_setup`]).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cmd::run_bounded;
use crate::h2load::parse_nghttp_trace;
use crate::net::{
    BENCH_HOST, Response, ensure_loopback, ensure_loopback_url, http_exchange, http_get,
};
use crate::peers::{Server, body};
use crate::policy::{REFERENCE, RELOADED_HOST, SUSPENDED_HOST, link_header};
use crate::reload::admin_serial;
use crate::setup::Setup;
use crate::tls::TlsFiles;
use crate::tools::{self, Tools};

/// What to check besides plain HTTP/1.1.
#[derive(Debug, Clone, Copy, Default)]
pub struct Checks<'a> {
    /// h2c (prior knowledge) on the h2 port.
    pub h2c: bool,
    /// HTTPS/1.1 on the TLS port, trusting this certificate's CA.
    pub tls: Option<&'a TlsFiles>,
    /// HTTP/2 over TLS (ALPN h2) too.
    pub tls_h2: bool,
}

/// What curl reports about one HTTPS exchange: `-w '%{http_code}
/// %{size_download} %{http_version}'` on stdout, and from `-v` on stderr
/// `* SSL connection using TLSv1.3 / TLS_AES_256_GCM_SHA384`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurlResult {
    pub status: u16,
    pub size: u64,
    pub http_version: String,
    pub tls_version: String,
    pub cipher: String,
}

pub fn parse_curl(stdout: &str, stderr: &str) -> Result<CurlResult> {
    let mut w = stdout.split_whitespace();
    let (Some(status), Some(size), Some(http_version)) = (w.next(), w.next(), w.next()) else {
        bail!("curl printed {stdout:?}, want \"STATUS SIZE VERSION\"");
    };
    let (tls_version, cipher) = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("* SSL connection using "))
        .and_then(|rest| rest.split_once(" / "))
        .context("curl -v shows no \"SSL connection using\" line")?;
    Ok(CurlResult {
        status: status
            .parse()
            .with_context(|| format!("bad status {status:?}"))?,
        size: size.parse().with_context(|| format!("bad size {size:?}"))?,
        http_version: http_version.to_owned(),
        tls_version: tls_version.trim().to_owned(),
        cipher: cipher.trim().to_owned(),
    })
}

/// One HTTPS GET with curl, checked for TLS 1.3, 200, the HTTP version and
/// the exact body. Returns curl's report.
fn check_https(
    server: &Server,
    tools: &Tools,
    scratch: &Path,
    tls: &TlsFiles,
    path: &str,
    len: usize,
    h2: bool,
) -> Result<CurlResult> {
    let port = server.tls_port.context("no TLS listener")?;
    let target = ensure_loopback("127.0.0.1")?;
    let body_file = scratch.join("curl-check.body");
    let _ = std::fs::remove_file(&body_file);
    let mut cmd = Command::new(tools.path(tools::CURL)?);
    // --resolve pins the name to the loopback address (no DNS, no proxy), so
    // the certificate is verified for the bench host against the run's CA.
    cmd.args(["-sS", "-v", "--noproxy", "*", "--max-time", "5"])
        .arg("--cacert")
        .arg(&tls.ca)
        .arg("--resolve")
        .arg(format!("{BENCH_HOST}:{port}:{target}"))
        .arg(if h2 { "--http2" } else { "--http1.1" })
        .arg("-o")
        .arg(&body_file)
        .args(["-w", "%{http_code} %{size_download} %{http_version}"])
        .arg(format!("https://{BENCH_HOST}:{port}{path}"));
    let what = format!(
        "{}: HTTPS ({}) GET {path}",
        server.name,
        if h2 { "HTTP/2" } else { "HTTP/1.1" }
    );
    let out = run_bounded(cmd, Duration::from_secs(10), scratch, "curl-check")?;
    let r = parse_curl(&out.stdout, &out.stderr).with_context(|| {
        format!(
            "{what}: {}",
            crate::cmd::last_lines(&out.stderr, 5).replace('\n', " | ")
        )
    })?;
    let want_version = if h2 { "2" } else { "1.1" };
    if (r.status, r.http_version.as_str(), r.tls_version.as_str()) != (200, want_version, "TLSv1.3")
    {
        bail!(
            "{what}: status {} over HTTP/{} and {}, want 200 over HTTP/{want_version} and TLSv1.3",
            r.status,
            r.http_version,
            r.tls_version
        );
    }
    let got = std::fs::read(&body_file).unwrap_or_default();
    if got.len() != len || got != body(len) {
        bail!(
            "{what}: body of {} bytes differs from the origin's {len}",
            got.len()
        );
    }
    Ok(r)
}

/// The paths the origin serves and their sizes.
pub const BODIES: [(&str, usize); 2] = [("/1k", 1024), ("/64k", 64 * 1024)];

/// Runs the checks; returns what TLS negotiated (`TLSv1.3 / CIPHER`) when
/// TLS was checked.
pub fn check(
    server: &Server,
    tools: &Tools,
    scratch: &Path,
    checks: Checks<'_>,
) -> Result<Option<String>> {
    let mut negotiated = None;
    let h2 = checks.h2c;
    for (path, len) in BODIES {
        if let Some(tls) = checks.tls {
            let r = check_https(server, tools, scratch, tls, path, len, false)?;
            negotiated = Some(format!("{} / {}", r.tls_version, r.cipher));
            if checks.tls_h2 {
                check_https(server, tools, scratch, tls, path, len, true)?;
            }
        }
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
    Ok(negotiated)
}

fn get(server: &Server, host: &str) -> Result<Response> {
    http_exchange(
        server.h1_port,
        "GET",
        "/1k",
        host,
        &[],
        Duration::from_secs(5),
    )
    .with_context(|| format!("{}: GET /1k for {host}", server.name))
}

/// A proxy-made 451 for a suspended host: RFC 7725's `Link`, `Cache-Control:
/// no-store`, an HTML page naming the order's reference.
pub fn check_451(what: &str, r: &Response) -> Result<()> {
    if r.status != 451 {
        bail!("{what}: status {}, want 451", r.status);
    }
    let link = link_header();
    let want = [
        ("link", link.as_str()),
        ("cache-control", "no-store"),
        ("content-type", "text/html"),
    ];
    for (name, value) in want {
        match r.header(name) {
            Some(v) if v.starts_with(value) => {}
            got => bail!("{what}: {name} is {got:?}, want {value:?}"),
        }
    }
    if !String::from_utf8_lossy(&r.body).contains(REFERENCE) {
        bail!("{what}: the 451 page does not name the order ({REFERENCE})");
    }
    Ok(())
}

fn check_forwarded(what: &str, r: &Response) -> Result<()> {
    if (r.status, r.body.len()) != (200, 1024) || r.body != body(1024) {
        bail!(
            "{what}: status {} with {} body bytes, want 200 and the origin's 1 KiB",
            r.status,
            r.body.len()
        );
    }
    Ok(())
}

/// What a policy set-up must do before it is timed: the suspended host gets
/// the proxy's 451 (every proxy, in `policy-451`); Portcullis runs the
/// serial it was given and blocks exactly what its table says.
pub fn check_setup(server: &Server, setup: Setup) -> Result<()> {
    let name = &server.name;
    let suspended = format!("{name}: GET /1k for {SUSPENDED_HOST}");
    match setup {
        // The cache set-up is warmed up and checked per run (`cache`).
        Setup::Plain | Setup::Idle | Setup::Cache => return Ok(()),
        Setup::Suspended | Setup::BigTable | Setup::Reload => {
            check_451(&suspended, &get(server, SUSPENDED_HOST)?)?;
        }
        Setup::EmptyTable => check_forwarded(&suspended, &get(server, SUSPENDED_HOST)?)?,
    }
    if setup == Setup::Reload {
        let what = format!("{name}: GET /1k for {RELOADED_HOST} before the reload");
        check_forwarded(&what, &get(server, RELOADED_HOST)?)?;
    }
    if let (Some(admin), Some(live)) = (server.admin_port, &server.policy) {
        let serial = admin_serial(admin).with_context(|| format!("{name}: admin"))?;
        if serial != live.serial {
            bail!(
                "{name}: GET /admin/policy shows serial {serial}, want {} ({})",
                live.serial,
                live.file.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // curl 7.88.1 (OpenSSL 3.0) against nginx on this machine, trimmed.
    const STDERR: &str = "* Added bench.example:41443:127.0.0.1 to DNS cache\n\
        * ALPN: offers h2,http/1.1\n\
        * SSL connection using TLSv1.3 / TLS_AES_256_GCM_SHA384\n\
        * ALPN: server accepted h2\n\
        * Server certificate:\n\
        *  subject: CN=bench.example\n";

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_451_needs_its_headers_and_the_order() -> Result<()> {
        let link = link_header();
        let headers = [
            ("content-type", "text/html; charset=utf-8"),
            ("link", link.as_str()),
            ("cache-control", "no-store"),
        ];
        let page = crate::policy::peer_451_body();
        check_451("ok", &response(451, &headers, &page))?;
        assert!(check_451("200", &response(200, &headers, &page)).is_err());
        assert!(check_451("no link", &response(451, &headers[..1], &page)).is_err());
        assert!(check_451("no order", &response(451, &headers, "<html></html>")).is_err());
        Ok(())
    }

    #[test]
    fn curl_report() -> Result<()> {
        let r = parse_curl("200 65536 2", STDERR)?;
        assert_eq!(
            r,
            CurlResult {
                status: 200,
                size: 65536,
                http_version: "2".into(),
                tls_version: "TLSv1.3".into(),
                cipher: "TLS_AES_256_GCM_SHA384".into(),
            }
        );
        assert_eq!(parse_curl("421 0 1.1", STDERR)?.http_version, "1.1");
        // No handshake (refused, or a certificate curl did not trust).
        assert!(parse_curl("000 0 0", "* connect to 127.0.0.1 port 1 failed\n").is_err());
        assert!(parse_curl("", STDERR).is_err());
        Ok(())
    }
}
