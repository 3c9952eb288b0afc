//! What a proxy is started with for a batch of scenarios: the plain config,
//! or one of the policy set-ups (a legal-order file for Portcullis; a fixed
//! 451 rule for the peers), and the policy files each start gets.
//!
//! Scenarios that share a set-up run against one process; each set-up gets a
//! fresh process (and, for Portcullis, a fresh copy of its policy file and an
//! empty state directory, so no round inherits the last round's serial).

use std::cell::Cell;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::peers::{ProxyKind, render};
use crate::policy::{
    PolicyFile, RELOADED_HOST, SUSPENDED_HOST, link_header, peer_451_body, write_policy_file,
};
use crate::scenario::Scenario;

const NGINX_451_TEMPLATE: &str = include_str!("../peers/nginx-451.conf.tmpl");
const HAPROXY_451_TEMPLATE: &str = include_str!("../peers/haproxy-451.cfg.tmpl");
const PORTCULLIS_POLICY_TEMPLATE: &str = include_str!("../peers/portcullis-policy.yaml.tmpl");
const NGINX_CACHE_ZONE_TEMPLATE: &str = include_str!("../peers/nginx-cache-zone.conf.tmpl");
const NGINX_CACHE_TEMPLATE: &str = include_str!("../peers/nginx-cache.conf.tmpl");
const HAPROXY_CACHE_MARK_TEMPLATE: &str = include_str!("../peers/haproxy-cache.cfg.tmpl");
const HAPROXY_CACHE_USE_TEMPLATE: &str = include_str!("../peers/haproxy-cache-use.cfg.tmpl");
const HAPROXY_CACHE_SECTION_TEMPLATE: &str =
    include_str!("../peers/haproxy-cache-section.cfg.tmpl");
const PORTCULLIS_CACHE_TEMPLATE: &str = include_str!("../peers/portcullis-cache.yaml.tmpl");
const PORTCULLIS_SITE_CACHE_TEMPLATE: &str =
    include_str!("../peers/portcullis-site-cache.yaml.tmpl");

/// The placeholders each config template has for the cache set-up.
pub fn cache_placeholders(kind: ProxyKind) -> &'static [&'static str] {
    match kind {
        ProxyKind::Nginx => &["CACHE_ZONE", "CACHE"],
        ProxyKind::Haproxy => &["CACHE_MARK", "CACHE", "CACHE_SECTION"],
        ProxyKind::Portcullis => &["CACHE", "SITE_CACHE"],
        ProxyKind::Varnish => &[],
    }
}

/// The cache parts of `kind`'s config: filled under [`Setup::Cache`], empty
/// otherwise. `with_cache: false` leaves Portcullis's out even under the
/// cache set-up (it changes nothing for the peers) (a build that does not know the `cache:` config yet: its
/// cache runs are then reported invalid, never as figures).
pub fn cache_snippets(
    kind: ProxyKind,
    setup: Setup,
    dir: &Path,
    with_cache: bool,
) -> Result<Vec<(&'static str, String)>> {
    let names = cache_placeholders(kind);
    // `with_cache` is about Portcullis's build only: the peers always get theirs.
    if setup != Setup::Cache || (kind == ProxyKind::Portcullis && !with_cache) {
        return Ok(names.iter().map(|n| (*n, String::new())).collect());
    }
    let vars = [("DIR", dir.display().to_string())];
    let templates: &[&str] = match kind {
        ProxyKind::Nginx => &[NGINX_CACHE_ZONE_TEMPLATE, NGINX_CACHE_TEMPLATE],
        ProxyKind::Haproxy => &[
            HAPROXY_CACHE_MARK_TEMPLATE,
            HAPROXY_CACHE_USE_TEMPLATE,
            HAPROXY_CACHE_SECTION_TEMPLATE,
        ],
        ProxyKind::Portcullis => &[PORTCULLIS_CACHE_TEMPLATE, PORTCULLIS_SITE_CACHE_TEMPLATE],
        ProxyKind::Varnish => &[],
    };
    names
        .iter()
        .zip(templates)
        .map(|(name, t)| Ok((*name, render(t, &vars)?)))
        .collect()
}

