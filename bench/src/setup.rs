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
}

impl Setup {
    /// The order batches run in within a round. The two table set-ups swap
    /// places every other round, so neither always runs on a warmer machine.
    pub fn order(round: usize) -> [Setup; 6] {
        let (a, b) = if round % 2 == 0 {
            (Setup::EmptyTable, Setup::BigTable)
        } else {
            (Setup::BigTable, Setup::EmptyTable)
        };
        [
            Setup::Plain,
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
    /// equivalent in nginx or HAProxy.
    pub fn for_proxy(self, kind: ProxyKind) -> bool {
        match self {
            Setup::Plain | Setup::Suspended | Setup::Idle => true,
            Setup::EmptyTable | Setup::BigTable | Setup::Reload => kind == ProxyKind::Portcullis,
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
        }
    }

    /// The file Portcullis loads at start, and the one the reload swaps in.
    pub fn policy_files(self, table_hosts: usize) -> (Option<PolicyFile>, Option<PolicyFile>) {
        let table = |generation| PolicyFile::Table {
            hosts: table_hosts,
            generation,
        };
        match self {
            Setup::Plain | Setup::Idle => (None, None),
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
            Setup::Plain | Setup::Idle => &[],
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
        (_, Setup::Plain | Setup::Idle) => Ok(String::new()),
        (ProxyKind::Nginx, Setup::Suspended) => peer(NGINX_451_TEMPLATE),
        (ProxyKind::Haproxy, Setup::Suspended) => peer(HAPROXY_451_TEMPLATE),
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
        assert_ne!(Setup::order(0)[2], Setup::order(1)[2]);
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
