//! The `portcullis` binary as an operator runs it: `check` on good and bad configs, `demo`
//! serving a request, and `run` draining on SIGTERM.
//!
//! Every address is `127.0.0.1:0`; the binary reports the ports it got in its log or banner.
//! Helpers live in `support/` (this crate's own dependencies only: the harness crate depends on
//! this one).

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::ensure;
use http::StatusCode;
use tokio::net::TcpStream;
use tokio::sync::watch;

use support::{
    BOUND, Conn, Reaper, gated_origin, get, logged_addr, stdout_lines, until, wait_line,
};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn check(config: &Path) -> anyhow::Result<Output> {
    Ok(Command::new(BIN)
        .args(["check", "--config"])
        .arg(config)
        .output()?)
}

#[test]
fn check_accepts_a_good_config() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("admin.token"), "s3cret\n")?;
    let config = dir.path().join("edge.yaml");
    std::fs::write(
        &config,
        r#"
listeners:
  - address: "127.0.0.1:0"
admin:
  address: "127.0.0.1:0"
  token_file: "admin.token"
limits:
  max_connections: 100
  header_read_timeout: "10s"
  idle_timeout: "60s"
  max_request_body: "100MiB"
  max_header_size: "16KiB"
logging:
  access_log: true
  level: info
sites:
  - name: shop
    hosts: ["shop.example", "www.shop.example"]
    origins: ["http://127.0.0.1:9000", "http://127.0.0.1:9001"]
    connect_timeout: "2s"
    response_timeout: "30s"
    origin_down_for: "10s"
  - name: api
    hosts: ["api.example"]
    origins: ["http://127.0.0.1:9100"]
    h2: true
"#,
    )?;
    let out = check(&config)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("OK"), "{stdout}");
    assert!(
        stdout.contains("shop") && stdout.contains("api"),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn check_prints_every_error_with_file_line_and_key() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("bad.yaml");
    std::fs::write(
        &config,
        r#"listeners:
  - address: "not-an-address"
admin:
  address: "127.0.0.1:0"
  token_file: "missing.token"
limits:
  max_connections: 0
  header_read_timeout: "10 sec"
  max_request_body: "10MB"
sites:
  - name: shop
    hosts: []
    origins: ["ftp://127.0.0.1:9000"]
  - name: shop
    hosts: ["a.example", "a.example"]
    origins: ["http://127.0.0.1:9000"]
    response_timeout: "30"
  - name: other
    hosts: ["A.example"]
    origins: ["http://127.0.0.1:9000/path"]
"#,
    )?;
    let out = check(&config)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    let file = config.display();
    let expected = [
        (2, "listeners[0].address", "not-an-address"),
        (5, "admin.token_file", "missing.token"),
        (7, "limits.max_connections", "greater than zero"),
        (8, "limits.header_read_timeout", "10 sec"),
        (9, "limits.max_request_body", "10MB"),
        (12, "sites[0].hosts", "must not be empty"),
        (13, "sites[0].origins[0]", "ftp://"),
        (14, "sites[1].name", "used twice"),
        (15, "sites[1].hosts[1]", "a.example"),
        (17, "sites[1].response_timeout", "\"30\""),
        (19, "sites[2].hosts[0]", "a.example"),
        (20, "sites[2].origins[0]", "path"),
    ];
    for (line, key, fragment) in expected {
        let prefix = format!("{file}:{line}: {key}: ");
        let found = stderr
            .lines()
            .any(|l| l.trim_start().starts_with(&prefix) && l.contains(fragment));
        assert!(found, "no line `{prefix}...{fragment}...` in:\n{stderr}");
    }
    let reported = stderr
        .lines()
        .filter(|l| l.contains(&*file.to_string()))
        .count();
    assert_eq!(reported, expected.len(), "one line per error:\n{stderr}");
    Ok(())
}

#[test]
fn check_names_an_unknown_key_and_its_line() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("typo.yaml");
    std::fs::write(
        &config,
        "listeners:\n  - address: \"127.0.0.1:0\"\nsites:\n  - name: shop\n    hosts: [\"shop.example\"]\n    origins: [\"http://127.0.0.1:9000\"]\n    respone_timeout: \"1s\"\n",
    )?;
    let out = check(&config)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("{}:7:", config.display())),
        "{stderr}"
    );
    assert!(stderr.contains("respone_timeout"), "{stderr}");
    Ok(())
}

#[test]
fn check_and_run_refuse_a_missing_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("absent.yaml");
    let out = check(&config)?;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent.yaml"));
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .output()?;
    assert_eq!(
        out.status.code(),
        Some(1),
        "run must not start without a config"
    );
    Ok(())
}

