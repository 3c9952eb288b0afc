//! Starting the origin and the proxies under test from the templates in
//! `bench/peers/`, pinned with taskset, and stopping them again.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd::{stop, tail};
use crate::net::{BENCH_HOST, free_port, http_get};
use crate::procfs::children_of;
#[cfg(test)]
use crate::setup::cache_placeholders;
use crate::setup::{LivePolicy, PolicyFiles, Setup, cache_snippets, extra_hosts, policy_snippet};
use crate::tls::TlsFiles;
use crate::tools::{self, Tools};

const ORIGIN_TEMPLATE: &str = include_str!("../peers/origin-nginx.conf.tmpl");
const NGINX_TEMPLATE: &str = include_str!("../peers/nginx.conf.tmpl");
const HAPROXY_TEMPLATE: &str = include_str!("../peers/haproxy.cfg.tmpl");
const PORTCULLIS_TEMPLATE: &str = include_str!("../peers/portcullis.yaml.tmpl");
const NGINX_TLS_TEMPLATE: &str = include_str!("../peers/nginx-tls.conf.tmpl");
const HAPROXY_TLS_TEMPLATE: &str = include_str!("../peers/haproxy-tls.cfg.tmpl");
const PORTCULLIS_TLS_TEMPLATE: &str = include_str!("../peers/portcullis-tls.yaml.tmpl");

/// A proxy under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ProxyKind {
    Nginx,
    Haproxy,
    Portcullis,
    /// A cache, not a general proxy: it runs the cache scenarios only.
    Varnish,
}

impl ProxyKind {
    pub const ALL: [ProxyKind; 4] = [
        ProxyKind::Nginx,
        ProxyKind::Haproxy,
        ProxyKind::Portcullis,
        ProxyKind::Varnish,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::Nginx => "nginx",
            ProxyKind::Haproxy => "haproxy",
            ProxyKind::Portcullis => "portcullis",
            ProxyKind::Varnish => "varnish",
        }
    }

    pub fn parse(s: &str) -> Result<ProxyKind> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s.trim()))
            .with_context(|| {
                format!("unknown proxy {s:?} (known: nginx, haproxy, portcullis, varnish)")
            })
    }
}

/// Fills `{{NAME}}` placeholders; fails on any placeholder left unfilled, so
/// a template and the code cannot silently drift apart.
pub fn render(template: &str, vars: &[(&str, String)]) -> Result<String> {
    let mut out = template.to_owned();
    for (key, value) in vars {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    if let Some(start) = out.find("{{") {
        let name: String = out[start..].chars().take_while(|c| *c != '\n').collect();
        bail!("template placeholder left unfilled: {name}");
    }
    Ok(out)
}

/// Everything a server needs to start.
#[derive(Debug)]
pub struct Env<'a> {
    pub dir: &'a Path,
    pub tools: &'a Tools,
    pub portcullis: Option<&'a Path>,
    pub proxy_cpu: usize,
    pub load_cpu: usize,
    /// The open-file limit the servers inherit (and nginx is told about).
    pub nofile: u64,
    /// Connections each server must hold: the idle scenario plus headroom.
    pub max_conns: u64,
    /// The certificate when a TLS scenario runs: the proxies then get a TLS
    /// listener too; without it their configs have none.
    pub tls: Option<&'a TlsFiles>,
    /// The admin token and the policy scenarios' files.
    pub policy: &'a PolicyFiles,
    /// The flood benchmark's per-client limits, configured in Portcullis and nginx alike;
    /// `None` everywhere else.
    pub flood: Option<crate::flood::Limits>,
}

/// A running server. Dropping it stops it.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub name: String,
    /// Which proxy this is; `None` for the origin.
    pub kind: Option<ProxyKind>,
    /// The process that does the work and whose CPU and memory are measured:
    /// nginx's single worker (its master only supervises), else the process.
    pub pid: u32,
    pub h1_port: u16,
    /// Port for h2c prior knowledge (the same as `h1_port` for portcullis).
    pub h2_port: u16,
    /// The HTTPS port (HTTP/1.1 and HTTP/2 by ALPN), when TLS is on.
    pub tls_port: Option<u16>,
    /// Portcullis's admin port.
    pub admin_port: Option<u16>,
    /// The policy file Portcullis was started with, under a policy set-up.
    pub policy: Option<LivePolicy>,
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

