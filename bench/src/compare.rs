//! `compare`: the side-by-side run. Set up (tools, binary, pinning, limits,
//! origin), then rounds over the proxies in rotating order, then the report.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::peers::{Env, ProxyKind, Server, start_origin, start_proxy};
use crate::procfs;
use crate::reload::{ReloadPlan, measure_reload};
use crate::report::{Case, METHOD, Machine, Method, Report, Run, Summary, utc_datetime};
use crate::scenario::{Measured, RunCtx, Scenario, measure_idle, measure_load, wait_quiet};
use crate::setup::{PolicyFiles, Setup};
use crate::tools::{self, Tool};

mod args;
pub use args::CompareArgs;

fn bench_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workspace's top folder (where `cargo build` puts `target/`).
pub(crate) fn workspace_root() -> PathBuf {
    bench_dir()
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(bench_dir)
}

/// The named items in the order given, without repeats; all when none named.
fn selected<T: Copy + PartialEq>(
    names: &[String],
    all: &[T],
    parse: fn(&str) -> Result<T>,
) -> Result<Vec<T>> {
    if names.is_empty() {
        return Ok(all.to_vec());
    }
    let mut out = Vec::new();
    for name in names {
        let item = parse(name)?;
        if !out.contains(&item) {
            out.push(item);
        }
    }
    Ok(out)
}

/// Pins the harness to the load CPU, so its own polling never lands on the
/// proxy core; the children it starts inherit this unless taskset says else.
fn pin_self(cpu: usize) -> Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set)
        .with_context(|| format!("pinning the harness to CPU {cpu}"))
}

/// Raises the open-file soft limit to the hard limit (children inherit it)
/// and checks it covers the idle scenario. Returns the limit.
fn raise_nofile(need: u64) -> Result<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    let hard = lim.maximum.unwrap_or(u64::MAX).min(1 << 20);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: lim.maximum,
        },
    )
    .context("raising RLIMIT_NOFILE")?;
    if hard < need {
        bail!(
            "the open-file hard limit ({hard}) is below the {need} the idle scenario needs; \
             raise it (ulimit -Hn) or lower --idle-connections"
        );
    }
    Ok(hard)
}

fn needed_tools(scenarios: &[Scenario], proxies: &[ProxyKind]) -> Vec<Tool> {
    let mut t = vec![tools::TASKSET, tools::NGINX];
    if scenarios.iter().any(|s| s.uses_wrk()) {
        t.push(tools::WRK);
    }
    if scenarios.iter().any(|s| s.uses_h2load()) {
        t.push(tools::H2LOAD);
    }
    if scenarios.contains(&Scenario::H2c1k) {
        t.push(tools::NGHTTP);
    }
    // openssl makes the certificate and runs the handshake scenarios; curl
    // checks HTTPS through each proxy.
    if scenarios.iter().any(|s| s.is_tls()) {
        t.extend([tools::OPENSSL, tools::CURL]);
    }
    if proxies.contains(&ProxyKind::Haproxy) {
        t.push(tools::HAPROXY);
    }
    if proxies.contains(&ProxyKind::Varnish) && scenarios.iter().any(|s| s.is_cache()) {
        t.push(tools::VARNISHD);
    }
    t
}

/// Whether a Portcullis start failed only because the build does not know
/// the `cache:` config (the cache is not in this build yet).
fn rejects_cache_config(error: &str) -> bool {
    error.contains("unknown field `cache`")
}

