//! Helpers for the CLI tests: reading a child's output, an HTTP/1.1 client connection and a
//! gated origin, written against this crate's own dependencies (the harness crate
//! `portcullis-tests` depends on `portcullis`, so these tests cannot use it).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A bound on waits for things that happen promptly; never a timing assertion.
pub(crate) const BOUND: Duration = Duration::from_secs(20);

/// Lines of a child's stdout, read on a thread for as long as the child writes.
pub(crate) fn stdout_lines(child: &mut Child) -> anyhow::Result<mpsc::Receiver<String>> {
    let stdout = child.stdout.take().context("stdout is not piped")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                // Nobody listens any more; keep draining so the child never blocks on a pipe.
                continue;
            }
        }
    });
    Ok(rx)
}

/// Reads lines until `pick` returns a value, for at most [`BOUND`].
pub(crate) fn wait_line<T>(
    rx: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    mut pick: impl FnMut(&str) -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + BOUND;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).map_err(|_| {
            anyhow::anyhow!("expected line never came; output:\n{}", seen.join("\n"))
        })?;
        let found = pick(&line);
        seen.push(line);
        if let Some(v) = found {
            return Ok(v);
        }
    }
}

/// Kills the child when the test ends, however it ends.
pub(crate) struct Reaper(pub(crate) Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) async fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> anyhow::Result<(StatusCode, String)> {
    let mut conn = Conn::open(addr).await?;
    conn.get(host, path).await
}

/// One HTTP/1.1 client connection.
pub(crate) struct Conn(hyper::client::conn::http1::SendRequest<Empty<Bytes>>);

impl Conn {
    pub(crate) async fn open(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Conn(sender))
    }

    pub(crate) async fn get(
        &mut self,
        host: &str,
        path: &str,
    ) -> anyhow::Result<(StatusCode, String)> {
        let req = Request::get(path).header("host", host).body(Empty::new())?;
        let fut = async {
            self.0.ready().await?;
            let resp = self.0.send_request(req).await?;
            let status = resp.status();
            let body = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::time::timeout(BOUND, fut)
            .await
            .map_err(|_| anyhow::anyhow!("no answer from {host}{path}"))?
    }
}

/// An origin that holds every request until the gate opens, counting what it receives.
pub(crate) async fn gated_origin(
    gate: watch::Receiver<bool>,
    seen: Arc<AtomicUsize>,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let gate = gate.clone();
            let seen = seen.clone();
            let svc = service_fn(move |_req: Request<Incoming>| {
                let mut gate = gate.clone();
                seen.fetch_add(1, Ordering::SeqCst);
                async move {
                    let _ = gate.wait_for(|open| *open).await;
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                        "finished after the drain began",
                    ))))
                }
            });
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// `"addr":"127.0.0.1:<port>"` from a JSON log line with the given message.
pub(crate) fn logged_addr(line: &str, message: &str) -> Option<SocketAddr> {
    if !line.contains(&format!("\"message\":\"{message}\"")) {
        return None;
    }
    let rest = &line[line.find("\"addr\":\"")? + 8..];
    rest[..rest.find('"')?].parse().ok()
}

pub(crate) async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + BOUND;
    while !check().await {
        if tokio::time::Instant::now() >= deadline {
            bail!("{what}: still not true after {BOUND:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
