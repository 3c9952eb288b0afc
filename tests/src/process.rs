//! The real `portcullis` binary, run from a [`TestProxy`] config: for what only a process shows
//! (its peak memory, its answer to SIGTERM).
//!
//! The binary binds `127.0.0.1:0` like everything else and reports the ports it got in its JSON
//! log (`"message":"listening","addr":...`), which is read from its stdout. Stdout and stderr are
//! drained for the life of the process (the access log must never fill a pipe and stall it) and
//! kept for failure messages.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rustix::process::{Pid, Signal, kill_process};

use crate::proxy::TestProxy;

/// Where cargo put the `portcullis` binary: next to the `deps/` folder holding this test
/// executable (`target/<profile>/deps/test-hash` → `target/<profile>/portcullis`).
pub fn binary_path() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the test executable")?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("the test executable is not inside target/<profile>/deps")?;
    let bin = profile_dir.join(format!("portcullis{}", std::env::consts::EXE_SUFFIX));
    if !bin.is_file() {
        bail!(
            "the portcullis binary is missing at {}: build it first with `cargo build -p portcullis` \
             (`cargo test --workspace` builds it too)",
            bin.display()
        );
    }
    Ok(bin)
}

/// A running `portcullis run` process; killed when dropped.
#[derive(Debug)]
pub struct ProxyProcess {
    child: Child,
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    admin: SocketAddr,
    output: Arc<Mutex<Vec<String>>>,
    dir: tempfile::TempDir,
}

/// How long the binary may take to report its listeners.
const START_TIMEOUT: Duration = Duration::from_secs(20);

impl TestProxy {
    /// Writes the config and runs `portcullis run --config FILE` plus `extra_args` (e.g.
    /// `["--grace", "10s"]`). Returns once the process reported both listeners.
    pub fn spawn_binary(&self, extra_args: &[&str]) -> anyhow::Result<ProxyProcess> {
        let (dir, path) = self.write()?;
        let mut child = Command::new(binary_path()?)
            .arg("run")
            .arg("--config")
            .arg(&path)
            .args(extra_args)
            // The harness reads `info` lines to learn the ports; a caller's RUST_LOG must not
            // hide them.
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start the portcullis binary")?;
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            let output = output.clone();
            std::thread::spawn(move || drain_stdout(stdout, &output, &tx));
        }
        let stderr_drain = child.stderr.take().map(|stderr| {
            let output = output.clone();
            std::thread::spawn(move || drain_lines(stderr, &output, "stderr: "))
        });
        let mut proc = ProxyProcess {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            tls_addr: None,
            admin: SocketAddr::from(([0, 0, 0, 0], 0)),
            output,
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let (mut addr, mut admin, mut tls_addr) = (None, None, None);
        let want_tls = self.has_tls();
        while addr.is_none() || admin.is_none() || (want_tls && tls_addr.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Listening::Proxy(a)) => addr = Some(a),
                Ok(Listening::Tls(a)) => tls_addr = Some(a),
                Ok(Listening::Admin(a)) => admin = Some(a),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Stdout closed: the process is ending. Let it, and let its last words
                    // (the reason, on stderr) reach the output before reporting them.
                    let status = proc.child.wait().ok();
                    if let Some(drain) = stderr_drain {
                        let _ = drain.join();
                    }
                    bail!(
                        "portcullis did not report its listeners (exit: {status:?}); output:\n{}",
                        proc.output().join("\n")
                    )
                }
                Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                    "portcullis did not report its listeners (exit: {:?}); output:\n{}",
                    proc.child.try_wait().ok().flatten(),
                    proc.output().join("\n")
                ),
            }
        }
        proc.addr = addr.context("no proxy address")?;
        proc.tls_addr = tls_addr;
        proc.admin = admin.context("no admin address")?;
        Ok(proc)
    }
}

enum Listening {
    Proxy(SocketAddr),
    Tls(SocketAddr),
    Admin(SocketAddr),
}

fn drain_stdout(
    stdout: impl Read,
    output: &Mutex<Vec<String>>,
    listening: &mpsc::Sender<Listening>,
) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            let addr = v["addr"].as_str().and_then(|a| a.parse().ok());
            match (v["message"].as_str(), addr) {
                (Some("listening"), Some(a)) => {
                    let _ = listening.send(Listening::Proxy(a));
                }
                (Some("tls listening"), Some(a)) => {
                    let _ = listening.send(Listening::Tls(a));
                }
                (Some("admin listening"), Some(a)) => {
                    let _ = listening.send(Listening::Admin(a));
                }
                _ => {}
            }
        }
        if let Ok(mut out) = output.lock() {
            out.push(line);
        }
    }
}

fn drain_lines(stream: impl Read, output: &Mutex<Vec<String>>, prefix: &str) {
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        if let Ok(mut out) = output.lock() {
            out.push(format!("{prefix}{line}"));
        }
    }
}

impl ProxyProcess {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// The TLS listener; panics when the config has none (a test set-up mistake).
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls_addr
            .unwrap_or_else(|| panic!("this proxy process has no TLS listener: use TestProxy::tls"))
    }

    /// Sends SIGHUP (reload the certificates).
    pub fn hangup(&self) -> anyhow::Result<()> {
        let pid = Pid::from_child(&self.child);
        kill_process(pid, Signal::HUP).context("sending SIGHUP")?;
        Ok(())
    }

    /// The config file the process runs (rewrite it, then [`ProxyProcess::hangup`]).
    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("portcullis.yaml")
    }

    /// The policy file and state directory (see [`TestProxy::policy`]).
    pub fn policy_files(&self) -> crate::policy::PolicyFiles {
        crate::policy::PolicyFiles::new(self.dir.path())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every line the process wrote so far (stderr lines prefixed `stderr: `).
    pub fn output(&self) -> Vec<String> {
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// A field of `/proc/PID/status` in KiB, e.g. `VmHWM` (peak resident memory) or `VmRSS`.
    pub fn proc_status_kib(&self, field: &str) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .with_context(|| format!("no {field} in {path}"))?;
        let kib = line
            .trim()
            .strip_suffix("kB")
            .context("unexpected unit")?
            .trim();
        Ok(kib.parse()?)
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) -> anyhow::Result<()> {
        let pid = Pid::from_child(&self.child);
        kill_process(pid, Signal::TERM).context("sending SIGTERM")?;
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit, without blocking the runtime (in-process
    /// origins keep serving meanwhile).
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!(
                    "portcullis still running after {timeout:?}; output:\n{}",
                    self.output().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