/// Runs the comparison and writes the report. Returns false when something
/// failed (a proxy did not start, failed its correctness check, or a load
/// run did not complete); numbers never fail it.
pub fn run(args: &CompareArgs) -> Result<bool> {
    let started_at = utc_datetime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    let mut scenarios = selected(&args.scenarios, &Scenario::ALL, Scenario::parse)?;
    // The 1M-table figure means nothing without its empty-table baseline.
    if let Some(i) = scenarios.iter().position(|s| *s == Scenario::PolicyTable1m) {
        if !scenarios.contains(&Scenario::PolicyEmptyTable) {
            scenarios.insert(i, Scenario::PolicyEmptyTable);
        }
    }
    let proxies = selected(&args.proxies, &ProxyKind::ALL, ProxyKind::parse)?;
    let (rounds, duration) = if args.smoke {
        (1, 1)
    } else {
        (args.rounds, args.duration)
    };
    if !args.smoke && rounds < 3 {
        bail!("--rounds must be at least 3 for a real run (use --smoke for a quick check)");
    }
    let idle_n = args
        .idle_connections
        .unwrap_or(if args.smoke { 200 } else { 10_000 });
    let nproc = procfs::read_stat()?.cpus.len();
    if args.proxy_cpu == args.load_cpu || args.proxy_cpu.max(args.load_cpu) >= nproc {
        bail!(
            "need two distinct CPUs (proxy {}, load {}); this machine has {nproc}",
            args.proxy_cpu,
            args.load_cpu
        );
    }

    let tools = tools::ensure(&needed_tools(&scenarios, &proxies))?;
    let root = workspace_root();
    let portcullis = if proxies.contains(&ProxyKind::Portcullis) {
        Some(tools::portcullis_under_test(
            args.portcullis.as_deref(),
            &root,
        )?)
    } else {
        None
    };
    pin_self(args.load_cpu)?;
    let nofile = raise_nofile(idle_n as u64 + 256)?;

    let tmp = tempfile::Builder::new()
        .prefix("portcullis-bench-")
        .tempdir()
        .context("creating a temporary directory")?;
    // nginx workers run as nobody when started by root; they must reach the
    // origin's files and their temp paths under this directory.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .context("chmod of the temporary directory")?;
    }
    let dir = tmp.path().to_owned();
    let table_hosts = args
        .policy_hosts
        .unwrap_or(if args.smoke { 10_000 } else { 1_000_000 });
    // Only Portcullis loads policy files; the peers need none.
    let policy_setups: Vec<Setup> = if portcullis.is_some() {
        scenarios.iter().map(|s| Setup::of(*s)).collect()
    } else {
        Vec::new()
    };
    if policy_setups.contains(&Setup::BigTable) || policy_setups.contains(&Setup::Reload) {
        eprintln!("writing the {table_hosts}-host policy files");
    }
    let policy_files = PolicyFiles::prepare(&dir, &policy_setups, table_hosts)
        .context("writing the policy files")?;
    let tls_files = if scenarios.iter().any(|s| s.is_tls()) {
        Some(crate::tls::generate(&dir, &tools).context("making the TLS certificate")?)
    } else {
        None
    };
    let env = Env {
        dir: &dir,
        tools: &tools,
        portcullis: portcullis.as_deref(),
        proxy_cpu: args.proxy_cpu,
        load_cpu: args.load_cpu,
        nofile,
        max_conns: (idle_n as u64 + 1024).min(nofile),
        tls: tls_files.as_ref(),
        policy: &policy_files,
        flood: None,
    };
    let ctx = RunCtx {
        tools: &tools,
        scratch: &dir,
        duration_s: duration,
        connections: args.connections,
        h2_streams: args.h2_streams,
        proxy_cpu: args.proxy_cpu,
        load_cpu: args.load_cpu,
        idle_connections: idle_n,
        ticks_per_s: procfs::clock_ticks_per_second(),
        quiet_threshold_pct: 10.0,
        quiet_max_wait: Duration::from_secs(if args.smoke { 5 } else { args.quiet_wait }),
        // The smoke judges no numbers, so a noisy run is not worth repeating.
        max_attempts: if args.smoke { 1 } else { 3 },
        tls_clients: args.tls_clients,
        reload: ReloadPlan::new(args.reload_rate, args.smoke),
        origin_cache_log: dir.join("origin-cache.log"),
    };
    eprintln!("run directory: {}", dir.display());
    let origin = start_origin(&env).context("starting the origin")?;

    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    let mut runs: BTreeMap<(usize, usize), Vec<Run>> = BTreeMap::new();
    let mut commands = BTreeMap::new();
    let checks = crate::check::Checks {
        h2c: scenarios.contains(&Scenario::H2c1k),
        tls: tls_files.as_ref(),
        tls_h2: scenarios.contains(&Scenario::TlsH2_1k),
    };
    let mut tls_negotiated = BTreeMap::new();
    // Cleared when this Portcullis build turns out not to know the `cache:`
    // config: it then runs the cache scenarios without it, and the validity
    // check reports those runs invalid.
    let mut portcullis_cache_config = true;
    for round in 0..rounds {
        // One batch per set-up, each against a fresh process: the idle
        // scenario must not find memory pools already grown by the load
        // runs (nor their peak RSS include 10,000 connections' worth), and
        // each policy set-up needs its own config.
        let batches: Vec<(Setup, Vec<(usize, Scenario)>)> = Setup::order(round)
            .into_iter()
            .map(|setup| {
                let batch = scenarios
                    .iter()
                    .copied()
                    .enumerate()
                    .filter(|(_, s)| Setup::of(*s) == setup)
                    .collect::<Vec<_>>();
                (setup, batch)
            })
            .filter(|(_, b)| !b.is_empty())
            .collect();
        let mut order = proxies.clone();
        order.rotate_left(round % proxies.len().max(1));
        for (position, &kind) in order.iter().enumerate() {
            let pi = proxies.iter().position(|p| *p == kind).unwrap_or(0);
            eprintln!("round {}/{rounds}: {}", round + 1, kind.name());
            for (setup, batch) in &batches {
                if !setup.for_proxy(kind) {
                    continue;
                }
                let mut started =
                    start_proxy(&env, kind, origin.h1_port, *setup, portcullis_cache_config);
                if let Err(e) = &started {
                    if kind == ProxyKind::Portcullis
                        && *setup == Setup::Cache
                        && portcullis_cache_config
                        && rejects_cache_config(&format!("{e:#}"))
                    {
                        portcullis_cache_config = false;
                        warnings.push(format!(
                            "portcullis does not know the `cache:` config (this build has no \
                             cache); its cache scenarios ran without it and are invalid: {}",
                            format!("{e:#}")
                                .lines()
                                .find(|l| rejects_cache_config(l))
                                .unwrap_or_default()
                                .trim()
                        ));
                        started = start_proxy(&env, kind, origin.h1_port, *setup, false);
                    }
                }
                let server = match started {
                    Ok(s) => s,
                    Err(e) => {
                        failures.push(format!(
                            "round {}: {} ({} set-up) did not start: {e:#}",
                            round + 1,
                            kind.name(),
                            setup.name()
                        ));
                        continue;
                    }
                };
                // Varnish runs the cache set-up only, plain HTTP/1.1 only.
                let checks = if kind == ProxyKind::Varnish {
                    crate::check::Checks::default()
                } else {
                    checks
                };
                match crate::check::check(&server, &tools, &dir, checks) {
                    Ok(Some(negotiated)) => {
                        tls_negotiated.insert(kind.name().to_owned(), negotiated);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        failures.push(format!(
                            "round {}: correctness check failed: {e:#}",
                            round + 1
                        ));
                        continue;
                    }
                }
                if let Err(e) = crate::check::check_setup(&server, *setup) {
                    failures.push(format!(
                        "round {}: {} set-up check failed: {e:#}",
                        round + 1,
                        setup.name()
                    ));
                    continue;
                }
                for &(si, scenario) in batch {
                    match run_one(&ctx, &server, scenario, round, position, &mut commands) {
                        Ok(run) => {
                            if let Some(why) = invalid_cache_run(&run) {
                                failures.push(format!(
                                    "round {}: {} / {}: INVALID, not cache hits: {why}",
                                    round + 1,
                                    scenario.name(),
                                    kind.name()
                                ));
                            }
                            note_warnings(&run, scenario, kind, &mut warnings);
                            runs.entry((si, pi)).or_default().push(run);
                        }
                        Err(e) => failures.push(format!(
                            "round {}: {} / {}: {e:#}",
                            round + 1,
                            scenario.name(),
                            kind.name()
                        )),
                    }
                }
            }
        }
    }
    drop(origin);

    let cases = runs
        .into_iter()
        .map(|((si, pi), runs)| Case {
            scenario: scenarios[si].name().to_owned(),
            description: scenarios[si].describe().to_owned(),
            unit: scenarios[si].unit(),
            proxy: proxies[pi].name().to_owned(),
            summary: Summary::of(&runs),
            runs,
        })
        .collect();
    let report = Report {
        date_utc: started_at,
        smoke: args.smoke,
        machine: Machine {
            nproc,
            cpu_model: procfs::cpu_model(),
            kernel: procfs::read_trimmed("/proc/sys/kernel/osrelease")
                .unwrap_or_else(|| "unknown".into()),
            clock_ticks_per_s: ctx.ticks_per_s,
        },
        tools: crate::output::tool_versions(&tools, portcullis.as_deref()),
        method: Method {
            description: METHOD,
            duration_s: duration,
            rounds,
            connections: args.connections,
            h2_streams: args.h2_streams,
            tls_clients: args.tls_clients,
            tls_negotiated,
            idle_connections: idle_n,
            policy_hosts: table_hosts,
            reload: ctx.reload,
            proxy_cpu: args.proxy_cpu,
            load_cpu: args.load_cpu,
            quiet_threshold_pct: ctx.quiet_threshold_pct,
            quiet_max_wait_s: ctx.quiet_max_wait.as_secs(),
            commands,
        },
        cases,
        failures,
        warnings,
    };
    let out_dir = args.out.clone().unwrap_or_else(|| {
        if args.smoke {
            bench_dir().join("results").join("raw")
        } else {
            bench_dir().join("results")
        }
    });
    crate::output::write_all(
        &report,
        &out_dir,
        if args.smoke { "smoke" } else { "latest" },
    )?;
    if args.keep_temp {
        let kept = tmp.keep();
        eprintln!("kept {}", kept.display());
    }
    Ok(report.failures.is_empty())
}