#[tokio::test]
async fn demo_starts_and_proxies_a_request() -> anyhow::Result<()> {
    let mut child = Command::new(BIN)
        .arg("demo")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let rx = stdout_lines(&mut child)?;
    let _reaper = Reaper(child);
    let mut seen = Vec::new();
    let url = |prefix: &str, line: &str| -> Option<SocketAddr> {
        let rest = line.trim_start().strip_prefix(prefix)?.trim_start();
        rest.strip_prefix("http://")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let proxy = wait_line(&rx, &mut seen, |l| url("proxy", l))?;
    // `  https   https://shop.example:PORT   (...; resolves to IP; CA PATH)`
    let (https_port, ca) = wait_line(&rx, &mut seen, |l| {
        let rest = l.trim_start().strip_prefix("https")?.trim_start();
        let port = rest
            .strip_prefix("https://shop.example:")?
            .split_whitespace()
            .next()?;
        let ca = rest.split("CA ").nth(1)?.strip_suffix(')')?;
        Some((port.parse::<u16>().ok()?, ca.to_owned()))
    })?;
    let admin = wait_line(&rx, &mut seen, |l| url("admin", l))?;

    let (status, body) = get(proxy, "shop.example", "/hello").await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("/hello"),
        "the demo origin echoes the path: {body}"
    );
    assert!(
        body.to_ascii_lowercase()
            .contains("x-forwarded-host: shop.example"),
        "{body}"
    );
    let (status, _) = get(proxy, "unknown.example", "/").await?;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
    // The demo's suspended host: the order's page, never the origin's echo.
    let (status, body) = get(proxy, "pirate.example", "/").await?;
    assert_eq!(status, StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, "{body}");
    assert!(
        body.contains("Southern District of New York") && !body.contains("demo origin"),
        "{body}"
    );

    // The cache: the banner's /static/ URL is stored on the first request, a hit on the second.
    let cache_status = |out: std::process::Output| -> anyhow::Result<String> {
        let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        text.lines()
            .find_map(|l| l.strip_prefix("cache-status:").map(|v| v.trim().to_owned()))
            .ok_or_else(|| anyhow::anyhow!("no Cache-Status in {text}"))
    };
    let fetch = || {
        Command::new("curl")
            .args(["-sS", "-D", "-", "-o", "/dev/null", "--max-time", "20"])
            .args(["-H", "Host: shop.example"])
            .arg(format!("http://{proxy}/static/logo.txt"))
            .output()
            .map_err(|e| anyhow::anyhow!("cannot run curl (Debian package `curl`): {e}"))
    };
    let first = cache_status(fetch()?)?;
    assert!(
        first.contains("fwd=uri-miss") && first.contains("stored"),
        "{first}"
    );
    let second = cache_status(fetch()?)?;
    assert!(second.starts_with("portcullis; hit"), "{second}");

    // HTTPS with the demo's own CA, as the banner suggests (curl: Debian package `curl`).
    let out = Command::new("curl")
        .args([
            "-sS",
            "--http2",
            "--max-time",
            "20",
            "--cacert",
            &ca,
            "--resolve",
        ])
        .arg(format!("shop.example:{https_port}:127.0.0.1"))
        .args(["-w", "\n%{http_version}"])
        .arg(format!("https://shop.example:{https_port}/tls"))
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run curl (Debian package `curl`): {e}"))?;
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{body}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(body.contains("/tls") && body.ends_with("\n2"), "{body}");
    assert!(
        body.to_ascii_lowercase()
            .contains("x-forwarded-proto: https"),
        "{body}"
    );

    // The demo's small rate limit on api.example: 429 after the burst of 5, as the banner says.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(get(proxy, "api.example", "/").await?.0);
    }
    assert_eq!(statuses[0], StatusCode::OK, "{statuses:?}");
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "the demo limit must answer 429 after its burst: {statuses:?}"
    );

    let (status, metrics) = get(admin, "admin", "/metrics").await?;
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics
            .contains("portcullis_tls_handshakes_total{result=\"success\",version=\"TLSv1.3\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_requests_total{site=\"shop\",status_class=\"2xx\"} 4"),
        "{metrics}"
    );
    for result in ["hit", "miss"] {
        let line = format!("portcullis_cache_requests_total{{result=\"{result}\",site=\"shop\"}} ");
        assert!(metrics.contains(&line), "{line}: {metrics}");
    }
    assert!(metrics.contains("portcullis_cache_objects 1"), "{metrics}");
    assert!(
        metrics.contains("portcullis_policy_blocked_requests_total{action=\"unavailable_451\",order=\"US-SDNY-2026-CV-0142\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("portcullis_policy_serial 2026112601"),
        "{metrics}"
    );
    let limited = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("portcullis_protection_rejected_total{reason=\"rate\",site=\"api\"} ")
        })
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(limited.is_some_and(|n| n >= 1.0), "{metrics}");
    Ok(())
}

