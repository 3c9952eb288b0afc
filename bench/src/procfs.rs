//! Reading the kernel's accounting: per-CPU jiffies from `/proc/stat`, a
//! process's CPU time from `/proc/PID/stat` and its memory from
//! `/proc/PID/status`.
//!
//! The parsers take text so they can be tested on captured files; the
//! `read_*` wrappers do the I/O.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// One CPU line of `/proc/stat`, in jiffies (USER_HZ ticks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

impl CpuTimes {
    /// Time the CPU did work: everything but idle and iowait. softirq is in
    /// on purpose: loopback TCP work runs there and is charged to no process,
    /// yet it is part of what forwarding a request costs. `guest` is already
    /// counted inside `user`, so it is not added again.
    pub fn busy(&self) -> u64 {
        self.user + self.nice + self.system + self.irq + self.softirq + self.steal
    }

    pub fn total(&self) -> u64 {
        self.busy() + self.idle + self.iowait
    }

    /// Jiffies busy and total between two samples. Counters only grow, but a
    /// CPU going offline can reset them; saturate rather than wrap.
    pub fn delta(before: &CpuTimes, after: &CpuTimes) -> (u64, u64) {
        (
            after.busy().saturating_sub(before.busy()),
            after.total().saturating_sub(before.total()),
        )
    }

    /// Field-by-field `after - before`, saturating like [`CpuTimes::delta`].
    pub fn since(&self, before: &CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user.saturating_sub(before.user),
            nice: self.nice.saturating_sub(before.nice),
            system: self.system.saturating_sub(before.system),
            idle: self.idle.saturating_sub(before.idle),
            iowait: self.iowait.saturating_sub(before.iowait),
            irq: self.irq.saturating_sub(before.irq),
            softirq: self.softirq.saturating_sub(before.softirq),
            steal: self.steal.saturating_sub(before.steal),
        }
    }

    /// Time spent running tasks (user + nice + system), as opposed to
    /// interrupts, softirq and steal. On the pinned core, whatever of it the
    /// proxy process was not charged for is some other task sharing the core.
    pub fn task_time(&self) -> u64 {
        self.user + self.nice + self.system
    }
}

/// The parsed `/proc/stat`: the all-CPU line and each `cpuN` line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcStat {
    pub all: CpuTimes,
    pub cpus: Vec<(usize, CpuTimes)>,
}

impl ProcStat {
    pub fn cpu(&self, id: usize) -> Option<CpuTimes> {
        self.cpus.iter().find(|(n, _)| *n == id).map(|(_, t)| *t)
    }
}

fn parse_cpu_fields(rest: &str) -> Result<CpuTimes> {
    let mut nums = rest.split_whitespace().map(|f| {
        f.parse::<u64>()
            .with_context(|| format!("non-numeric field {f:?}"))
    });
    let mut next = || -> Result<u64> { nums.next().transpose().map(|v| v.unwrap_or(0)) };
    // Old kernels stop after irq/softirq; missing trailing fields count as 0.
    Ok(CpuTimes {
        user: next()?,
        nice: next()?,
        system: next()?,
        idle: next()?,
        iowait: next()?,
        irq: next()?,
        softirq: next()?,
        steal: next()?,
    })
}