/// Why a cache-hit run is invalid (its requests were not hits), with the
/// figure it would have given, which no summary uses.
fn invalid_cache_run(run: &Run) -> Option<String> {
    let Measured::Load(l) = &run.measured else {
        return None;
    };
    let c = l.cache.as_ref().filter(|c| !c.valid)?;
    Some(format!(
        "{} (measured {} µs/req over {} requests, not reported)",
        c.invalid_reason.as_deref().unwrap_or("?"),
        l.core_us_per_req
            .map_or_else(|| "—".to_owned(), |v| format!("{v:.1}")),
        l.outcome.requests
    ))
}

/// A run whose proxy core spent more than this share of its time running
/// some other task is repeated: its figure is partly that task's.
const FOREIGN_LIMIT_PCT: f64 = 5.0;

fn run_one(
    ctx: &RunCtx<'_>,
    server: &Server,
    scenario: Scenario,
    round: usize,
    position: usize,
    commands: &mut BTreeMap<String, String>,
) -> Result<Run> {
    let mut attempt = 1;
    loop {
        let quiet = wait_quiet(ctx)?;
        let measured = if scenario == Scenario::Idle {
            Measured::Idle(measure_idle(ctx, server)?)
        } else if scenario == Scenario::PolicyReload1m {
            commands
                .entry(scenario.name().to_owned())
                .or_insert_with(|| ctx.reload.describe());
            // One try: the reload consumes the staged file.
            let m = measure_reload(&ctx.reload, server)?;
            return Ok(Run {
                round,
                position,
                attempts: attempt,
                quiet_busy_pct: quiet.busy_pct,
                was_quiet: quiet.quiet,
                measured: Measured::Reload(Box::new(m)),
            });
        } else {
            let cmds = crate::scenario::commands(ctx, server, scenario)?;
            if let Some(first) = cmds.first() {
                let mut line = crate::output::shell_words(first);
                if cmds.len() > 1 {
                    line.push_str(&format!("  (× {} side by side)", cmds.len()));
                }
                commands.entry(scenario.name().to_owned()).or_insert(line);
            }
            Measured::Load(measure_load(ctx, server, scenario)?)
        };
        // On a shared machine a build or test can land on the proxy core
        // mid-run, or slow the idle client past its deadline; repeat such a
        // run (bounded) rather than report its figure.
        let (foreign, complete) = match &measured {
            Measured::Load(l) => (l.core_foreign_pct, true),
            Measured::Idle(i) => (0.0, i.opened == i.requested),
            Measured::Reload(_) => (0.0, true),
        };
        let clean = quiet.quiet && foreign < FOREIGN_LIMIT_PCT && complete;
        // A cache-hit run that was not hits is not noise: not repeated.
        let invalid = matches!(&measured, Measured::Load(l) if !l.valid());
        if clean || invalid || attempt >= ctx.max_attempts {
            return Ok(Run {
                round,
                position,
                attempts: attempt,
                quiet_busy_pct: quiet.busy_pct,
                was_quiet: quiet.quiet,
                measured,
            });
        }
        eprintln!(
            "  {} / {}: noisy or incomplete (machine {:.0}% busy before, {foreign:.0}% of the core to other tasks); repeating",
            scenario.name(),
            server.name,
            quiet.busy_pct
        );
        attempt += 1;
    }
}