impl Server {
    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    fn why_not(&self) -> String {
        format!(
            "last lines of {}:\n{}",
            self.log.display(),
            tail(&self.log, 15)
        )
    }

    /// Waits (bounded) until the server answers GET /1k with 200.
    fn wait_ready(&mut self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        let mut last = String::new();
        while Instant::now() < deadline {
            if self.exited() {
                bail!("{} exited while starting; {}", self.name, self.why_not());
            }
            match http_get(self.h1_port, "/1k", Duration::from_secs(1)) {
                Ok(r) if r.status == 200 => return Ok(()),
                Ok(r) => last = format!("status {}", r.status),
                Err(e) => last = format!("{e:#}"),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "{} did not answer 200 within {limit:?} (last: {last}); {}",
            self.name,
            self.why_not()
        )
    }
}

fn pinned(env: &Env<'_>, cpu: usize, program: &Path) -> Result<Command> {
    let mut cmd = Command::new(env.tools.path(tools::TASKSET)?);
    cmd.arg("-c").arg(cpu.to_string()).arg(program);
    Ok(cmd)
}

fn spawn(mut cmd: Command, name: &str, dir: &Path) -> Result<(Child, PathBuf)> {
    let log = dir.join(format!("{name}.out"));
    let out = File::create(&log).with_context(|| format!("creating {log:?}"))?;
    let err = out.try_clone().context("dup log file")?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {name}: {cmd:?}"))?;
    Ok((child, log))
}

/// The one child of `master` whose command line contains `marker`; it
/// appears a moment after the master.
fn child_with(master: u32, marker: &str, deadline: Instant) -> Result<u32> {
    let cmdline = |pid: u32| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default()
    };
    let comm = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    while Instant::now() < deadline {
        let found: Vec<u32> = children_of(master)
            .into_iter()
            .filter(|pid| cmdline(*pid).contains(marker) || comm(*pid).trim() == marker)
            .collect();
        if let [one] = found[..] {
            return Ok(one);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("process {master} has no single child {marker:?}")
}

/// nginx's worker under `master` (with a cache, its cache manager and loader
/// are children too).
fn nginx_worker(master: u32, deadline: Instant) -> Result<u32> {
    child_with(master, "worker process", deadline)
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {path:?}"))
}

/// Bodies the origin serves: not compressible, and fixed, so a check can
/// compare every byte.
pub fn body(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            // xorshift32
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

fn start_nginx(
    env: &Env<'_>,
    name: &str,
    template: &str,
    cpu: usize,
    vars: &[(&str, String)],
) -> Result<(Child, PathBuf)> {
    let conf = env.dir.join(format!("{name}.conf"));
    let mut all = vec![
        ("DIR", env.dir.display().to_string()),
        ("NOFILE", env.nofile.to_string()),
        ("WORKER_CONNECTIONS", env.max_conns.to_string()),
    ];
    all.extend(vars.iter().cloned());
    write_file(&conf, &render(template, &all)?)?;
    let mut cmd = pinned(env, cpu, env.tools.path(tools::NGINX)?)?;
    // -e: nginx opens its default error log before reading the config; point
    // it into the run directory so no system path is touched.
    cmd.arg("-e")
        .arg(env.dir.join(format!("{name}-early-error.log")))
        .arg("-p")
        .arg(env.dir)
        .arg("-c")
        .arg(&conf);
    spawn(cmd, name, env.dir)
}

/// Starts the origin on the load CPU with its bodies at /1k and /64k.
pub fn start_origin(env: &Env<'_>) -> Result<Server> {
    let www = env.dir.join("www");
    std::fs::create_dir_all(&www).context("creating www")?;
    std::fs::write(www.join("1k"), body(1024)).context("writing /1k")?;
    std::fs::write(www.join("64k"), body(64 * 1024)).context("writing /64k")?;
    std::fs::write(www.join("1m"), body(1024 * 1024)).context("writing /1m")?;
    let port = free_port()?;
    let (child, log) = start_nginx(
        env,
        "origin",
        ORIGIN_TEMPLATE,
        env.load_cpu,
        &[("PORT", port.to_string())],
    )?;
    let master = child.id();
    let mut server = Server {
        child,
        name: "origin".into(),
        kind: None,
        pid: master,
        h1_port: port,
        h2_port: port,
        tls_port: None,
        admin_port: None,
        policy: None,
        log,
    };
    server.wait_ready(Duration::from_secs(10))?;
    server.pid = nginx_worker(master, Instant::now() + Duration::from_secs(5))?;
    Ok(server)
}

/// The TLS part of `kind`'s config: empty without TLS.
pub fn tls_snippet(kind: ProxyKind, tls: Option<&TlsFiles>, port: Option<u16>) -> Result<String> {
    let (Some(tls), Some(port)) = (tls, port) else {
        return Ok(String::new());
    };
    let template = match kind {
        ProxyKind::Nginx => NGINX_TLS_TEMPLATE,
        ProxyKind::Haproxy => HAPROXY_TLS_TEMPLATE,
        ProxyKind::Portcullis => PORTCULLIS_TLS_TEMPLATE,
        // No TLS in the cache scenarios Varnish runs (nor in Varnish).
        ProxyKind::Varnish => return Ok(String::new()),
    };
    let path = |p: &Path| p.display().to_string();
    render(
        template,
        &[
            ("TLS_PORT", port.to_string()),
            ("TLS_CERT", path(&tls.cert)),
            ("TLS_KEY", path(&tls.key)),
            ("TLS_PEM", path(&tls.combined)),
            ("CERTS_DIR", path(&tls.certs_dir)),
            ("BENCH_HOST", BENCH_HOST.to_owned()),
        ],
    )
}

/// Starts one proxy pinned to the proxy CPU, forwarding to `origin_port`,
/// with `setup`'s config, and waits until it answers through to the origin.
/// `with_cache: false` starts Portcullis without its cache config even under
/// the cache set-up (see [`cache_snippets`]).
pub fn start_proxy(
    env: &Env<'_>,
    kind: ProxyKind,
    origin_port: u16,
    setup: Setup,
    with_cache: bool,
) -> Result<Server> {
    if kind == ProxyKind::Varnish {
        return start_varnish(env, origin_port, setup);
    }
    let h1_port = free_port()?;
    let h2_port = match kind {
        ProxyKind::Portcullis | ProxyKind::Varnish => h1_port,
        ProxyKind::Nginx | ProxyKind::Haproxy => free_port()?,
    };
    let name = kind.name();
    let tls_port = env.tls.map(|_| free_port()).transpose()?;
    let policy = match kind {
        ProxyKind::Portcullis => env.policy.live(setup)?,
        ProxyKind::Nginx | ProxyKind::Haproxy | ProxyKind::Varnish => None,
    };
    let mut ports = vec![
        ("PORT", h1_port.to_string()),
        ("H2_PORT", h2_port.to_string()),
        ("ORIGIN_PORT", origin_port.to_string()),
        ("TLS", tls_snippet(kind, env.tls, tls_port)?),
        (
            "POLICY",
            policy_snippet(kind, setup, h1_port, policy.as_ref())?,
        ),
    ];
    ports.extend(cache_snippets(kind, setup, env.dir, with_cache)?);
    ports.extend(crate::flood::snippets(env.flood));
    let mut admin_port = None;
    let (child, log) = match kind {
        ProxyKind::Varnish => unreachable!("started above"),
        ProxyKind::Nginx => start_nginx(env, name, NGINX_TEMPLATE, env.proxy_cpu, &ports)?,
        ProxyKind::Haproxy => {
            let conf = env.dir.join("haproxy.cfg");
            let mut vars = ports.clone();
            vars.push(("DIR", env.dir.display().to_string()));
            vars.push(("MAXCONN", env.max_conns.to_string()));
            write_file(&conf, &render(HAPROXY_TEMPLATE, &vars)?)?;
            let mut cmd = pinned(env, env.proxy_cpu, env.tools.path(tools::HAPROXY)?)?;
            // -db: stay in the foreground as one process, so its PID is ours.
            cmd.arg("-db").arg("-f").arg(&conf);
            spawn(cmd, name, env.dir)?
        }
        ProxyKind::Portcullis => {
            let bin = env.portcullis.context("no portcullis binary")?;
            let conf = env.dir.join("portcullis.yaml");
            let mut vars = ports.clone();
            let admin = free_port()?;
            admin_port = Some(admin);
            vars.push(("ADMIN_PORT", admin.to_string()));
            vars.push((
                "ADMIN_TOKEN_FILE",
                env.policy.token_file.display().to_string(),
            ));
            vars.push(("EXTRA_HOSTS", extra_hosts(setup)));
            // The same connection cap as the peers' (nginx worker_connections, HAProxy maxconn).
            vars.push(("MAXCONN", env.max_conns.to_string()));
            write_file(&conf, &render(PORTCULLIS_TEMPLATE, &vars)?)?;
            let mut cmd = pinned(env, env.proxy_cpu, bin)?;
            cmd.args(["run", "--config"])
                .arg(&conf)
                .args(["--workers", "1"])
                .env("TOKIO_WORKER_THREADS", "1");
            spawn(cmd, name, env.dir)?
        }
    };
    let master = child.id();
    let mut server = Server {
        child,
        name: name.into(),
        kind: Some(kind),
        pid: master,
        h1_port,
        h2_port,
        tls_port,
        admin_port,
        policy,
        log,
    };
    // A big policy table is parsed and compiled before the proxy serves.
    let limit = if server.policy.is_some() { 120 } else { 15 };
    server.wait_ready(Duration::from_secs(limit))?;
    if kind == ProxyKind::Nginx {
        server.pid = nginx_worker(master, Instant::now() + Duration::from_secs(5))?;
    }
    Ok(server)
}

/// Starts Varnish (Debian's `varnishd`) for the cache set-up: the builtin
/// VCL with the origin as its one backend (`-b`), a 512 MiB malloc store,
/// one thread pool (one core), its working directory in the run directory,
/// no jail (`-j none`: it runs as the harness's user, reads nothing outside
/// the run directory), no management port. The measured process is its
/// cache worker (`cache-main`), not the manager.
fn start_varnish(env: &Env<'_>, origin_port: u16, setup: Setup) -> Result<Server> {
    if setup != Setup::Cache {
        bail!("varnish has no {} set-up", setup.name());
    }
    let port = free_port()?;
    let work = env.dir.join("varnish");
    // A fresh, empty cache per start: the malloc store is in memory, the
    // working directory only holds the shared log and the compiled VCL.
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {work:?}"))?;
    let mut cmd = pinned(env, env.proxy_cpu, env.tools.path(tools::VARNISHD)?)?;
    cmd.args(["-F", "-j", "none", "-T", "none", "-a"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-b")
        .arg(format!("127.0.0.1:{origin_port}"))
        .args(["-s", "malloc,512m", "-p", "thread_pools=1", "-n"])
        .arg(&work);
    let (child, log) = spawn(cmd, "varnish", env.dir)?;
    let master = child.id();
    let mut server = Server {
        child,
        name: "varnish".into(),
        kind: Some(ProxyKind::Varnish),
        pid: master,
        h1_port: port,
        h2_port: port,
        tls_port: None,
        admin_port: None,
        policy: None,
        log,
    };
    // The builtin VCL is compiled with cc at start: allow for it.
    server.wait_ready(Duration::from_secs(30))?;
    server.pid = child_with(
        master,
        "cache-main",
        Instant::now() + Duration::from_secs(5),
    )?;
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<(&'static str, String)> {
        [
            ("DIR", "/tmp/x"),
            ("PORT", "1"),
            ("H2_PORT", "2"),
            ("ORIGIN_PORT", "3"),
            ("ADMIN_PORT", "4"),
            ("NOFILE", "5"),
            ("WORKER_CONNECTIONS", "6"),
            ("MAXCONN", "7"),
            ("TLS", ""),
            ("POLICY", ""),
            ("ADMIN_TOKEN_FILE", "/tmp/x/admin.token"),
            ("EXTRA_HOSTS", ""),
            ("CACHE", ""),
            ("CACHE_ZONE", ""),
            ("CACHE_MARK", ""),
            ("CACHE_SECTION", ""),
            ("SITE_CACHE", ""),
            ("PROTECTION", ""),
            ("LIMIT_ZONE", ""),
            ("LIMIT", ""),
        ]
        .map(|(k, v)| (k, v.to_owned()))
        .to_vec()
    }

    #[test]
    fn every_template_renders_completely() -> Result<()> {
        for t in [
            ORIGIN_TEMPLATE,
            NGINX_TEMPLATE,
            HAPROXY_TEMPLATE,
            PORTCULLIS_TEMPLATE,
        ] {
            let out = render(t, &vars())?;
            assert!(!out.contains("{{"));
        }
        let p = render(PORTCULLIS_TEMPLATE, &vars())?;
        assert!(p.contains("\"127.0.0.1:1\"") && p.contains("http://127.0.0.1:3"));
        assert!(p.contains("access_log: false"));
        assert!(p.contains("token_file: \"/tmp/x/admin.token\""));
        assert!(p.contains("hosts: [\"bench.example\", \"127.0.0.1\"]"));
        assert!(
            p.contains("max_connections: 7"),
            "the peers' connection cap"
        );
        Ok(())
    }

    #[test]
    fn tls_snippets_render_into_every_proxy_config() -> Result<()> {
        let d = Path::new("/tmp/x/tls");
        let tls = TlsFiles {
            certs_dir: d.join("certs"),
            cert: d.join("certs/bench.example.crt"),
            key: d.join("certs/bench.example.key"),
            combined: d.join("haproxy.pem"),
            ca: d.join("ca.pem"),
        };
        for kind in ProxyKind::ALL {
            assert_eq!(tls_snippet(kind, None, None)?, "");
            assert_eq!(tls_snippet(kind, Some(&tls), None)?, "");
        }
        let with_tls = |kind, template| -> Result<String> {
            let mut v = vars();
            v.retain(|(k, _)| *k != "TLS");
            v.push(("TLS", tls_snippet(kind, Some(&tls), Some(9443))?));
            render(template, &v)
        };
        let n = with_tls(ProxyKind::Nginx, NGINX_TEMPLATE)?;
        assert!(n.contains("listen 127.0.0.1:9443 ssl http2"));
        assert!(n.contains("ssl_certificate /tmp/x/tls/certs/bench.example.crt;"));
        assert!(n.contains("ssl_protocols TLSv1.2 TLSv1.3;"));
        let h = with_tls(ProxyKind::Haproxy, HAPROXY_TEMPLATE)?;
        assert!(h.contains("bind 127.0.0.1:9443 ssl crt /tmp/x/tls/haproxy.pem alpn h2,http/1.1"));
        let p = with_tls(ProxyKind::Portcullis, PORTCULLIS_TEMPLATE)?;
        // The TLS listener lands in the listener list, `tls:` at the top.
        let listeners = p.find("listeners:").unwrap_or(usize::MAX);
        let tls_listener = p.find("\"127.0.0.1:9443\"\n    tls: true").unwrap_or(0);
        let tls_section = p
            .find("\ntls:\n  certs_dir: \"/tmp/x/tls/certs\"")
            .unwrap_or(0);
        let admin = p.find("\nadmin:").unwrap_or(0);
        assert!(listeners < tls_listener && tls_listener < tls_section && tls_section < admin);
        assert!(p.contains("default_cert: \"bench.example\""));
        Ok(())
    }

    /// Every set-up's Portcullis config, as rendered, passes the proxy's own
    /// config validation, and the peers' configs carry the 451 rule only in
    /// the policy set-up.
    #[test]
    fn policy_setups_render_valid_configs() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let setups = Setup::order(0);
        let files = PolicyFiles::prepare(tmp.path(), &setups, 10)?;
        for setup in setups {
            let live = files.live(setup)?;
            let mut v = vars();
            v.retain(|(k, _)| !matches!(*k, "POLICY" | "ADMIN_TOKEN_FILE" | "EXTRA_HOSTS"));
            let with = |kind, mut v: Vec<(&'static str, String)>| -> Result<Vec<_>> {
                let cache = cache_snippets(kind, setup, Path::new("/tmp/x"), true)?;
                v.retain(|(k, _)| !cache.iter().any(|(c, _)| c == k));
                v.extend(cache);
                v.push(("POLICY", policy_snippet(kind, setup, 1, live.as_ref())?));
                v.push(("ADMIN_TOKEN_FILE", files.token_file.display().to_string()));
                v.push(("EXTRA_HOSTS", extra_hosts(setup)));
                Ok(v)
            };
            let p = render(
                PORTCULLIS_TEMPLATE,
                &with(ProxyKind::Portcullis, v.clone())?,
            )?;
            let config = match portcullis::config::Config::from_yaml(&p, tmp.path()) {
                Ok(config) => config,
                // A build without the cache yet (the harness then runs its
                // cache scenarios without the config, and reports them
                // invalid); once the cache is in, this config must pass.
                Err(e)
                    if setup == Setup::Cache && e.to_string().contains("unknown field `cache`") =>
                {
                    continue;
                }
                Err(e) => anyhow::bail!("{}: {e}\n{p}", setup.name()),
            };
            assert_eq!(config.policy.is_some(), live.is_some(), "{}", setup.name());
            if let Some(policy) = &config.policy {
                assert_eq!(policy.file.as_ref(), live.as_ref().map(|l| &l.file));
                assert!(policy.check_interval >= Duration::from_secs(3600));
            }
            for (kind, template) in [
                (ProxyKind::Nginx, NGINX_TEMPLATE),
                (ProxyKind::Haproxy, HAPROXY_TEMPLATE),
            ] {
                if !setup.for_proxy(kind) {
                    continue;
                }
                let out = render(template, &with(kind, v.clone())?)?;
                assert_eq!(
                    out.contains("return 451") || out.contains("return status 451"),
                    setup == Setup::Suspended,
                    "{}",
                    setup.name()
                );
            }
        }
        Ok(())
    }

    #[test]
    fn cache_setup_renders_each_cache() -> Result<()> {
        let dir = Path::new("/tmp/x");
        let with = |kind, template, setup| -> Result<String> {
            let mut v = vars();
            let cache = cache_snippets(kind, setup, dir, true)?;
            v.retain(|(k, _)| !cache.iter().any(|(c, _)| c == k));
            v.extend(cache);
            render(template, &v)
        };
        let n = with(ProxyKind::Nginx, NGINX_TEMPLATE, Setup::Cache)?;
        assert!(n.contains(
            "proxy_cache_path /tmp/x/nginx-cache levels=1:2 keys_zone=bench:10m max_size=512m"
        ));
        assert!(n.contains("location ^~ /cache/ {") && n.contains("proxy_cache bench;"));
        assert!(n.contains("add_header X-Cache-Status $upstream_cache_status always;"));
        let h = with(ProxyKind::Haproxy, HAPROXY_TEMPLATE, Setup::Cache)?;
        assert!(h.contains("http-request cache-use bench if { path_beg /cache/ }"));
        assert!(h.contains("http-response set-header X-Cache-Status HIT if { res.cache_hit }"));
        assert!(h.contains(
            "\ncache bench\n    total-max-size 512\n    max-object-size 16777216\n    max-age 3600"
        ));
        let p = with(ProxyKind::Portcullis, PORTCULLIS_TEMPLATE, Setup::Cache)?;
        assert!(p.contains("\ncache:\n  max_size: \"512MiB\"\n  max_object_size: \"16MiB\"\n  heuristic_fraction: 0.1\n"));
        assert!(
            p.ends_with("origins: [\"http://127.0.0.1:3\"]\n    cache: true\n"),
            "{p}"
        );
        // No cache anywhere outside the cache set-up, nor without the config.
        for (kind, template) in [
            (ProxyKind::Nginx, NGINX_TEMPLATE),
            (ProxyKind::Haproxy, HAPROXY_TEMPLATE),
            (ProxyKind::Portcullis, PORTCULLIS_TEMPLATE),
        ] {
            let plain = with(kind, template, Setup::Plain)?;
            for directive in [
                "proxy_cache bench",
                "proxy_cache_path /",
                "cache-use bench",
                "\ncache bench",
                "\ncache:",
                "cache: true",
            ] {
                assert!(!plain.contains(directive), "{}: {plain}", kind.name());
            }
            // Without the config only Portcullis's cache is left out.
            let mut v = vars();
            v.retain(|(k, _)| !cache_placeholders(kind).contains(k));
            v.extend(cache_snippets(kind, Setup::Cache, dir, false)?);
            assert_eq!(
                render(template, &v)? == plain,
                kind == ProxyKind::Portcullis,
                "{}",
                kind.name()
            );
        }
        let o = render(ORIGIN_TEMPLATE, &vars())?;
        assert!(o.contains("alias /tmp/x/www/;"));
        assert!(o.contains("add_header Cache-Control \"public, max-age=3600\";"));
        assert!(o.contains("access_log /tmp/x/origin-cache.log cachecount;"));
        Ok(())
    }

    #[test]
    fn unfilled_placeholders_are_errors() {
        assert!(render("listen {{PORT}};", &[]).is_err());
        assert!(render("a {{B}} c", &[("B", "b".into())]).is_ok_and(|s| s == "a b c"));
    }

    #[test]
    fn proxy_names_round_trip() -> Result<()> {
        for k in ProxyKind::ALL {
            assert_eq!(ProxyKind::parse(k.name())?, k);
        }
        assert!(ProxyKind::parse("envoy").is_err());
        Ok(())
    }

    #[test]
    fn bodies_are_fixed_and_sized() {
        assert_eq!(body(1024).len(), 1024);
        assert_eq!(body(64), body(64));
        assert!(body(256).iter().any(|b| *b != body(256)[0]));
    }
}