pub fn parse_stat(text: &str) -> Result<ProcStat> {
    let mut stat = ProcStat::default();
    let mut saw_all = false;
    for line in text.lines() {
        let Some((label, rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        if label == "cpu" {
            stat.all = parse_cpu_fields(rest).context("/proc/stat: line \"cpu\"")?;
            saw_all = true;
        } else if let Some(id) = label.strip_prefix("cpu") {
            let id: usize = id
                .parse()
                .with_context(|| format!("/proc/stat: bad CPU label {label:?}"))?;
            let times = parse_cpu_fields(rest).with_context(|| format!("/proc/stat: {label}"))?;
            stat.cpus.push((id, times));
        }
    }
    if !saw_all {
        bail!("/proc/stat: no \"cpu\" line");
    }
    Ok(stat)
}

pub fn read_stat() -> Result<ProcStat> {
    let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    parse_stat(&text)
}

/// The fields of `/proc/PID/stat` the harness uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PidStat {
    pub ppid: u32,
    /// utime + stime, in jiffies.
    pub cpu_ticks: u64,
}

pub fn parse_pid_stat(text: &str) -> Result<PidStat> {
    // The command name is in parentheses and may itself contain spaces and
    // parentheses, so fields are counted from the last ')'.
    let close = text
        .rfind(')')
        .context("/proc/PID/stat: no ')' after the command name")?;
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // After ')': state(0) ppid(1) ... utime(11) stime(12), per proc(5).
    let field = |i: usize, name: &str| -> Result<u64> {
        let raw = fields
            .get(i)
            .with_context(|| format!("/proc/PID/stat: no {name} field"))?;
        raw.parse()
            .with_context(|| format!("/proc/PID/stat: bad {name} {raw:?}"))
    };
    let ppid = u32::try_from(field(1, "ppid")?).context("/proc/PID/stat: ppid out of range")?;
    Ok(PidStat {
        ppid,
        cpu_ticks: field(11, "utime")? + field(12, "stime")?,
    })
}

pub fn read_pid_stat(pid: u32) -> Result<PidStat> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_pid_stat(&text)
}

/// A `kB` figure from `/proc/PID/status`, e.g. `VmRSS` or `VmHWM`.
pub fn parse_status_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

pub fn read_status_kib(pid: u32, key: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_status_kib(&text, key).with_context(|| format!("{path}: no {key} line"))
}

/// Resets the process's peak RSS (VmHWM) to its current RSS, so each run
/// reports its own peak rather than the process's lifetime peak.
pub fn reset_peak_rss(pid: u32) -> Result<()> {
    let path = format!("/proc/{pid}/clear_refs");
    std::fs::write(&path, "5").with_context(|| format!("writing 5 to {path}"))
}

/// PIDs whose parent is `ppid` (used to find nginx's worker under its master).
pub fn children_of(ppid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| read_pid_stat(*pid).is_ok_and(|s| s.ppid == ppid))
        .collect()
}

/// Jiffies per second, for converting /proc figures to time.
pub fn clock_ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

/// The model name of the first CPU in `/proc/cpuinfo`.
pub fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| parse_cpu_model(&t))
        .unwrap_or_else(|| "unknown".to_owned())
}

pub fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

/// How the machine looked before a run.
#[derive(Debug, Clone, Copy)]
pub struct Quiet {
    /// Whole-machine busy share over the last sample window, in percent.
    pub busy_pct: f64,
    /// Whether it went under the threshold before the wait ran out.
    pub quiet: bool,
}