/// The admin bearer token of every Portcullis in a run (loopback only, a
/// throwaway run directory: nothing to keep secret).
pub const ADMIN_TOKEN: &str = "portcullis-bench-admin-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// The configs of `bench/peers/*.tmpl` as they are.
    Plain,
    /// `policy-451`: Portcullis with one order suspending
    /// [`SUSPENDED_HOST`]; nginx and HAProxy with a fixed 451 for it.
    Suspended,
    /// `policy-empty-table`: Portcullis with serial 1 and no orders.
    EmptyTable,
    /// `policy-1m-table`: Portcullis with the big table.
    BigTable,
    /// `policy-reload-1m`: Portcullis with the big table, and the next
    /// generation of it staged for the reload.
    Reload,
    /// The plain config again, in a process of its own for the idle scenario.
    Idle,
    /// The cache scenarios: each proxy with its cache on for `/cache/`
    /// (Varnish runs this set-up only), a fresh, empty cache per start.
    Cache,
}

impl Setup {
    /// The order batches run in within a round. The two table set-ups swap
    /// places every other round, so neither always runs on a warmer machine.
    pub fn order(round: usize) -> [Setup; 7] {
        let (a, b) = if round % 2 == 0 {
            (Setup::EmptyTable, Setup::BigTable)
        } else {
            (Setup::BigTable, Setup::EmptyTable)
        };
        [
            Setup::Plain,
            Setup::Cache,
            Setup::Suspended,
            a,
            b,
            Setup::Reload,
            Setup::Idle,
        ]
    }

    pub fn of(scenario: Scenario) -> Setup {
        match scenario {
            Scenario::Policy451 => Setup::Suspended,
            Scenario::PolicyEmptyTable => Setup::EmptyTable,
            Scenario::PolicyTable1m => Setup::BigTable,
            Scenario::PolicyReload1m => Setup::Reload,
            Scenario::Idle => Setup::Idle,
            Scenario::CacheHit1k | Scenario::CacheHit64k | Scenario::CacheHit1m => Setup::Cache,
            Scenario::KeepAlive1k
            | Scenario::KeepAlive64k
            | Scenario::NewConnection1k
            | Scenario::H2c1k
            | Scenario::TlsKeepAlive1k
            | Scenario::TlsKeepAlive64k
            | Scenario::TlsH2_1k
            | Scenario::TlsHandshakeFull
            | Scenario::TlsHandshakeResumed => Setup::Plain,
        }
    }

    /// Whether `kind` runs this set-up: the table and reload ones have no
    /// equivalent in nginx or HAProxy; Varnish, a cache, runs only the cache
    /// set-up.
    pub fn for_proxy(self, kind: ProxyKind) -> bool {
        match (self, kind) {
            (Setup::Cache, _) => true,
            (_, ProxyKind::Varnish) => false,
            (Setup::Plain | Setup::Suspended | Setup::Idle, _) => true,
            (Setup::EmptyTable | Setup::BigTable | Setup::Reload, _) => {
                kind == ProxyKind::Portcullis
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Setup::Plain => "plain",
            Setup::Suspended => "suspended",
            Setup::EmptyTable => "empty-table",
            Setup::BigTable => "big-table",
            Setup::Reload => "reload",
            Setup::Idle => "idle",
            Setup::Cache => "cache",
        }
    }

    /// The file Portcullis loads at start, and the one the reload swaps in.
    pub fn policy_files(self, table_hosts: usize) -> (Option<PolicyFile>, Option<PolicyFile>) {
        let table = |generation| PolicyFile::Table {
            hosts: table_hosts,
            generation,
        };
        match self {
            Setup::Plain | Setup::Idle | Setup::Cache => (None, None),
            Setup::Suspended => (Some(PolicyFile::Suspended), None),
            Setup::EmptyTable => (Some(PolicyFile::Empty), None),
            Setup::BigTable => (Some(table(0)), None),
            Setup::Reload => (Some(table(0)), Some(table(1))),
        }
    }

    /// Hosts added to Portcullis's bench site, so that a 451 for them can
    /// only come from the policy (without an order they are forwarded).
    pub fn extra_hosts(self) -> &'static [&'static str] {
        match self {
            Setup::Plain | Setup::Idle | Setup::Cache => &[],
            Setup::Suspended | Setup::EmptyTable | Setup::BigTable => &[SUSPENDED_HOST],
            Setup::Reload => &[SUSPENDED_HOST, RELOADED_HOST],
        }
    }
}

/// The policy file one Portcullis process runs with.
#[derive(Debug, Clone)]
pub struct LivePolicy {
    /// The file named in the config, alone in its folder (the one the proxy
    /// watches).
    pub file: PathBuf,
    pub state_dir: PathBuf,
    pub serial: u64,
    pub hosts: usize,
    /// The reload's file (a link to the generated one, on the same file
    /// system), renamed over `file` by the reload scenario, and its serial.
    pub staged: Option<(PathBuf, u64)>,
}