fn note_warnings(run: &Run, scenario: Scenario, kind: ProxyKind, warnings: &mut Vec<String>) {
    let at = format!(
        "round {}: {} / {}",
        run.round + 1,
        scenario.name(),
        kind.name()
    );
    match &run.measured {
        Measured::Load(l) if l.core_foreign_pct >= FOREIGN_LIMIT_PCT => {
            warnings.push(format!(
                "{at}: other tasks ran on the proxy core for {:.0}% of the run",
                l.core_foreign_pct
            ));
        }
        _ => {}
    }
    if !run.was_quiet {
        warnings.push(format!(
            "{at}: machine not quiet before the run ({:.0}% busy)",
            run.quiet_busy_pct
        ));
    }
    match &run.measured {
        Measured::Load(l) if l.outcome.socket_errors + l.outcome.http_errors > 0 => {
            warnings.push(format!(
                "{at}: {} socket errors, {} HTTP 4xx/5xx under load",
                l.outcome.socket_errors, l.outcome.http_errors
            ));
        }
        Measured::Reload(r) if r.errors > 0 => warnings.push(format!(
            "{at}: {} failed requests during the reload (first: {})",
            r.errors,
            r.first_error.as_deref().unwrap_or("?")
        )),
        Measured::Idle(i) if i.opened < i.requested => warnings.push(format!(
            "{at}: opened {} of {} idle connections (first error: {})",
            i.opened,
            i.requested,
            i.first_error.as_deref().unwrap_or("deadline")
        )),
        _ => {}
    }
}