#[tokio::test]
async fn sigterm_drains_the_in_flight_request_then_exits() -> anyhow::Result<()> {
    let (open, gate) = watch::channel(false);
    let received = Arc::new(AtomicUsize::new(0));
    let origin = gated_origin(gate, received.clone()).await?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("edge.yaml");
    std::fs::write(
        &config,
        format!(
            "listeners:\n  - address: \"127.0.0.1:0\"\nadmin:\n  address: \"127.0.0.1:0\"\n\
             sites:\n  - name: shop\n    hosts: [\"shop.example\"]\n    origins: [\"http://{origin}\"]\n"
        ),
    )?;
    let mut child = Command::new(BIN)
        .args(["run", "--grace", "20s", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let rx = stdout_lines(&mut child)?;
    let mut reaper = Reaper(child);
    let mut seen = Vec::new();
    let proxy = wait_line(&rx, &mut seen, |l| logged_addr(l, "listening"))?;
    let admin = wait_line(&rx, &mut seen, |l| logged_addr(l, "admin listening"))?;

    // A load balancer's health check connection, open before the drain.
    let mut health = Conn::open(admin).await?;
    assert_eq!(health.get("admin", "/readyz").await?.0, StatusCode::OK);
    let in_flight = tokio::spawn(get(proxy, "shop.example", "/slow"));
    until("the origin holds the request", async || {
        received.load(Ordering::SeqCst) == 1
    })
    .await?;

    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    ensure!(kill.success(), "kill -TERM {pid} failed");

    until("/readyz turns 503", async || {
        matches!(health.get("admin", "/readyz").await, Ok((s, _)) if s == StatusCode::SERVICE_UNAVAILABLE)
    })
    .await?;
    until("new connections are refused", async || {
        matches!(TcpStream::connect(proxy).await, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
    })
    .await?;
    assert!(
        reaper.0.try_wait()?.is_none(),
        "portcullis exited with a request in flight"
    );

    open.send_replace(true);
    let (status, body) = in_flight.await??;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "finished after the drain began");

    let deadline = Instant::now() + BOUND;
    let status = loop {
        if let Some(s) = reaper.0.try_wait()? {
            break s;
        }
        ensure!(
            Instant::now() < deadline,
            "portcullis did not exit after the drain"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    Ok(())
}

#[test]
fn certs_generate_writes_a_pair_that_check_accepts() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let certs = dir.path().join("certs");
    let out = Command::new(BIN)
        .args([
            "certs",
            "generate",
            "--host",
            "shop.example",
            "--host",
            "*.shop.example",
        ])
        .arg("--out")
        .arg(&certs)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in ["shop.example.crt", "shop.example.key", "ca.pem"] {
        assert!(certs.join(file).is_file(), "{file} missing");
        assert!(stdout.contains(file), "the output names {file}: {stdout}");
    }
    assert!(
        stdout.contains("--cacert"),
        "says how to trust the CA: {stdout}"
    );
    let config = dir.path().join("tls.yaml");
    std::fs::write(
        &config,
        "listeners:\n  - address: \"127.0.0.1:0\"\n    redirect_https: true\n  - address: \"127.0.0.1:0\"\n    tls: true\ntls:\n  certs_dir: certs\n  default_cert: shop.example\nsites:\n  - name: shop\n    hosts: [shop.example]\n    origins: [\"http://127.0.0.1:9000\"]\n",
    )?;
    let out = check(&config)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("*.shop.example"),
        "lists the pair's names: {stdout}"
    );

    // Every bad certificate file is reported, each by name; exit 1.
    std::fs::write(certs.join("shop.example.key"), "not a key\n")?;
    std::fs::write(certs.join("extra.crt"), "not a certificate\n")?;
    let out = check(&config)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for file in ["shop.example.key", "extra.crt"] {
        let path = certs.join(file);
        assert!(
            stderr
                .lines()
                .any(|l| l.contains("tls.certs_dir: ") && l.contains(&*path.to_string_lossy())),
            "no line names {file}:\n{stderr}"
        );
    }
    Ok(())
}