/// Waits (bounded) until all CPUs together are busy less than `threshold_pct`
/// over a `window`, so a build or the previous run's tail does not bleed into
/// the next measurement.
pub fn wait_quiet(threshold_pct: f64, window: Duration, max_wait: Duration) -> Result<Quiet> {
    let start = Instant::now();
    loop {
        let before = read_stat()?.all;
        std::thread::sleep(window);
        let after = read_stat()?.all;
        let (busy, total) = CpuTimes::delta(&before, &after);
        let busy_pct = if total == 0 {
            0.0
        } else {
            busy as f64 * 100.0 / total as f64
        };
        if busy_pct < threshold_pct {
            return Ok(Quiet {
                busy_pct,
                quiet: true,
            });
        }
        if start.elapsed() >= max_wait {
            return Ok(Quiet {
                busy_pct,
                quiet: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from this machine (2 vCPUs); the intr line is shortened.
    const STAT: &str = "cpu  29190 0 5489 59697 1037 0 577 61 0 0
cpu0 14287 0 2272 31081 83 0 285 27 0 0
cpu1 14902 0 3216 28616 953 0 291 33 0 0
intr 288199 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 15 0 0
ctxt 441641
btime 1795673827
processes 6614
procs_running 2
procs_blocked 0
softirq 1517000 0 19959 4 1386808 31512 0 110 31035 11 47561
";

    #[test]
    fn parses_all_and_per_cpu_lines() -> Result<()> {
        let stat = parse_stat(STAT)?;
        assert_eq!(stat.cpus.len(), 2);
        assert_eq!(stat.all.idle, 59697);
        let cpu0 = stat.cpu(0).context("cpu0")?;
        assert_eq!(cpu0.user, 14287);
        assert_eq!(cpu0.softirq, 285);
        assert_eq!(cpu0.steal, 27);
        assert_eq!(cpu0.busy(), 14287 + 2272 + 285 + 27);
        assert!(stat.cpu(2).is_none());
        Ok(())
    }

    #[test]
    fn busy_counts_softirq_and_excludes_idle_and_iowait() {
        let t = CpuTimes {
            user: 10,
            nice: 1,
            system: 5,
            idle: 100,
            iowait: 7,
            irq: 2,
            softirq: 3,
            steal: 4,
        };
        assert_eq!(t.busy(), 25);
        assert_eq!(t.total(), 132);
    }

    #[test]
    fn delta_is_after_minus_before_and_saturates() {
        let before = CpuTimes {
            user: 100,
            system: 50,
            softirq: 10,
            idle: 1000,
            ..CpuTimes::default()
        };
        let after = CpuTimes {
            user: 180,
            system: 90,
            softirq: 30,
            idle: 1100,
            ..CpuTimes::default()
        };
        assert_eq!(CpuTimes::delta(&before, &after), (140, 240));
        // A reset counter must not wrap into a huge figure.
        assert_eq!(CpuTimes::delta(&after, &before), (0, 0));
        let d = after.since(&before);
        assert_eq!((d.user, d.system, d.softirq, d.idle), (80, 40, 20, 100));
        assert_eq!(d.task_time(), 120);
        assert_eq!(before.since(&after), CpuTimes::default());
    }

    #[test]
    fn short_cpu_lines_and_garbage() {
        let stat = parse_stat("cpu 1 2 3 4 5 6 7\ncpu0 1 2 3 4 5 6 7\n");
        assert!(stat.is_ok_and(|s| s.all.steal == 0 && s.all.softirq == 7));
        assert!(parse_stat("intr 1 2 3\n").is_err());
        assert!(parse_stat("cpu 1 x 3\n").is_err());
        assert!(parse_stat("cpu 1 2 3\ncpuX 1 2 3\n").is_err());
    }

    #[test]
    fn pid_stat_with_awkward_command_name() -> Result<()> {
        // Shape of a real line (captured from `cat`), with a name that has
        // spaces and parentheses and non-zero utime/stime.
        let text = "6614 (nginx: worker (x) y) R 6610 6610 4160 0 -1 4194304 98 0 0 0 \
                    1234 567 0 0 20 0 1 0 48321 3133440 379 18446744073709551615";
        let s = parse_pid_stat(text)?;
        assert_eq!(s.ppid, 6610);
        assert_eq!(s.cpu_ticks, 1234 + 567);
        assert!(parse_pid_stat("12 (x) S").is_err());
        Ok(())
    }

    #[test]
    fn status_figures() {
        let text = "Name:\thaproxy\nVmPeak:\t  100 kB\nVmHWM:\t   9876 kB\nVmRSS:\t    5432 kB\n";
        assert_eq!(parse_status_kib(text, "VmRSS"), Some(5432));
        assert_eq!(parse_status_kib(text, "VmHWM"), Some(9876));
        assert_eq!(parse_status_kib(text, "VmSwap"), None);
    }

    #[test]
    fn cpu_model_from_cpuinfo() {
        let text =
            "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t: fpu\n";
        assert_eq!(parse_cpu_model(text).as_deref(), Some("AMD EPYC"));
        assert_eq!(parse_cpu_model("processor : 0\n"), None);
    }
}
