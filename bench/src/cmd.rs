//! Running child processes with a bound on their time, and stopping servers.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Output of a finished command. stdout/stderr went to files rather than
/// pipes, so a chatty tool can never block on a full pipe while we wait.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` to completion, killing it if it outlives `limit`. `scratch` is
/// a directory for its output files; `name` labels them and the errors.
pub fn run_bounded(
    mut cmd: Command,
    limit: Duration,
    scratch: &Path,
    name: &str,
) -> Result<Finished> {
    let out_path = scratch.join(format!("{name}.stdout"));
    let err_path = scratch.join(format!("{name}.stderr"));
    let out = File::create(&out_path).with_context(|| format!("creating {out_path:?}"))?;
    let err = File::create(&err_path).with_context(|| format!("creating {err_path:?}"))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {name}: {cmd:?}"))?;
    let status = wait_until(&mut child, Instant::now() + limit)?;
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        bail!("{name} did not finish within {limit:?}; killed it");
    };
    let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    Ok(Finished {
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
    })
}

/// Polls `child` until it exits or `deadline` passes. Polling (10 ms) keeps
/// this free of signals and threads; the harness itself sits on the load
/// core, so it does not disturb the proxy core.
pub fn wait_until(child: &mut Child, deadline: Instant) -> Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait().context("waiting for child")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asks a server to stop with SIGTERM (nginx's master then stops its
/// workers; SIGKILL would orphan them), then kills it if it lingers.
pub fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    if !matches!(
        wait_until(child, Instant::now() + Duration::from_secs(5)),
        Ok(Some(_))
    ) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Finds an executable by name on PATH, plus the sbin directories where
/// Debian puts nginx and haproxy (not on a normal user's PATH).
pub fn find_executable(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The last `n` lines of a log file, to show why a server did not start.
pub fn tail(path: &Path, n: usize) -> String {
    last_lines(&std::fs::read_to_string(path).unwrap_or_default(), n)
}

pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
