//! A real etcd on loopback for the fleet tests: Debian's `etcd` (package `etcd-server`) with a
//! temporary data directory and free ports, stopped (SIGKILL) and restarted on the same data
//! and ports, killed when dropped. A missing binary fails the test, naming the script that
//! installs it: these tests never skip silently.
//!
//! [`Partition`] is a loopback TCP relay in front of it that a test can cut and restore: one
//! node loses etcd while etcd (and everyone else) carries on.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use portcullis::fleet::etcd::Client;

/// How long etcd may take to answer after a (re)start on a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One etcd member on `127.0.0.1`.
#[derive(Debug)]
pub struct Etcd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    binary: PathBuf,
}

/// `/usr/bin/etcd`, else `etcd` on PATH.
fn binary() -> anyhow::Result<PathBuf> {
    let debian = PathBuf::from("/usr/bin/etcd");
    if debian.is_file() {
        return Ok(debian);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("etcd");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    bail!("etcd not found: run scripts/install-deps.sh (Debian package etcd-server)")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Etcd {
    /// Starts etcd and waits until it answers.
    pub async fn start() -> anyhow::Result<Etcd> {
        let mut etcd = Etcd {
            child: None,
            dir: tempfile::tempdir().context("creating etcd's data dir")?,
            client_port: free_port()?,
            peer_port: free_port()?,
            binary: binary()?,
        };
        etcd.spawn()?;
        etcd.ready().await?;
        Ok(etcd)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = Command::new(&self.binary)
            .arg("--name")
            .arg("default")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(format!("default={peer}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// The last lines etcd logged, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    async fn ready(&mut self) -> anyhow::Result<()> {
        let client = self.client();
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            if client.range(b"/ready", false).await.is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!("etcd exited ({status}):\n{}", self.log_tail());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "etcd not answering after {READY_TIMEOUT:?}:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// A client of this etcd (the proxy's own gateway client).
    pub fn client(&self) -> Client {
        Client::new(&[self.url()])
            .map(|c| c.with_timeout(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("the test etcd URL is valid: {e}"))
    }

    /// Kills etcd (SIGKILL: as a crash or a partition looks to the nodes).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same data directory and ports, and waits until it answers.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()?;
        self.ready().await
    }

    /// Writes `key` directly (no serial check: what an attacker or a mistake could do).
    pub async fn put(&self, key: &str, value: &[u8]) -> anyhow::Result<i64> {
        Ok(self.client().put(key.as_bytes(), value, None).await?)
    }

    /// The value of `key`, if any.
    pub async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let range = self.client().range(key.as_bytes(), false).await?;
        Ok(range.kvs.into_iter().next().map(|kv| kv.value))
    }

    /// The store's current revision.
    pub async fn revision(&self) -> anyhow::Result<i64> {
        Ok(self.client().range(b"/", false).await?.revision)
    }

    /// Compacts the history up to the current revision.
    pub async fn compact(&self) -> anyhow::Result<i64> {
        let revision = self.revision().await?;
        self.client().compact(revision).await?;
        Ok(revision)
    }
}

/// A TCP relay to etcd that can be cut (open connections dropped, new ones closed at once) and
/// restored.
#[derive(Debug)]
pub struct Partition {
    addr: std::net::SocketAddr,
    cut: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Etcd {
    /// A relay to this etcd, initially connected.
    pub async fn partition(&self) -> anyhow::Result<Partition> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let target = format!("127.0.0.1:{}", self.client_port);
        let cut = std::sync::Arc::new(tokio::sync::watch::channel(false).0);
        let flag = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if *flag.borrow() {
                    continue;
                }
                let mut cut_off = flag.subscribe();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_off.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Ok(Partition { addr, cut, task })
    }
}

impl Partition {
    /// The URL to give a node instead of the etcd's own.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every relayed connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Relays again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
