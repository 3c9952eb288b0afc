//! Legal-order policies for tests: a builder of policy files ([`PolicyFile`], [`Order`]), the
//! files of a running proxy's policy ([`PolicyFiles`]: replace by atomic rename, write in place,
//! swap a symlink) and the admin endpoints (`GET /admin/policy`, `explain`, `POST reload`).
//!
//! ```no_run
//! # async fn f(origin: portcullis_tests::OriginHandle) -> anyhow::Result<()> {
//! use portcullis_tests::policy::{Order, PolicyFile};
//! use portcullis_tests::{Site, TestProxy};
//! let file = PolicyFile::new(1).order(Order::new("ORDER-1", "pirate.example"));
//! let proxy = TestProxy::new()
//!     .site(Site::new("pirate", "pirate.example").origin(&origin.url()))
//!     .policy(&file.render())
//!     .start()
//!     .await?;
//! proxy.policy_files().replace(&PolicyFile::new(2).render())?;
//! # Ok(()) }
//! ```

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use anyhow::Context as _;
use http::StatusCode;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::body;
use crate::client::{H1, get, request};

/// The policy file's name in a test proxy's directory (next to the config).
pub const POLICY_FILE: &str = "policy.yaml";
/// The policy state directory's name in a test proxy's directory.
pub const STATE_DIR: &str = "state";
/// The operator URL every [`PolicyFile`] uses unless told otherwise.
pub const BLOCKED_BY: &str = "https://edge.example.net/legal";
/// An instant long past: the default `issued_at` and `effective_from` of an [`Order`].
pub const LONG_AGO: &str = "2020-01-01T00:00:00Z";

