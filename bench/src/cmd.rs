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
pub fn run_bounded(cmd: Command, limit: Duration, scratch: &Path, name: &str) -> Result<Finished> {
    let mut all = run_bounded_all(vec![cmd], limit, scratch, name)?;
    all.pop().context("no command ran")
}

/// Runs `cmds` side by side to completion, killing all of them if any
/// outlives `limit`. Output files are `name.stdout` (one command) or
/// `name-I.stdout`.
pub fn run_bounded_all(
    cmds: Vec<Command>,
    limit: Duration,
    scratch: &Path,
    name: &str,
) -> Result<Vec<Finished>> {
    let single = cmds.len() == 1;
    let mut running: Vec<(Child, PathBuf, PathBuf)> = Vec::new();
    let deadline = Instant::now() + limit;
    let kill_all = |running: &mut Vec<(Child, PathBuf, PathBuf)>| {
        for (child, _, _) in running.iter_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    };
    for (i, mut cmd) in cmds.into_iter().enumerate() {
        let label = if single {
            name.to_owned()
        } else {
            format!("{name}-{i}")
        };
        let out_path = scratch.join(format!("{label}.stdout"));
        let err_path = scratch.join(format!("{label}.stderr"));
        let spawned = (|| -> Result<Child> {
            let out = File::create(&out_path).with_context(|| format!("creating {out_path:?}"))?;
            let err = File::create(&err_path).with_context(|| format!("creating {err_path:?}"))?;
            cmd.stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .with_context(|| format!("starting {label}: {cmd:?}"))
        })();
        match spawned {
            Ok(child) => running.push((child, out_path, err_path)),
            Err(e) => {
                kill_all(&mut running);
                return Err(e);
            }
        }
    }
    let mut statuses = Vec::new();
    for i in 0..running.len() {
        match wait_until(&mut running[i].0, deadline) {
            Ok(Some(status)) => statuses.push(status),
            Ok(None) => {
                kill_all(&mut running);
                bail!("{name} did not finish within {limit:?}; killed it");
            }
            Err(e) => {
                kill_all(&mut running);
                return Err(e);
            }
        }
    }
    let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    Ok(running
        .iter()
        .zip(statuses)
        .map(|((_, out, err), status)| Finished {
            status,
            stdout: read(out),
            stderr: read(err),
        })
        .collect())
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
