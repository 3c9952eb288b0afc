//! The proxy under test: a [`TestProxy`] builder renders a config YAML (every address
//! `127.0.0.1:0`) into a temp dir, then either starts the proxy in this process
//! ([`TestProxy::start`]) or runs the real binary ([`TestProxy::spawn_binary`]).
//!
//! ```no_run
//! # async fn f(origin: portcullis_tests::OriginHandle) -> anyhow::Result<()> {
//! use portcullis_tests::{Site, TestProxy};
//! let proxy = TestProxy::new()
//!     .site(Site::new("shop", "shop.example").origin(&origin.url()))
//!     .limit("max_request_body", "1KiB")
//!     .start()
//!     .await?;
//! let addr = proxy.addr();
//! # Ok(()) }
//! ```

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::policy::{PolicyFiles, PolicySetup};

/// One `sites:` entry.
#[derive(Debug, Clone)]
pub struct Site {
    name: String,
    hosts: Vec<String>,
    origins: Vec<String>,
    /// Further keys of the site, rendered as written (`connect_timeout`, `h2`, ...).
    extra: Vec<(String, String)>,
}

impl Site {
    pub fn new(name: &str, host: &str) -> Site {
        Site {
            name: name.to_owned(),
            hosts: vec![host.to_owned()],
            origins: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// Another host name for the site.
    pub fn host(mut self, host: &str) -> Site {
        self.hosts.push(host.to_owned());
        self
    }

    /// An origin URL, e.g. from [`crate::OriginHandle::url`].
    pub fn origin(mut self, url: &str) -> Site {
        self.origins.push(url.to_owned());
        self
    }

    /// An origin that refuses connections: a port nothing listens on.
    pub fn origin_addr(self, addr: SocketAddr) -> Site {
        self.origin(&format!("http://{addr}"))
    }

    /// Any other site key, value written verbatim: `.set("response_timeout", "200ms")`.
    pub fn set(mut self, key: &str, value: &str) -> Site {
        self.extra.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Speak HTTP/2 (prior knowledge) to the origins.
    pub fn h2(self) -> Site {
        self.set("h2", "true")
    }
}

/// Builder of a proxy config and of the proxy running it.
#[derive(Debug, Clone)]
pub struct TestProxy {
    sites: Vec<Site>,
    limits: Vec<(String, String)>,
    admin_token: Option<String>,
    access_log: bool,
    grace: Duration,
    /// `tls:` keys (`certs_dir` first); a second listener with `tls: true` when set.
    tls: Vec<(String, String)>,
    redirect_https: bool,
    /// The `policy:` section and its files, when set.
    policy: Option<PolicySetup>,
    /// `geoip:` keys, values written verbatim (`mmdb` as an absolute path).
    geoip: Vec<(String, String)>,
    /// `cache:` keys, values written verbatim; no section when empty.
    cache: Vec<(String, String)>,
    /// `protection:` keys, values written verbatim; no section when empty.
    protection: Vec<(String, String)>,
    /// The top-level `node_id`.
    node_id: Option<String>,
}

impl Default for TestProxy {
    fn default() -> Self {
        TestProxy::new()
    }
}

impl TestProxy {
    /// No sites yet, default limits, access log off, admin on `127.0.0.1:0` without a token.
    pub fn new() -> TestProxy {
        crate::trace_init();
        TestProxy {
            sites: Vec::new(),
            limits: Vec::new(),
            admin_token: None,
            access_log: false,
            grace: Duration::from_secs(5),
            tls: Vec::new(),
            redirect_https: false,
            policy: None,
            geoip: Vec::new(),
            cache: Vec::new(),
            protection: Vec::new(),
            node_id: None,
        }
    }

    /// A `protection:` key, value written verbatim (flow style for the nested ones):
    /// `.protection("per_client", "{ requests_per_second: 1, burst: 2 }")`.
    pub fn protection(mut self, key: &str, value: &str) -> TestProxy {
        self.protection.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Drops every `protection:` key given so far (to render a changed config for a reload).
    pub fn clear_protection(mut self) -> TestProxy {
        self.protection.clear();
        self
    }

    /// The top-level `node_id`.
    pub fn node_id(mut self, id: &str) -> TestProxy {
        self.node_id = Some(id.to_owned());
        self
    }

    /// A `policy:` section with `source: etcd` (no file): bundles from `endpoint` under
    /// `prefix`, reports with a `lease_ttl` lease. Needs [`TestProxy::trusted_keys`] and
    /// [`TestProxy::node_id`].
    pub fn etcd_policy(mut self, endpoint: &str, prefix: &str, lease_ttl: &str) -> TestProxy {
        self.policy_setup().text = None;
        self.policy_setup().etcd = true;
        self.policy_key("source", "etcd").policy_key(
            "etcd",
            &format!(
                "{{ endpoints: [{endpoint:?}], prefix: {prefix:?}, lease_ttl: {lease_ttl:?} }}"
            ),
        )
    }

    /// `policy.state_dir` at an absolute path (kept across restarts of a node).
    pub fn state_dir(mut self, dir: &Path) -> TestProxy {
        self.policy_setup().state_dir = Some(dir.to_owned());
        self
    }

    /// A `geoip:` key, value written verbatim: `.geoip("trusted_proxies", "[\"127.0.0.0/8\"]")`.
    pub fn geoip(mut self, key: &str, value: &str) -> TestProxy {
        self.geoip.push((key.to_owned(), value.to_owned()));
        self
    }

    /// A key of the top-level `cache:` section, value written verbatim:
    /// `.cache("max_object_size", "\"64KiB\"")`. A site caches only with `cache: true`
    /// (`Site::set("cache", "true")`).
    pub fn cache(mut self, key: &str, value: &str) -> TestProxy {
        self.cache.push((key.to_owned(), value.to_owned()));
        self
    }

    fn policy_setup(&mut self) -> &mut PolicySetup {
        self.policy.get_or_insert_with(PolicySetup::default)
    }

    /// Adds the `policy:` section: `text` is written to `policy.yaml` next to the config, the
    /// state directory is `state/` there (see [`crate::policy::PolicyFiles`]).
    pub fn policy(mut self, text: &str) -> TestProxy {
        self.policy_setup().text = Some(text.to_owned());
        self
    }

    /// `policy.trusted_keys`: the policy file must then be a bundle signed by one of `keys`.
    pub fn trusted_keys(self, keys: &[&Path]) -> TestProxy {
        let list: Vec<String> = keys
            .iter()
            .map(|k| format!("{:?}", k.display().to_string()))
            .collect();
        self.policy_key("trusted_keys", &format!("[{}]", list.join(", ")))
    }

    /// A `policy:` section whose file does not exist.
    pub fn policy_missing(mut self) -> TestProxy {
        self.policy_setup().text = None;
        self
    }

    /// Another `policy:` key, value written verbatim: `.policy_key("close_grace", "1s")`.
    pub fn policy_key(mut self, key: &str, value: &str) -> TestProxy {
        self.policy_setup()
            .keys
            .push((key.to_owned(), value.to_owned()));
        self
    }

    /// Writes `text` as the last good copy in the state directory before the proxy starts.
    pub fn last_good_policy(mut self, text: &str) -> TestProxy {
        self.policy_setup().last_good = Some(text.to_owned());
        self
    }

    /// Makes the policy path a symlink to a versioned file (see
    /// [`crate::policy::PolicyFiles::swap_symlink`]).
    pub fn policy_symlink(mut self) -> TestProxy {
        self.policy_setup().symlink = true;
        self
    }

    /// Adds a TLS listener (after the plain one) and the `tls:` section serving the
    /// certificates in `certs_dir` (see [`crate::tls::TestCerts`]).
    pub fn tls(mut self, certs_dir: &Path) -> TestProxy {
        self.tls.insert(
            0,
            (
                "certs_dir".to_owned(),
                format!("{:?}", certs_dir.display().to_string()),
            ),
        );
        self
    }

    /// Another `tls:` key, value written verbatim: `.tls_key("default_cert", "a.example")`.
    pub fn tls_key(mut self, key: &str, value: &str) -> TestProxy {
        self.tls.push((key.to_owned(), value.to_owned()));
        self
    }

    /// `redirect_https: true` on the plain listener (needs [`TestProxy::tls`]).
    pub fn redirect_https(mut self) -> TestProxy {
        self.redirect_https = true;
        self
    }

    pub fn site(mut self, site: Site) -> TestProxy {
        self.sites.push(site);
        self
    }

    /// A `limits:` key, value written verbatim: `.limit("header_read_timeout", "300ms")`.
    pub fn limit(mut self, key: &str, value: &str) -> TestProxy {
        self.limits.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Writes `token` to `admin.token` next to the config and points `admin.token_file` at it.
    pub fn admin_token(mut self, token: &str) -> TestProxy {
        self.admin_token = Some(token.to_owned());
        self
    }

    /// Turns the JSON access log on (the real binary prints it to stdout).
    pub fn access_log(mut self) -> TestProxy {
        self.access_log = true;
        self
    }

    /// How long [`RunningProxy`] drains after shutdown (in-process only; the binary takes
    /// `--grace`).
    pub fn grace(mut self, grace: Duration) -> TestProxy {
        self.grace = grace;
        self
    }

    /// Whether the config has a TLS listener.
    pub fn has_tls(&self) -> bool {
        !self.tls.is_empty()
    }

    /// The config file text.
    pub fn render(&self) -> String {
        let mut y = String::new();
        if let Some(id) = &self.node_id {
            let _ = writeln!(y, "node_id: {id:?}");
        }
        y.push_str("listeners:\n  - address: \"127.0.0.1:0\"\n");
        if self.redirect_https {
            y.push_str("    redirect_https: true\n");
        }
        if !self.tls.is_empty() {
            y.push_str("  - address: \"127.0.0.1:0\"\n    tls: true\ntls:\n");
            for (k, v) in &self.tls {
                let _ = writeln!(y, "  {k}: {v}");
            }
        }
        y.push_str("admin:\n  address: \"127.0.0.1:0\"\n");
        if self.admin_token.is_some() {
            y.push_str("  token_file: \"admin.token\"\n");
        }
        if !self.limits.is_empty() {
            y.push_str("limits:\n");
            for (k, v) in &self.limits {
                let _ = writeln!(y, "  {k}: {v}");
            }
        }
        let _ = writeln!(
            y,
            "logging:\n  access_log: {}\n  level: info",
            self.access_log
        );
        if let Some(p) = &self.policy {
            p.render(&mut y);
        }
        if !self.geoip.is_empty() {
            y.push_str("geoip:\n");
            for (k, v) in &self.geoip {
                let _ = writeln!(y, "  {k}: {v}");
            }
        }
        if !self.cache.is_empty() {
            y.push_str("cache:\n");
            for (k, v) in &self.cache {
                let _ = writeln!(y, "  {k}: {v}");
            }
        }
        if !self.protection.is_empty() {
            y.push_str("protection:\n");
            for (k, v) in &self.protection {
                let _ = writeln!(y, "  {k}: {v}");
            }
        }
        y.push_str("sites:\n");
        for s in &self.sites {
            let quoted = |v: &[String]| {
                v.iter()
                    .map(|h| format!("{h:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(y, "  - name: {}", s.name);
            let _ = writeln!(y, "    hosts: [{}]", quoted(&s.hosts));
            let _ = writeln!(y, "    origins: [{}]", quoted(&s.origins));
            for (k, v) in &s.extra {
                let _ = writeln!(y, "    {k}: {v}");
            }
        }
        y
    }

    /// Writes the config (and token file) into a fresh temp dir; returns the dir and the path
    /// of the config inside it.
    pub fn write(&self) -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
        let dir = tempfile::tempdir().context("creating a temp dir for the config")?;
        if let Some(token) = &self.admin_token {
            std::fs::write(dir.path().join("admin.token"), format!("{token}\n"))?;
        }
        if let Some(p) = &self.policy {
            p.write(dir.path())?;
        }
        let path = dir.path().join("portcullis.yaml");
        std::fs::write(&path, self.render())?;
        Ok((dir, path))
    }

    /// Validates the config and starts the proxy on the current runtime.
    pub async fn start(self) -> anyhow::Result<RunningProxy> {
        let (dir, path) = self.write()?;
        let config = portcullis::Config::load(&path)
            .map_err(|e| anyhow::anyhow!("test config is invalid:\n{e}\n{}", self.render()))?;
        let proxy = portcullis::Proxy::bind(&config).await?;
        let addr = *proxy
            .local_addrs()
            .first()
            .context("the proxy bound no listener")?;
        let tls_addr = proxy.tls_addrs().first().copied();
        let admin = proxy.admin_addr().context("the proxy bound no admin")?;
        // Taken before `run` consumes the proxy: every copy moves together.
        let clock = proxy.cache_clock();
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            // A dropped sender means the test is over: stop as well.
            let _ = rx.await;
        };
        let task = tokio::spawn(proxy.run(shutdown, self.grace));
        Ok(RunningProxy {
            addr,
            tls_addr,
            admin,
            shutdown: Some(tx),
            task: Some(task),
            dir,
            clock,
        })
    }
}

/// A proxy serving in this process.
#[derive(Debug)]
pub struct RunningProxy {
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    admin: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    dir: tempfile::TempDir,
    clock: portcullis::cache::Clock,
}

impl RunningProxy {
    /// The (first) proxy listener.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The TLS listener; panics when the config has none (a test set-up mistake).
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls_addr
            .unwrap_or_else(|| panic!("this test proxy has no TLS listener: use TestProxy::tls"))
    }

    /// The admin listener.
    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// The clock the proxy's cache reads: `clock().advance(..)` ages every stored response
    /// without sleeping. Give it to a [`crate::cache::ScriptedOrigin`] too, so origin `Date`s
    /// agree with it.
    pub fn clock(&self) -> portcullis::cache::Clock {
        self.clock.clone()
    }

    /// The config file the proxy was started from (rewrite it, then reload).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("portcullis.yaml")
    }

    /// The policy file and state directory (see [`TestProxy::policy`]).
    pub fn policy_files(&self) -> PolicyFiles {
        PolicyFiles::new(self.dir.path())
    }

    /// Resolves the shutdown future: the proxy stops accepting and drains.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Whether `Proxy::run` has returned (drain finished or grace over).
    pub fn is_stopped(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits for `Proxy::run` to return.
    pub async fn stopped(&mut self) -> anyhow::Result<()> {
        if let Some(task) = self.task.take() {
            task.await.context("the proxy task panicked")?;
        }
        Ok(())
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}