/// RFC 3339 (UTC, whole seconds) of `now` shifted by `offset_secs`: for orders that start or
/// end relative to the test's clock.
pub fn rfc3339_from_now(offset_secs: i64) -> String {
    let now = OffsetDateTime::from(SystemTime::now());
    let t = now.replace_nanosecond(0).unwrap_or(now) + time::Duration::seconds(offset_secs);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Shifts an RFC 3339 time by `secs` (for "one second before" a boundary).
pub fn rfc3339_shift(t: &str, secs: i64) -> anyhow::Result<String> {
    let t = OffsetDateTime::parse(t, &Rfc3339).with_context(|| format!("{t:?} is not RFC 3339"))?;
    Ok((t + time::Duration::seconds(secs)).format(&Rfc3339)?)
}

/// YAML double-quoted string (JSON's escapes are valid YAML).
fn q(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// One `orders:` entry. Defaults: a public, enforced `unavailable_451` order of a court in DE,
/// effective since [`LONG_AGO`], never expiring, over the exact host given to [`Order::new`].
#[derive(Debug, Clone)]
pub struct Order {
    id: String,
    authority: (String, String, String),
    legal_basis: String,
    reference: String,
    issued_at: String,
    effective_from: String,
    expires_at: Option<String>,
    lifted_at: Option<String>,
    notice_url: String,
    disclosure: String,
    mode: String,
    /// `(name, include_subdomains)`; a name starting `*.` is written as is.
    hosts: Vec<(String, bool)>,
    paths: Vec<String>,
    countries: Vec<String>,
    on_unknown_country: Option<String>,
    action: String,
}

impl Order {
    pub fn new(id: &str, host: &str) -> Order {
        Order {
            id: id.to_owned(),
            authority: (
                "Landgericht Hamburg".to_owned(),
                "court".to_owned(),
                "DE".to_owned(),
            ),
            legal_basis: "UrhG 97".to_owned(),
            reference: format!("REF-{id}"),
            issued_at: LONG_AGO.to_owned(),
            effective_from: LONG_AGO.to_owned(),
            expires_at: None,
            lifted_at: None,
            notice_url: format!("https://notices.example/{id}"),
            disclosure: "public".to_owned(),
            mode: "enforce".to_owned(),
            hosts: vec![(host.to_owned(), false)],
            paths: Vec::new(),
            countries: Vec::new(),
            on_unknown_country: None,
            action: "{ type: unavailable_451 }".to_owned(),
        }
    }

    /// The same order, with its first host covering every subdomain too.
    pub fn include_subdomains(mut self) -> Order {
        if let Some(h) = self.hosts.first_mut() {
            h.1 = true;
        }
        self
    }

    /// Another exact host.
    pub fn host(mut self, host: &str) -> Order {
        self.hosts.push((host.to_owned(), false));
        self
    }

    /// A `scope.paths` prefix.
    pub fn path(mut self, prefix: &str) -> Order {
        self.paths.push(prefix.to_owned());
        self
    }

    /// `scope.countries` and `on_unknown_country` (`allow` or `block`).
    pub fn countries(mut self, codes: &[&str], on_unknown: &str) -> Order {
        self.countries = codes.iter().map(|c| (*c).to_owned()).collect();
        self.on_unknown_country = Some(on_unknown.to_owned());
        self
    }

    /// `authority: { name, type, jurisdiction }`.
    pub fn authority(mut self, name: &str, kind: &str, jurisdiction: &str) -> Order {
        self.authority = (name.to_owned(), kind.to_owned(), jurisdiction.to_owned());
        self
    }

    pub fn legal_basis(mut self, text: &str) -> Order {
        self.legal_basis = text.to_owned();
        self
    }

    pub fn reference(mut self, text: &str) -> Order {
        self.reference = text.to_owned();
        self
    }

    pub fn notice_url(mut self, url: &str) -> Order {
        self.notice_url = url.to_owned();
        self
    }

    pub fn effective_from(mut self, t: &str) -> Order {
        self.effective_from = t.to_owned();
        if self.issued_at.as_str() > t {
            self.issued_at = t.to_owned();
        }
        self
    }

    pub fn expires_at(mut self, t: &str) -> Order {
        self.expires_at = Some(t.to_owned());
        self
    }

    pub fn lifted_at(mut self, t: &str) -> Order {
        self.lifted_at = Some(t.to_owned());
        self
    }

    /// `disclosure: sealed`.
    pub fn sealed(mut self) -> Order {
        self.disclosure = "sealed".to_owned();
        self
    }

    /// `mode: dry_run`.
    pub fn dry_run(mut self) -> Order {
        self.mode = "dry_run".to_owned();
        self
    }

    /// `action: { type: <kind> }`: `unavailable_451`, `redirect`, `close`, `refuse_tls`.
    pub fn action(mut self, kind: &str) -> Order {
        self.action = format!("{{ type: {kind} }}");
        self
    }

    /// `action: { type: status, code: <code> }`.
    pub fn status(mut self, code: u16) -> Order {
        self.action = format!("{{ type: status, code: {code} }}");
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn render(&self, y: &mut String) {
        let (name, kind, jurisdiction) = &self.authority;
        let _ = writeln!(y, "  - id: {}", q(&self.id));
        let _ = writeln!(
            y,
            "    authority: {{ name: {}, type: {kind}, jurisdiction: {} }}",
            q(name),
            q(jurisdiction)
        );
        let _ = writeln!(y, "    legal_basis: {}", q(&self.legal_basis));
        let _ = writeln!(y, "    reference: {}", q(&self.reference));
        let _ = writeln!(y, "    issued_at: {}", q(&self.issued_at));
        let _ = writeln!(y, "    effective_from: {}", q(&self.effective_from));
        match &self.expires_at {
            Some(t) => writeln!(y, "    expires_at: {}", q(t)),
            None => writeln!(y, "    expires_at: null"),
        }
        .unwrap_or_default();
        if let Some(t) = &self.lifted_at {
            let _ = writeln!(y, "    lifted_at: {}", q(t));
        }
        let _ = writeln!(y, "    notice_url: {}", q(&self.notice_url));
        let _ = writeln!(y, "    disclosure: {}", self.disclosure);
        let _ = writeln!(y, "    mode: {}", self.mode);
        y.push_str("    scope:\n      hosts:\n");
        for (host, subdomains) in &self.hosts {
            let _ = writeln!(
                y,
                "        - {{ name: {}, include_subdomains: {subdomains} }}",
                q(host)
            );
        }
        if !self.paths.is_empty() {
            y.push_str("      paths:\n");
            for p in &self.paths {
                let _ = writeln!(y, "        - {{ prefix: {} }}", q(p));
            }
        }
        if !self.countries.is_empty() {
            let codes: Vec<String> = self.countries.iter().map(|c| q(c)).collect();
            let _ = writeln!(y, "      countries: [{}]", codes.join(", "));
        }
        if let Some(u) = &self.on_unknown_country {
            let _ = writeln!(y, "      on_unknown_country: {u}");
        }
        let _ = writeln!(y, "    action: {}", self.action);
    }
}

/// A whole policy file.
#[derive(Debug, Clone)]
pub struct PolicyFile {
    serial: u64,
    blocked_by: String,
    orders: Vec<Order>,
}

impl PolicyFile {
    /// No orders yet, [`BLOCKED_BY`] as the operator URL.
    pub fn new(serial: u64) -> PolicyFile {
        PolicyFile {
            serial,
            blocked_by: BLOCKED_BY.to_owned(),
            orders: Vec::new(),
        }
    }

    pub fn order(mut self, order: Order) -> PolicyFile {
        self.orders.push(order);
        self
    }

    /// The same orders under another serial.
    pub fn serial(mut self, serial: u64) -> PolicyFile {
        self.serial = serial;
        self
    }

    pub fn blocked_by(mut self, url: &str) -> PolicyFile {
        self.blocked_by = url.to_owned();
        self
    }

    /// The YAML text.
    pub fn render(&self) -> String {
        let mut y = format!(
            "serial: {}\nblocked_by: {}\n",
            self.serial,
            q(&self.blocked_by)
        );
        if self.orders.is_empty() {
            y.push_str("orders: []\n");
        } else {
            y.push_str("orders:\n");
            for o in &self.orders {
                o.render(&mut y);
            }
        }
        y
    }
}

/// The `policy:` section a [`crate::TestProxy`] renders, and the files it writes.
#[derive(Debug, Clone, Default)]
pub(crate) struct PolicySetup {
    /// The policy file's text; `None`: no file at all.
    pub(crate) text: Option<String>,
    /// `state_dir/policy.last-good.yaml` written before the start.
    pub(crate) last_good: Option<String>,
    /// Further `policy:` keys (`close_grace`, `check_interval`).
    pub(crate) keys: Vec<(String, String)>,
    /// The policy path is a symlink to a versioned file.
    pub(crate) symlink: bool,
    /// `source: etcd`: no `file:` key.
    pub(crate) etcd: bool,
    /// `state_dir` somewhere else than `state/` beside the config.
    pub(crate) state_dir: Option<PathBuf>,
}

impl PolicySetup {
    pub(crate) fn render(&self, y: &mut String) {
        y.push_str("policy:\n");
        if !self.etcd {
            let _ = writeln!(y, "  file: {}", q(POLICY_FILE));
        }
        let state_dir = self
            .state_dir
            .as_ref()
            .map_or_else(|| STATE_DIR.to_owned(), |d| d.display().to_string());
        let _ = writeln!(y, "  state_dir: {}", q(&state_dir));
        for (k, v) in &self.keys {
            let _ = writeln!(y, "  {k}: {v}");
        }
    }

    pub(crate) fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let files = PolicyFiles::new(dir);
        if let Some(last_good) = &self.last_good {
            std::fs::create_dir_all(files.state_dir())?;
            std::fs::write(files.last_good(), last_good)?;
        }
        match (&self.text, self.symlink) {
            (None, _) => {}
            (Some(text), false) => std::fs::write(files.path(), text)?,
            (Some(text), true) => files.swap_symlink(text)?,
        }
        Ok(())
    }
}

/// The policy files of a test proxy: the policy file in the proxy's temp dir and its state
/// directory. Every change is made the way deployment tools make it.
#[derive(Debug, Clone)]
pub struct PolicyFiles {
    dir: PathBuf,
}

/// Versions written by [`PolicyFiles::swap_symlink`], unique across the test binary.
static VERSION: AtomicU64 = AtomicU64::new(0);

impl PolicyFiles {
    pub(crate) fn new(dir: &Path) -> PolicyFiles {
        PolicyFiles {
            dir: dir.to_owned(),
        }
    }

    /// The directory holding the config, the policy file and the state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The policy file (`policy.file` in the config).
    pub fn path(&self) -> PathBuf {
        self.dir.join(POLICY_FILE)
    }

    /// `policy.state_dir`.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join(STATE_DIR)
    }

    /// The last good copy the proxy keeps.
    pub fn last_good(&self) -> PathBuf {
        self.state_dir().join("policy.last-good.yaml")
    }

    /// The audit log.
    pub fn audit_log(&self) -> PathBuf {
        self.state_dir().join("audit.jsonl")
    }

    /// Replaces the policy file by an atomic rename of a complete new file.
    pub fn replace(&self, text: &str) -> anyhow::Result<()> {
        let tmp = self.dir.join(".policy.yaml.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, self.path())?;
        Ok(())
    }

    /// Truncates and rewrites the policy file in place (same inode), as an editor might.
    pub fn write_in_place(&self, text: &str) -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(self.path())
            .context("opening the policy file in place")?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        Ok(())
    }

    /// Writes `text` to a new versioned file in `versions/` and points the policy path at it by
    /// renaming a new symlink over the old one (`ln -sfn` done atomically, as Kubernetes
    /// ConfigMap volumes and deploy tools do).
    pub fn swap_symlink(&self, text: &str) -> anyhow::Result<()> {
        let versions = self.dir.join("versions");
        std::fs::create_dir_all(&versions)?;
        let n = VERSION.fetch_add(1, Ordering::Relaxed);
        let target = versions.join(format!("policy.v{n}.yaml"));
        std::fs::write(&target, text)?;
        let link = self.dir.join(format!(".policy.link.{n}"));
        std::os::unix::fs::symlink(&target, &link)?;
        std::fs::rename(&link, self.path())?;
        Ok(())
    }

    /// Rewrites, in place, the file the policy symlink points at: the policy's content changes
    /// while its directory sees no event at all (the change only a hash check or an explicit
    /// reload can find). Needs [`crate::TestProxy::policy_symlink`].
    pub fn write_through_symlink(&self, text: &str) -> anyhow::Result<()> {
        use std::io::Write as _;
        let target = std::fs::read_link(self.path()).context("the policy path is not a symlink")?;
        let target = self.dir.join(target);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&target)
            .with_context(|| format!("opening {}", target.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        Ok(())
    }

    /// The audit log's lines (empty if it does not exist).
    pub fn audit_lines(&self) -> anyhow::Result<Vec<String>> {
        match std::fs::read_to_string(self.audit_log()) {
            Ok(t) => Ok(t.lines().map(str::to_owned).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }
}

/// A JSON answer of the admin listener.
#[derive(Debug)]
pub struct AdminJson {
    pub status: StatusCode,
    pub json: serde_json::Value,
}

async fn admin_json(
    admin: SocketAddr,
    req: http::Request<crate::TestBody>,
) -> anyhow::Result<AdminJson> {
    let what = format!("{} {}", req.method(), req.uri());
    let reply = H1::connect(admin).await?.request(req).await?;
    let json = serde_json::from_slice(&reply.body).with_context(|| {
        format!(
            "{what} answered {} with non-JSON: {}",
            reply.status,
            reply.text()
        )
    })?;
    Ok(AdminJson {
        status: reply.status,
        json,
    })
}

/// `GET /admin/policy`; fails unless it answers 200.
pub async fn describe(admin: SocketAddr) -> anyhow::Result<serde_json::Value> {
    let a = admin_json(admin, get("admin", "/admin/policy")).await?;
    anyhow::ensure!(
        a.status == StatusCode::OK,
        "/admin/policy answered {}: {}",
        a.status,
        a.json
    );
    Ok(a.json)
}

/// `GET /admin/policy?orders=none`: the header fields without the order list.
pub async fn describe_short(admin: SocketAddr) -> anyhow::Result<serde_json::Value> {
    let a = admin_json(admin, get("admin", "/admin/policy?orders=none")).await?;
    anyhow::ensure!(
        a.status == StatusCode::OK,
        "answered {}: {}",
        a.status,
        a.json
    );
    Ok(a.json)
}

/// `GET /admin/policy/explain?{query}` (the caller percent-encodes the query).
pub async fn explain(admin: SocketAddr, query: &str) -> anyhow::Result<AdminJson> {
    admin_json(
        admin,
        get("admin", &format!("/admin/policy/explain?{query}")),
    )
    .await
}

/// `POST /admin/policy/reload` with `Authorization: Bearer {token}` (none when `None`); the
/// JSON answer, or `null` for a non-JSON one (401).
pub async fn reload(admin: SocketAddr, token: Option<&str>) -> anyhow::Result<AdminJson> {
    let mut req = request("POST", "admin", "/admin/policy/reload");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let reply = H1::connect(admin)
        .await?
        .request(req.body(body::empty())?)
        .await?;
    let json = serde_json::from_slice(&reply.body).unwrap_or(serde_json::Value::Null);
    Ok(AdminJson {
        status: reply.status,
        json,
    })
}

/// Waits (see [`crate::eventually`]) until the running policy has `serial`.
pub async fn serial_becomes(admin: SocketAddr, serial: u64) -> anyhow::Result<()> {
    crate::eventually(&format!("the policy serial becomes {serial}"), || async {
        let d = describe(admin).await?;
        anyhow::ensure!(d["serial"] == serial, "serial is {}", d["serial"]);
        Ok(())
    })
    .await
}