/// The run's generated policy files and admin token.
#[derive(Debug)]
pub struct PolicyFiles {
    dir: PathBuf,
    pub token_file: PathBuf,
    /// Host names in the big table (1,000,000; fewer in a smoke run).
    pub table_hosts: usize,
    starts: Cell<usize>,
}

fn file_name(f: PolicyFile) -> String {
    match f {
        PolicyFile::Empty => "empty.yaml".into(),
        PolicyFile::Suspended => "suspended.yaml".into(),
        PolicyFile::Table { hosts, generation } => format!("table-{hosts}-g{generation}.yaml"),
    }
}

impl PolicyFiles {
    /// Writes the admin token and every policy file `setups` need into
    /// `run_dir/policy`.
    pub fn prepare(run_dir: &Path, setups: &[Setup], table_hosts: usize) -> Result<PolicyFiles> {
        let dir = run_dir.join("policy");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {dir:?}"))?;
        let token_file = run_dir.join("admin.token");
        std::fs::write(&token_file, format!("{ADMIN_TOKEN}\n"))
            .with_context(|| format!("writing {token_file:?}"))?;
        let files = PolicyFiles {
            dir,
            token_file,
            table_hosts,
            starts: Cell::new(0),
        };
        for setup in setups {
            let (start, staged) = setup.policy_files(table_hosts);
            for f in start.into_iter().chain(staged) {
                let path = files.generated(f);
                if !path.exists() {
                    write_policy_file(&path, f)?;
                }
            }
        }
        Ok(files)
    }

    fn generated(&self, f: PolicyFile) -> PathBuf {
        self.dir.join(file_name(f))
    }

    /// A fresh folder for one Portcullis start under `setup`: the policy file
    /// (a hard link to the generated one, or a copy), an empty state
    /// directory, and the staged reload file. `None` for the plain set-ups.
    pub fn live(&self, setup: Setup) -> Result<Option<LivePolicy>> {
        let (Some(start), staged) = setup.policy_files(self.table_hosts) else {
            return Ok(None);
        };
        let n = self.starts.get() + 1;
        self.starts.set(n);
        let base = self.dir.join(format!("{}-{n}", setup.name()));
        let watched = base.join("live");
        let state_dir = base.join("state");
        for d in [&watched, &state_dir] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {d:?}"))?;
        }
        let file = watched.join("policy.yaml");
        link_or_copy(&self.generated(start), &file)?;
        let staged = match staged {
            Some(next) => {
                let path = base.join("staged.yaml");
                link_or_copy(&self.generated(next), &path)?;
                Some((path, next.serial()))
            }
            None => None,
        };
        Ok(Some(LivePolicy {
            file,
            state_dir,
            serial: start.serial(),
            hosts: start.hosts(),
            staged,
        }))
    }
}

fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .with_context(|| format!("copying {from:?} to {to:?}"))
}

/// The `{{POLICY}}` part of `kind`'s config under `setup`: the 451 rule for
/// the peers, the `policy:` section for Portcullis; empty for the plain
/// set-ups.
pub fn policy_snippet(
    kind: ProxyKind,
    setup: Setup,
    port: u16,
    live: Option<&LivePolicy>,
) -> Result<String> {
    let peer = |template| {
        render(
            template,
            &[
                ("PORT", port.to_string()),
                ("SUSPENDED_HOST", SUSPENDED_HOST.to_owned()),
                ("LINK", link_header()),
                ("BODY", peer_451_body()),
            ],
        )
    };
    match (kind, setup) {
        (_, Setup::Plain | Setup::Idle | Setup::Cache) => Ok(String::new()),
        (ProxyKind::Nginx, Setup::Suspended) => peer(NGINX_451_TEMPLATE),
        (ProxyKind::Haproxy, Setup::Suspended) => peer(HAPROXY_451_TEMPLATE),
        (ProxyKind::Varnish, _) => {
            anyhow::bail!("varnish has no {} set-up", setup.name())
        }
        (ProxyKind::Nginx | ProxyKind::Haproxy, _) => {
            anyhow::bail!("{} has no {} set-up", kind.name(), setup.name())
        }
        (ProxyKind::Portcullis, _) => {
            let live = live.with_context(|| format!("no policy file for {}", setup.name()))?;
            render(
                PORTCULLIS_POLICY_TEMPLATE,
                &[
                    ("POLICY_FILE", live.file.display().to_string()),
                    ("POLICY_STATE", live.state_dir.display().to_string()),
                ],
            )
        }
    }
}

/// The `{{EXTRA_HOSTS}}` part of Portcullis's site: `, "a", "b"`.
pub fn extra_hosts(setup: Setup) -> String {
    setup
        .extra_hosts()
        .iter()
        .map(|h| format!(", \"{h}\""))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_has_a_setup_and_table_setups_are_portcullis_only() {
        for s in Scenario::ALL {
            let setup = Setup::of(s);
            assert!(Setup::order(0).contains(&setup) && Setup::order(1).contains(&setup));
            assert!(setup.for_proxy(ProxyKind::Portcullis));
        }
        assert!(!Setup::BigTable.for_proxy(ProxyKind::Nginx));
        assert!(!Setup::Reload.for_proxy(ProxyKind::Haproxy));
        assert!(Setup::Suspended.for_proxy(ProxyKind::Haproxy));
        assert_ne!(Setup::order(0)[3], Setup::order(1)[3]);
        assert!(Setup::Cache.for_proxy(ProxyKind::Varnish));
        for setup in Setup::order(0) {
            assert_eq!(setup.for_proxy(ProxyKind::Varnish), setup == Setup::Cache);
        }
    }

    #[test]
    fn live_files_are_fresh_per_start() -> Result<()> {
        let tmp = tempfile::tempdir()?;
        let setups = [Setup::Plain, Setup::Suspended, Setup::Reload];
        let files = PolicyFiles::prepare(tmp.path(), &setups, 20)?;
        assert_eq!(
            std::fs::read_to_string(&files.token_file)?.trim(),
            ADMIN_TOKEN
        );
        assert!(files.live(Setup::Plain)?.is_none());
        let a = files.live(Setup::Reload)?.context("reload has a policy")?;
        let b = files.live(Setup::Reload)?.context("reload has a policy")?;
        assert_ne!(a.file, b.file);
        assert_ne!(a.state_dir, b.state_dir);
        assert_eq!(a.file.file_name(), Some("policy.yaml".as_ref()));
        let (staged, next) = a.staged.clone().context("reload has a staged file")?;
        assert_eq!((a.serial + 1, a.hosts), (next, 20));
        assert!(std::fs::read_to_string(&a.file)?.contains(&format!("\"serial\": {}", a.serial)));
        assert!(std::fs::read_to_string(&staged)?.contains(&format!("\"serial\": {next}")));
        // The staged file sits outside the watched folder.
        assert_ne!(staged.parent(), a.file.parent());
        let s = files.live(Setup::Suspended)?.context("suspended has one")?;
        assert!(s.staged.is_none() && s.serial == 1 && s.hosts == 1);
        Ok(())
    }

    #[test]
    fn snippets() -> Result<()> {
        let live = LivePolicy {
            file: "/tmp/x/policy/reload-1/live/policy.yaml".into(),
            state_dir: "/tmp/x/policy/reload-1/state".into(),
            serial: 5,
            hosts: 9,
            staged: None,
        };
        for kind in ProxyKind::ALL {
            assert_eq!(policy_snippet(kind, Setup::Plain, 1, None)?, "");
            assert_eq!(policy_snippet(kind, Setup::Idle, 1, None)?, "");
        }
        let n = policy_snippet(ProxyKind::Nginx, Setup::Suspended, 8080, None)?;
        assert!(n.contains("listen 127.0.0.1:8080;"));
        assert!(n.contains("server_name suspended.example;"));
        assert!(n.contains(
            "add_header Link '<https://edge.example.net/legal>; rel=\"blocked-by\"' always;"
        ));
        assert!(n.contains("return 451 \"<!DOCTYPE html>"));
        let h = policy_snippet(ProxyKind::Haproxy, Setup::Suspended, 8080, None)?;
        assert!(
            h.contains("http-request return status 451 content-type \"text/html; charset=utf-8\"")
        );
        assert!(h.contains("if { req.hdr(host) -i suspended.example }"));
        assert!(policy_snippet(ProxyKind::Nginx, Setup::BigTable, 1, None).is_err());
        assert!(policy_snippet(ProxyKind::Portcullis, Setup::BigTable, 1, None).is_err());
        let p = policy_snippet(ProxyKind::Portcullis, Setup::Reload, 1, Some(&live))?;
        assert!(p.starts_with("# ") && p.contains("\npolicy:\n  file: \"/tmp/x/policy/reload-1/live/policy.yaml\"\n  state_dir: \"/tmp/x/policy/reload-1/state\"\n"));
        assert_eq!(extra_hosts(Setup::Plain), "");
        assert_eq!(
            extra_hosts(Setup::Reload),
            ", \"suspended.example\", \"reloaded.example\""
        );
        Ok(())
    }
}
