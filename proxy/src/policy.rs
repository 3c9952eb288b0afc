//! The legal-order policy at run time: loading, the fail-closed start, reloads by every trigger,
//! the snapshot each request decides on, the clock that makes orders start and end, cutting
//! exchanges a change newly blocks, the audit trail and the metrics.
//!
//! ```text
//!  start:  policy.file ──verify──▶ parse ──▶ ok: persist state_dir/policy.last-good.yaml
//!            │ broken or missing
//!            └──▶ state_dir/policy.last-good.yaml ──▶ ok: serve it, report the file's errors
//!                   │ none either
//!                   └──▶ refuse to start, saying why (fail closed)
//!  reload: watch (directory; debounced) │ SIGHUP │ POST /admin/policy/reload │ hash check
//!            ──▶ read, sha256 (as running: nothing to do) ──▶ verify ──▶ parse ──▶ serial rule
//!            ──▶ compile ──▶ swap ──▶ persist last good ──▶ audit ──▶ cut newly blocked
//!          any failure: the running table stays; counted, logged, audited
//!  tick:   every min(1 s, close_grace / 2): order states by the clock; an order that became
//!          effective or ended is audited, and a newly effective one cuts what it blocks
//! ```
//!
//! With `policy.source: etcd` there is no file: start-up weighs the bundle read from etcd
//! against the last good copy the same way ([`PolicyRuntime::start_from`]), and every value
//! the watch sees goes through [`PolicyRuntime::apply_bytes`], the reload path above from
//! `verify` on (the watch itself is in [`crate::fleet`]).
//!
//! `verify` applies only with `policy.trusted_keys`: the file must then be a bundle one of the
//! keys signed ([`crate::bundle`]), checked before anything inside it is parsed, and the last
//! good copy is that verified bundle (verified again at start-up). A refused bundle is counted
//! by reason and audited as `bundle_refused`.
//!
//! The pure decisions live in `portcullis-policy`; this module owns every clock, file and lock.

pub mod cut;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use portcullis_policy::{CompiledPolicy, OrderState, Policy, SerialError, pause};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::audit::{AuditLog, event};
use crate::bundle::BundleError;
use crate::config::PolicyConfig;
use crate::metrics::PolicyMetrics;

/// The last good copy, beside the audit log.
pub const LAST_GOOD: &str = "policy.last-good.yaml";
/// The audit log's file name in `state_dir`.
pub const AUDIT_LOG: &str = crate::audit::FILE_NAME;

/// One loaded policy, as every request of its lifetime sees it.
#[derive(Debug)]
pub struct Snapshot {
    pub table: CompiledPolicy,
    /// Hex sha256 of the file's bytes.
    pub sha256: String,
    pub loaded_at: SystemTime,
    pub source: Source,
}

/// Where the running policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    File,
    /// The file (or etcd) was broken, missing or unreachable at start-up.
    LastGood,
    /// A bundle read from etcd (`policy.source: etcd`).
    Etcd,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::LastGood => "last_good",
            Source::Etcd => "etcd",
        }
    }
}

/// What started a reload (logged, audited and reported by the admin endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Startup,
    Watch,
    Signal,
    Admin,
    HashCheck,
    /// A change of `<prefix>/policy` in etcd (watch event or a fresh read).
    Etcd,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::Watch => "watch",
            Trigger::Signal => "sighup",
            Trigger::Admin => "admin",
            Trigger::HashCheck => "hash_check",
            Trigger::Etcd => "etcd",
        }
    }
}

/// How a reload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Applied {
        serial: u64,
        added: Vec<String>,
        removed: Vec<String>,
        changed: Vec<String>,
    },
    /// The file's bytes are the running ones.
    Unchanged { serial: u64 },
    /// A watch event or the hash check found the content already running or already refused:
    /// nothing is counted, logged or audited again (a log file written into the watched
    /// directory must not turn one refusal into a loop).
    Skipped,
    /// The file has errors (every one listed, with file, line, order and key).
    Invalid(String),
    /// The serial rule refused it (a rollback, or a change without a new serial).
    Refused(String),
    /// `trusted_keys` is set and the file is not a bundle that verifies, or its serial is not
    /// higher (counted in `portcullis_policy_bundles_refused_total{reason}`).
    BundleRefused(BundleRefusal),
    /// The file could not be read.
    Error(String),
}

impl Outcome {
    /// The `result` label.
    pub fn result(&self) -> &'static str {
        match self {
            Outcome::Applied { .. } | Outcome::Unchanged { .. } | Outcome::Skipped => "success",
            Outcome::Invalid(_) => "invalid",
            Outcome::Refused(_) | Outcome::BundleRefused(_) => "refused",
            Outcome::Error(_) => "error",
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            Outcome::Invalid(e) | Outcome::Refused(e) | Outcome::Error(e) => Some(e),
            Outcome::BundleRefused(r) => Some(&r.message),
            _ => None,
        }
    }
}

/// Why a bundle was refused, as counted and audited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleRefusal {
    /// One of [`crate::bundle::REFUSAL_REASONS`].
    pub reason: &'static str,
    /// The signer the bundle names, when it names one.
    pub key_id: Option<String>,
    pub message: String,
}

impl BundleRefusal {
    fn of(path: &Path, e: &BundleError) -> BundleRefusal {
        BundleRefusal {
            reason: e.reason(),
            key_id: e.key_id().map(str::to_owned),
            message: format!("{}: {e}", path.display()),
        }
    }
}

/// The proxy will not start: there is no valid policy to enforce.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "no valid legal-order policy: {file} {file_error}; and no last good copy at {last_good}: {last_good_error}. Refusing to serve without the policy (fail closed)"
    )]
    NoPolicy {
        file: PathBuf,
        file_error: String,
        last_good: PathBuf,
        last_good_error: String,
    },
    #[error(
        "no valid legal-order policy: etcd {key} at {endpoints}: {etcd_error}; and no last good copy at {last_good}: {last_good_error}. Refusing to serve without the policy (fail closed)"
    )]
    NoEtcdPolicy {
        endpoints: String,
        key: String,
        etcd_error: String,
        last_good: PathBuf,
        last_good_error: String,
    },
    #[error("cannot create the policy state directory {path}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The last attempt, for `GET /admin/policy`.
#[derive(Debug, Clone, Default)]
struct Status {
    /// The error of the last failed load, cleared by the next success.
    last_error: Option<String>,
    last_attempt: Option<(SystemTime, Trigger, &'static str)>,
    /// The sha256 of the last file content tried and found wanting, so the hash check does not
    /// retry (and re-log) the same broken file every interval.
    last_bad_sha: Option<String>,
}

/// The policy of one proxy instance.
#[derive(Debug)]
pub struct PolicyRuntime {
    cfg: PolicyConfig,
    current: ArcSwap<Snapshot>,
    /// Bumped on every swap and every clock-driven change, so an exchange decided on an older
    /// generation is decided again when it registers.
    generation: AtomicU64,
    status: Mutex<Status>,
    /// One reload at a time.
    reloading: Mutex<()>,
    /// Order states at the last tick, by order index of the current snapshot.
    states: Mutex<Vec<OrderState>>,
    audit: Mutex<Option<AuditLog>>,
    pub metrics: PolicyMetrics,
    pub cuts: Arc<cut::Registry>,
    /// The file's size, mtime and inode when the hash check last hashed it.
    last_stamp: Mutex<Option<FileStamp>>,
    checks: AtomicU64,
    /// The table a reload replaced, freed by the reload thread once requests let go of it.
    retired: Mutex<Option<Arc<Snapshot>>>,
    /// Called with the table after every sweep (the cache purges globally suspended hosts).
    on_sweep: std::sync::OnceLock<SweepHook>,
    /// The directory watch, started with the runtime so no change after start-up is missed,
    /// and handed to its task by [`PolicyRuntime::spawn_triggers`].
    watch: Mutex<Option<WatchEvents>>,
    /// The etcd connection's state, shown by `GET /admin/policy` (`policy.source: etcd`).
    link: std::sync::OnceLock<Arc<crate::fleet::Link>>,
}

/// What start-up tries before the last good copy: the file, or the bundle read from etcd.
#[derive(Debug)]
pub struct Primary {
    /// Names it in messages (the file's path, or `etcd:<key>`).
    pub label: PathBuf,
    /// The policy, its sha256 and bytes; or why there is none.
    pub loaded: Result<(Policy, String, Vec<u8>), LoadFailure>,
    /// The snapshot's source when it is applied.
    pub source: Source,
}

impl Primary {
    /// The bytes fetched from etcd, or why there are none (the key is absent, etcd did not
    /// answer).
    pub fn fetched(
        cfg: &PolicyConfig,
        label: PathBuf,
        fetched: Result<Vec<u8>, String>,
    ) -> Primary {
        let loaded = match fetched {
            Ok(bytes) => {
                let sha = sha256_hex(&bytes);
                match load_bytes(cfg, &label, &bytes) {
                    Ok((policy, _)) => Ok((policy, sha, bytes)),
                    Err(outcome) => Err((outcome, Some(sha))),
                }
            }
            Err(why) => Err((Outcome::Error(why), None)),
        };
        Primary {
            label,
            loaded,
            source: Source::Etcd,
        }
    }
}

/// What runs after every sweep (see [`PolicyRuntime::on_sweep`]).
pub struct SweepHook(pub Box<SweepFn>);

/// The function a [`SweepHook`] holds.
pub type SweepFn = dyn Fn(&CompiledPolicy, SystemTime) + Send + Sync;

impl std::fmt::Debug for SweepHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SweepHook")
    }
}

/// The watcher and the channel its events arrive on.
type WatchEvents = (
    Option<notify::RecommendedWatcher>,
    tokio::sync::mpsc::UnboundedReceiver<()>,
);

/// Host names listed per order by `GET /admin/policy` (`host_count` has them all).
pub const HOSTS_SHOWN: usize = 20;

/// The hash check hashes the file at least this often (in checks), whatever its metadata says.
pub const FULL_HASH_EVERY: u64 = 30;

/// What `stat` says about the file: a change of any of these means "hash it again".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl FileStamp {
    fn of(m: &std::fs::Metadata) -> FileStamp {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(m);
        #[cfg(not(unix))]
        let inode = 0;
        FileStamp {
            len: m.len(),
            modified: m.modified().ok(),
            inode,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Hex sha256, as [`Snapshot::sha256`] holds it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    for chunk in bytes.chunks(CHUNK) {
        h.update(chunk);
        pause::now();
    }
    hex::encode(h.finalize())
}

/// Reads, writes and hashes of a policy file go by this many bytes, with a
/// [`pause::now`] between chunks (on a reload thread it yields the CPU to waiting requests).
const CHUNK: usize = 1 << 20;

/// `std::fs::read` by chunks, with a pause between them.
fn read_gently(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut f = std::fs::File::open(path)?;
    let size = f.metadata().map_or(0, |m| m.len());
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    loop {
        let before = out.len();
        let n = (&mut f).take(CHUNK as u64).read_to_end(&mut out)?;
        pause::now();
        if n == 0 || out.len() == before {
            return Ok(out);
        }
    }
}

/// What the file holds, to tell a new attempt from a repeat: its hash, or why it is unreadable.
fn content_key(read: Result<&[u8], &std::io::Error>) -> String {
    match read {
        Ok(bytes) => sha256_hex(bytes),
        Err(e) => format!("unreadable: {:?}", e.kind()),
    }
}

fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// RFC 3339, UTC, for JSON.
pub fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Why a file was not loaded, and the content key that stands for it (so the same content is
/// not retried by the hash check).
pub type LoadFailure = (Outcome, Option<String>);

/// Parses a policy file's bytes; the error is every problem as one message.
fn parse_policy(path: &Path, bytes: &[u8]) -> Result<Policy, Outcome> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| Outcome::Invalid(format!("{}: not UTF-8 text: {e}", path.display())))?;
    Policy::parse(text, &path.display().to_string())
        .map_err(|errors| Outcome::Invalid(errors.to_string()))
}

/// The policy inside a file's bytes, and the key that signed them: with `trusted_keys` the
/// bytes must be a bundle, verified before anything in it is parsed; without, a plain file.
fn load_bytes(
    cfg: &PolicyConfig,
    path: &Path,
    bytes: &[u8],
) -> Result<(Policy, Option<String>), Outcome> {
    if cfg.trusted_keys.is_empty() {
        return parse_policy(path, bytes).map(|p| (p, None));
    }
    let verified = crate::bundle::open(bytes, &cfg.trusted_keys)
        .map_err(|e| Outcome::BundleRefused(BundleRefusal::of(path, &e)))?;
    let policy = parse_policy(path, &verified.policy)?;
    Ok((policy, Some(verified.key_id)))
}

/// What reading `path` found: the bytes, and their content key (the sha256, or why the file
/// cannot be read).
fn read_keyed(path: &Path) -> (std::io::Result<Vec<u8>>, String) {
    let read = read_gently(path);
    let key = content_key(read.as_deref());
    (read, key)
}

/// Reads and parses a policy file (verifying it first when it must be a bundle):
/// `(policy, sha256, bytes)`, or the failure with the content key that stands for it.
fn read_policy(cfg: &PolicyConfig, path: &Path) -> Result<(Policy, String, Vec<u8>), LoadFailure> {
    let (read, key) = read_keyed(path);
    let loaded = match read {
        Ok(bytes) => load_bytes(cfg, path, &bytes).map(|(p, _)| (p, bytes)),
        Err(e) => Err(Outcome::Error(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    };
    match loaded {
        Ok((policy, bytes)) => Ok((policy, key, bytes)),
        Err(outcome) => Err((outcome, Some(key))),
    }
}

/// Writes `bytes` to `path` atomically (temporary file, sync, rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    for chunk in bytes.chunks(CHUNK) {
        f.write_all(chunk)?;
        pause::now();
    }
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl PolicyRuntime {
    /// Loads the policy at start-up, failing closed: the file, else the last good copy, else
    /// an error that stops the proxy.
    pub fn start(cfg: &PolicyConfig, metrics: PolicyMetrics) -> Result<Arc<Self>, StartError> {
        let file = cfg.file.clone().unwrap_or_default();
        // A local file is always "connected"; the etcd source keeps this gauge itself.
        metrics.source_connected.set(1);
        let primary = Primary {
            loaded: read_policy(cfg, &file),
            label: file.clone(),
            source: Source::File,
        };
        Self::start_from(
            cfg,
            metrics,
            primary,
            |file_error, last_good, last_good_error| StartError::NoPolicy {
                file,
                file_error,
                last_good,
                last_good_error,
            },
        )
    }

    /// Start-up from `primary` (else the last good copy, else `no_policy(primary's error, last
    /// good path, its error)`).
    pub fn start_from(
        cfg: &PolicyConfig,
        metrics: PolicyMetrics,
        primary: Primary,
        no_policy: impl FnOnce(String, PathBuf, String) -> StartError,
    ) -> Result<Arc<Self>, StartError> {
        let Primary {
            label,
            loaded: from_file,
            source: primary_source,
        } = primary;
        std::fs::create_dir_all(&cfg.state_dir).map_err(|source| StartError::StateDir {
            path: cfg.state_dir.clone(),
            source,
        })?;
        metrics.init();
        let audit = match AuditLog::open(&cfg.state_dir.join(AUDIT_LOG)) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::error!(error = %crate::error::Chain(&e), "cannot open the policy audit log; changes are logged but not audited");
                None
            }
        };
        let last_good_path = cfg.state_dir.join(LAST_GOOD);
        // A last good copy is verified again: one the configured keys no longer accept is
        // not used.
        let from_last_good = || read_policy(cfg, &last_good_path);
        // A bundle refused at start-up is counted and audited like one refused by a reload.
        let mut refused_bundle = None;
        let now = SystemTime::now();
        // The file content found wanting at start-up, so the hash check does not retry it.
        let mut bad_key = None;
        let mut applied_bytes = None;
        let (policy, sha, source, file_error) = match from_file {
            Ok((policy, sha, bytes)) => {
                // Across restarts too, an older file must not lift what a newer one imposed.
                let refused = from_last_good().ok().and_then(|(good, good_sha, _)| {
                    let reason = refusal(good.serial, policy.serial, &good_sha, &sha)?;
                    Some((good, good_sha, reason))
                });
                match refused {
                    Some((good, good_sha, reason)) => {
                        tracing::error!(file = %label.display(), %reason, "policy file refused at start-up; enforcing the last good copy");
                        if !cfg.trusted_keys.is_empty() {
                            refused_bundle = Some(BundleRefusal {
                                reason: "serial",
                                key_id: None,
                                message: reason.clone(),
                            });
                        }
                        bad_key = Some(sha);
                        (good, good_sha, Source::LastGood, Some(reason))
                    }
                    None => {
                        applied_bytes = Some(bytes);
                        (policy, sha, primary_source, None)
                    }
                }
            }
            Err((outcome, key)) => {
                bad_key = key;
                if let Outcome::BundleRefused(r) = &outcome {
                    refused_bundle = Some(r.clone());
                }
                let file_error = outcome.error().unwrap_or_default().to_owned();
                match from_last_good() {
                    Ok((good, good_sha, _)) => {
                        tracing::error!(file = %label.display(), error = %file_error, last_good = %last_good_path.display(), "policy file unusable at start-up; enforcing the last good copy");
                        (good, good_sha, Source::LastGood, Some(file_error))
                    }
                    Err((lg, _)) => {
                        let last_good_error = lg.error().unwrap_or_default().to_owned();
                        return Err(no_policy(file_error, last_good_path, last_good_error));
                    }
                }
            }
        };
        let serial = policy.serial;
        let orders = policy.orders.len();
        let table = CompiledPolicy::compile(policy);
        let rt = Arc::new(PolicyRuntime {
            cfg: cfg.clone(),
            current: ArcSwap::from_pointee(Snapshot {
                table,
                sha256: sha.clone(),
                loaded_at: now,
                source,
            }),
            generation: AtomicU64::new(0),
            on_sweep: std::sync::OnceLock::new(),
            status: Mutex::new(Status {
                last_error: file_error.clone(),
                last_attempt: Some((
                    now,
                    Trigger::Startup,
                    if file_error.is_some() {
                        "invalid"
                    } else {
                        "success"
                    },
                )),
                last_bad_sha: bad_key,
            }),
            reloading: Mutex::new(()),
            states: Mutex::new(Vec::new()),
            audit: Mutex::new(audit),
            metrics,
            cuts: Arc::new(cut::Registry::default()),
            last_stamp: Mutex::new(None),
            checks: AtomicU64::new(0),
            retired: Mutex::new(None),
            watch: Mutex::new(cfg.file.as_ref().map(|file| {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<()>();
                (watch_dir(file, tx), rx)
            })),
            link: std::sync::OnceLock::new(),
        });
        if let Some(bytes) = applied_bytes {
            rt.persist_last_good(&bytes);
        }
        if let Some(r) = &refused_bundle {
            rt.bundle_refused(Trigger::Startup, r);
        }
        rt.metrics
            .serial
            .set(i64::try_from(serial).unwrap_or(i64::MAX));
        rt.metrics.reload(
            if file_error.is_some() {
                "invalid"
            } else {
                "success"
            },
            unix_secs(now),
        );
        let snapshot = rt.snapshot();
        let states = rt.order_states(&snapshot, now);
        rt.audit(
            event::POLICY_LOADED,
            json!({
                "trigger": "startup",
                "serial": serial,
                "sha256": sha,
                "source": source.as_str(),
                "orders": orders,
                "active": active_ids(&snapshot, &states),
                "sealed": sealed_ids(&snapshot),
                "file_error": file_error,
            }),
        );
        *lock(&rt.states) = states;
        tracing::info!(serial, orders, source = source.as_str(), file = %label.display(), "legal-order policy loaded");
        Ok(rt)
    }

    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    /// The table to decide this request on. Load once per request and ask it everything.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// A full `Arc` of the table (for work that outlives the request, like explain).
    pub fn snapshot_arc(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps exactly the bytes that were applied as the last good copy.
    fn persist_last_good(&self, bytes: &[u8]) {
        let path = self.cfg.state_dir.join(LAST_GOOD);
        if let Err(e) = write_atomic(&path, bytes) {
            tracing::error!(path = %path.display(), error = %e, "cannot persist the last good policy");
        }
    }

    /// Counts an attempt and keeps it (and its error) for `GET /admin/policy`.
    fn record_attempt(&self, trigger: Trigger, now: SystemTime, outcome: &Outcome) {
        let result = outcome.result();
        self.metrics.reload(result, unix_secs(now));
        let mut st = lock(&self.status);
        st.last_attempt = Some((now, trigger, result));
        match outcome {
            Outcome::Applied { .. } => st.last_error = None,
            Outcome::Unchanged { .. } | Outcome::Skipped => {}
            other => st.last_error = other.error().map(str::to_owned),
        }
    }

    /// Counts and audits a refused bundle (the caller logs it).
    fn bundle_refused(&self, trigger: Trigger, r: &BundleRefusal) {
        // Audited before counted: whoever sees the count finds the record.
        self.audit(
            event::BUNDLE_REFUSED,
            json!({
                "trigger": trigger.as_str(),
                "reason": r.reason,
                "key_id": r.key_id,
                "error": r.message,
            }),
        );
        self.metrics.bundle_refused(r.reason);
    }

    fn audit(&self, event: &str, mut fields: Value) {
        if let (Some(node), Some(map)) = (&self.cfg.node_id, fields.as_object_mut()) {
            map.insert("node".to_owned(), Value::String(node.clone()));
        }
        if let Some(log) = lock(&self.audit).as_mut() {
            if let Err(e) = log.append(event, fields) {
                tracing::error!(event, error = %crate::error::Chain(&e), "cannot write the audit log");
            }
        }
    }

    /// Re-reads the file and applies it if it is valid and newer. Blocking (a 1,000,000-host
    /// table takes a good part of a second to compile): call from a blocking thread.
    pub fn reload(&self, trigger: Trigger) -> Outcome {
        let _one = lock(&self.reloading);
        let now = SystemTime::now();
        let outcome = match self.cfg.file.clone() {
            Some(file) => {
                let (read, sha) = read_keyed(&file);
                self.try_apply(trigger, now, &file, read, sha)
            }
            None => Outcome::Error(
                "policy.source is etcd: there is no file to reload; the policy follows <prefix>/policy (publish with `portcullis policy publish`)".into(),
            ),
        };
        self.finish(trigger, now, outcome)
    }

    /// Applies a bundle's (or policy file's) bytes through the same path as a file reload:
    /// verify, parse, serial rule, compile, swap, persist the last good copy, audit, sweep.
    /// `label` names where they came from in messages. Blocking, like [`Self::reload`].
    pub fn apply_bytes(&self, trigger: Trigger, label: &Path, bytes: Vec<u8>) -> Outcome {
        let _one = lock(&self.reloading);
        let now = SystemTime::now();
        let sha = sha256_hex(&bytes);
        let outcome = self.try_apply(trigger, now, label, Ok(bytes), sha);
        self.finish(trigger, now, outcome)
    }

    /// Counts, records, logs and audits what an attempt came to.
    fn finish(&self, trigger: Trigger, now: SystemTime, outcome: Outcome) -> Outcome {
        if outcome == Outcome::Skipped {
            return outcome;
        }
        // An applied table was counted and recorded at the swap itself (so nobody who sees the
        // new table sees the old status).
        if !matches!(outcome, Outcome::Applied { .. }) {
            self.record_attempt(trigger, now, &outcome);
        }
        match &outcome {
            Outcome::Applied {
                serial,
                added,
                removed,
                changed,
            } => {
                tracing::info!(
                    trigger = trigger.as_str(),
                    serial,
                    ?added,
                    ?removed,
                    ?changed,
                    "legal-order policy reloaded"
                );
                // The old table is freed here, on the reload's low-priority thread, not by
                // whichever request happens to drop the last reference to it (freeing a
                // million-host table takes a while): requests hold a snapshot for
                // microseconds, so after a moment this is the last one.
                let retired = lock(&self.retired).take();
                if let Some(retired) = retired {
                    std::thread::sleep(Duration::from_millis(50));
                    match Arc::try_unwrap(retired) {
                        Ok(snapshot) => snapshot.table.free_gradually(),
                        Err(still_shared) => drop(still_shared),
                    }
                }
            }
            Outcome::Unchanged { serial } => {
                tracing::info!(trigger = trigger.as_str(), serial, "policy file unchanged");
            }
            Outcome::Skipped => {}
            Outcome::Invalid(e) => {
                tracing::error!(trigger = trigger.as_str(), errors = %e, "policy reload failed; keeping the running table");
                self.audit(
                    event::POLICY_RELOAD_FAILED,
                    json!({ "trigger": trigger.as_str(), "error": e }),
                );
            }
            Outcome::Error(e) => {
                tracing::error!(trigger = trigger.as_str(), error = %e, "policy reload failed; keeping the running table");
                self.audit(
                    event::POLICY_RELOAD_FAILED,
                    json!({ "trigger": trigger.as_str(), "error": e }),
                );
            }
            Outcome::BundleRefused(r) => {
                tracing::error!(trigger = trigger.as_str(), reason = r.reason, key_id = r.key_id.as_deref(), error = %r.message, "policy bundle refused; keeping the running table");
                self.bundle_refused(trigger, r);
            }
            Outcome::Refused(e) => {
                tracing::error!(trigger = trigger.as_str(), reason = %e, "policy reload refused; keeping the running table");
                self.audit(
                    event::POLICY_RELOAD_REFUSED,
                    json!({ "trigger": trigger.as_str(), "reason": e }),
                );
            }
        }
        outcome
    }

    fn try_apply(
        &self,
        trigger: Trigger,
        now: SystemTime,
        label: &Path,
        read: std::io::Result<Vec<u8>>,
        sha: String,
    ) -> Outcome {
        let running = self.snapshot_arc();
        let started = std::time::Instant::now();
        // A watch fires for anything in the directory, and etcd is read afresh after every
        // reconnect: content already running or already refused is not counted again.
        let quiet = matches!(trigger, Trigger::Watch | Trigger::HashCheck | Trigger::Etcd);
        if quiet
            && (sha == running.sha256 || lock(&self.status).last_bad_sha.as_deref() == Some(&sha))
        {
            // Events fire for anything in the directory; only new content is worth a reload.
            return Outcome::Skipped;
        }
        let loaded = match read {
            Ok(bytes) => load_bytes(&self.cfg, label, &bytes).map(|p| (p, bytes)),
            Err(e) => Err(Outcome::Error(format!(
                "cannot read {}: {e}",
                label.display()
            ))),
        };
        let ((policy, key_id), bytes) = match loaded {
            Ok(ok) => ok,
            Err(outcome) => {
                lock(&self.status).last_bad_sha = Some(sha);
                return outcome;
            }
        };
        if sha == running.sha256 {
            return Outcome::Unchanged {
                serial: policy.serial,
            };
        }
        let parsed_in = started.elapsed();
        let new = CompiledPolicy::compile(policy);
        let compiled_in = started.elapsed() - parsed_in;
        let diff = match running.table.check_replacement(&new) {
            Ok(diff) => diff,
            Err(e) => {
                lock(&self.status).last_bad_sha = Some(sha);
                if !self.cfg.trusted_keys.is_empty() {
                    // A replayed older bundle is genuinely signed: the serial is what refuses it.
                    return Outcome::BundleRefused(BundleRefusal {
                        reason: "serial",
                        key_id,
                        message: format!("{}: {e}", label.display()),
                    });
                }
                return Outcome::Refused(e.to_string());
            }
        };
        let serial = new.serial();
        let orders = new.policy().orders.len();
        let applied = Outcome::Applied {
            serial,
            added: diff.added.clone(),
            removed: diff.removed.clone(),
            changed: diff.changed.clone(),
        };
        self.record_attempt(trigger, now, &applied);
        self.metrics
            .serial
            .set(i64::try_from(serial).unwrap_or(i64::MAX));
        let source = if trigger == Trigger::Etcd {
            Source::Etcd
        } else {
            Source::File
        };
        self.current.store(Arc::new(Snapshot {
            table: new,
            sha256: sha.clone(),
            loaded_at: now,
            source,
        }));
        self.generation.fetch_add(1, Ordering::AcqRel);
        tracing::info!(
            serial,
            hosts = self.snapshot().table.host_count(),
            read_and_parse_ms = parsed_in.as_millis() as u64,
            compile_ms = compiled_in.as_millis() as u64,
            swapped_after_ms = started.elapsed().as_millis() as u64,
            "new legal-order table in force"
        );
        self.persist_last_good(&bytes);
        let snapshot = self.snapshot_arc();
        let states = self.order_states(&snapshot, now);
        self.audit(
            event::POLICY_LOADED,
            json!({
                "trigger": trigger.as_str(),
                "serial": serial,
                "previous_serial": running.table.serial(),
                "sha256": sha,
                "source": source.as_str(),
                "key_id": key_id,
                "orders": orders,
                "added": diff.added,
                "removed": diff.removed,
                "changed": diff.changed,
                "active": active_ids(&snapshot, &states),
                "sealed": sealed_ids(&snapshot),
            }),
        );
        *lock(&self.states) = states;
        self.sweep(&snapshot, now);
        *lock(&self.retired) = Some(running);
        applied
    }

    /// Order states at `now`, and the `orders{state}` gauge set from them.
    fn order_states(&self, snapshot: &Snapshot, now: SystemTime) -> Vec<OrderState> {
        let now = OffsetDateTime::from(now);
        let states: Vec<OrderState> = snapshot
            .table
            .policy()
            .orders
            .iter()
            .map(|o| o.state(now))
            .collect();
        let count = |s: OrderState| states.iter().filter(|x| **x == s).count() as i64;
        self.metrics.set_orders(&[
            ("pending", count(OrderState::Pending)),
            ("active", count(OrderState::Active)),
            ("expired", count(OrderState::Expired)),
            ("lifted", count(OrderState::Lifted)),
        ]);
        states
    }

    /// The clock: audits orders that became effective or ended since the last tick, and cuts
    /// what a newly effective order blocks.
    pub fn tick(&self) {
        let _one = lock(&self.reloading);
        let now = SystemTime::now();
        let snapshot = self.snapshot_arc();
        let states = self.order_states(&snapshot, now);
        let mut newly_active = false;
        {
            let mut prev = lock(&self.states);
            if prev.len() == states.len() {
                for (i, (was, is)) in prev.iter().zip(&states).enumerate() {
                    if was == is {
                        continue;
                    }
                    let Some(order) = snapshot.table.policy().orders.get(i) else {
                        continue;
                    };
                    let event = if *is == OrderState::Active {
                        newly_active = true;
                        tracing::info!(order = %order.id, "legal order became effective");
                        event::ORDER_EFFECTIVE
                    } else {
                        tracing::info!(order = %order.id, state = is.as_str(), "legal order ended");
                        event::ORDER_ENDED
                    };
                    self.audit(
                        event,
                        json!({
                            "order": order.id,
                            "serial": snapshot.table.serial(),
                            "state": is.as_str(),
                            "at": rfc3339(now),
                        }),
                    );
                }
            }
            *prev = states;
        }
        if newly_active {
            self.generation.fetch_add(1, Ordering::AcqRel);
            self.sweep(&snapshot, now);
        }
    }

    /// Sets what runs after every sweep (once; later calls are ignored).
    pub fn on_sweep(&self, hook: SweepHook) {
        let _ = self.on_sweep.set(hook);
    }

    /// Cuts every registered exchange the table now blocks; counts and audits per order.
    fn sweep(&self, snapshot: &Snapshot, now: SystemTime) {
        if let Some(hook) = self.on_sweep.get() {
            (hook.0)(&snapshot.table, now);
        }
        let cut = self.cuts.sweep(&snapshot.table, now);
        for (order, n) in cut {
            self.metrics.cut(&order, n);
            tracing::info!(%order, connections = n, "open exchanges of a newly blocked host cut");
            self.audit(
                event::CONNECTIONS_CUT,
                json!({ "order": order, "count": n, "serial": snapshot.table.serial() }),
            );
        }
    }

    /// Decides a just-registered exchange again if the table changed since its decision;
    /// returns the blocking order's id (the caller cuts and counts).
    pub fn recheck(&self, facts: &cut::Facts, decided_at: u64, now: SystemTime) -> Option<String> {
        if self.generation() == decided_at {
            return None;
        }
        let snapshot = self.snapshot();
        let order = cut::blocking_order(&snapshot.table, facts, now)?;
        self.metrics.cut(&order, 1);
        self.audit(
            event::CONNECTIONS_CUT,
            json!({ "order": order, "count": 1, "serial": snapshot.table.serial() }),
        );
        Some(order)
    }

    /// Whether the file on disk differs from both the running table and the last file found
    /// wanting (the periodic hash check).
    ///
    /// The file is hashed only when its size, modification time or inode changed since the last
    /// hash, and in any case every [`FULL_HASH_EVERY`] checks: re-hashing a 19 MB table every
    /// second would cost more CPU than it is worth.
    pub fn file_changed(&self) -> bool {
        let Some(file) = &self.cfg.file else {
            return false;
        };
        let stamp = std::fs::metadata(file).ok().map(|m| FileStamp::of(&m));
        let checks = self.checks.fetch_add(1, Ordering::Relaxed);
        {
            let mut last = lock(&self.last_stamp);
            if stamp.is_some() && *last == stamp && checks % FULL_HASH_EVERY != 0 {
                return false;
            }
            *last = stamp;
        }
        let key = content_key(read_gently(file).as_deref());
        key != self.snapshot().sha256 && lock(&self.status).last_bad_sha.as_deref() != Some(&key)
    }

    /// `GET /admin/policy`.
    ///
    /// Without `with_orders` the `orders` list is left out (and its per-order counts with it):
    /// a table of a thousand orders takes a millisecond or two to list, too much to poll.
    pub fn describe(&self, with_orders: bool) -> Value {
        let snapshot = self.snapshot_arc();
        let status = lock(&self.status).clone();
        let now = SystemTime::now();
        let policy = snapshot.table.policy();
        let at = OffsetDateTime::from(now);
        let mut states: std::collections::BTreeMap<&str, usize> =
            ["pending", "active", "expired", "lifted"]
                .into_iter()
                .map(|s| (s, 0))
                .collect();
        let mut hosts_total = 0;
        for o in &policy.orders {
            *states.entry(o.state(at).as_str()).or_default() += 1;
            hosts_total += o.scope.hosts.len();
        }
        let listed = if with_orders { policy.orders.len() } else { 0 };
        let orders: Vec<Value> = policy
            .orders
            .iter()
            .take(listed)
            .map(|o| {
                let state = o.state(at).as_str();
                // A generated order may hold thousands of names: show the first few.
                let hosts: Vec<String> = o
                    .scope
                    .hosts
                    .iter()
                    .take(HOSTS_SHOWN)
                    .map(|h| h.coverage.show(&h.name))
                    .collect();
                json!({
                    "id": o.id,
                    "state": state,
                    "mode": mode_str(o.mode),
                    "action": o.action.as_str(),
                    "authority": o.authority.name,
                    "authority_type": o.authority.kind.as_str(),
                    "jurisdiction": o.authority.jurisdiction.as_str(),
                    "reference": o.reference,
                    "effective_from": fmt_odt(o.effective_from),
                    "expires_at": o.expires_at.map(fmt_odt),
                    "host_count": o.scope.hosts.len(),
                    "hosts": hosts,
                })
            })
            .collect();
        let mut out = json!({
            "serial": snapshot.table.serial(),
            "sha256": snapshot.sha256,
            "loaded_at": rfc3339(snapshot.loaded_at),
            "source": snapshot.source.as_str(),
            "file": self.cfg.file.as_ref().map(|f| f.display().to_string()),
            "blocked_by": policy.blocked_by,
            "last_error": status.last_error,
            "last_reload": status.last_attempt.map(|(at, trigger, result)| json!({
                "at": rfc3339(at),
                "trigger": trigger.as_str(),
                "result": result,
            })),
            "hosts": hosts_total,
            "states": states,
            "open_exchanges": self.cuts.len(),
        });
        if let Some(link) = self.link.get() {
            link.describe(&mut out);
        }
        if with_orders {
            out["orders"] = Value::Array(orders);
        }
        out
    }

    /// The error of the last failed load, if the last load failed.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.status).last_error.clone()
    }

    /// Hands the etcd connection's state to `GET /admin/policy` (once).
    pub fn set_link(&self, link: Arc<crate::fleet::Link>) {
        let _ = self.link.set(link);
    }

    /// The hex sha256 of the running table's bytes, its serial and when it was loaded.
    pub fn running(&self) -> (u64, String, SystemTime) {
        let s = self.snapshot();
        (s.table.serial(), s.sha256.clone(), s.loaded_at)
    }

    /// Runs the triggers that need a task or a thread: the directory watch, SIGHUP, the hash
    /// check and the clock. They stop when `stop` turns true.
    pub fn spawn_triggers(self: &Arc<Self>, stop: tokio::sync::watch::Receiver<bool>) {
        if let Some((watcher, rx)) = lock(&self.watch).take() {
            tokio::spawn(debounced_reloads(self.clone(), rx, watcher, stop.clone()));
        }
        tokio::spawn(reload_on_sighup(self.clone(), stop.clone()));
        if self.cfg.file.is_some() {
            tokio::spawn(hash_check(self.clone(), stop.clone()));
        }
        tokio::spawn(clock(self.clone(), stop));
    }
}

fn mode_str(m: portcullis_policy::Mode) -> &'static str {
    match m {
        portcullis_policy::Mode::Enforce => "enforce",
        portcullis_policy::Mode::DryRun => "dry_run",
    }
}

fn fmt_odt(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn active_ids(snapshot: &Snapshot, states: &[OrderState]) -> Vec<String> {
    snapshot
        .table
        .policy()
        .orders
        .iter()
        .zip(states)
        .filter(|(_, s)| **s == OrderState::Active)
        .map(|(o, _)| o.id.clone())
        .collect()
}

/// Orders whose pages disclose nothing (POLICY-SPEC: the substitution is audited): every
/// request they block gets the generic page instead of the order's details.
fn sealed_ids(snapshot: &Snapshot) -> Vec<String> {
    snapshot
        .table
        .policy()
        .orders
        .iter()
        .filter(|o| o.disclosure == portcullis_policy::Disclosure::Sealed)
        .map(|o| o.id.clone())
        .collect()
}

/// Why `new` may not replace `running` (start-up form of the serial rule).
fn refusal(running: u64, new: u64, running_sha: &str, new_sha: &str) -> Option<String> {
    if new < running {
        Some(SerialError::Lower { running, new }.to_string())
    } else if new == running && running_sha != new_sha {
        Some(SerialError::Unchanged { serial: new }.to_string())
    } else {
        None
    }
}

/// Watches the file's directory (not the file: atomic renames and symlink swaps replace it).
fn watch_dir(
    file: &Path,
    tx: tokio::sync::mpsc::UnboundedSender<()>,
) -> Option<notify::RecommendedWatcher> {
    use notify::event::{EventKind, ModifyKind};
    use notify::{RecursiveMode, Watcher};
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match &event {
            Ok(e) => !matches!(
                e.kind,
                EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_))
            ),
            Err(_) => true,
        };
        if relevant {
            let _ = tx.send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch the policy file; the hash check and SIGHUP still reload");
            return None;
        }
    };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::error!(dir = %dir.display(), error = %e, "cannot watch the policy directory; the hash check and SIGHUP still reload");
        return None;
    }
    Some(watcher)
}

/// Quiet time after a watch event before reloading (an in-place write is a truncate and a
/// write).
const DEBOUNCE: Duration = Duration::from_millis(100);

async fn debounced_reloads(
    rt: Arc<PolicyRuntime>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<()>,
    _watcher: Option<notify::RecommendedWatcher>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            got = rx.recv() => if got.is_none() { return },
            _ = stop.changed() => return,
        }
        // Debounce: wait until events stop for a moment.
        loop {
            match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return,
                Err(_) => break,
            }
        }
        run_reload(&rt, Trigger::Watch).await;
    }
}

/// Runs a reload on a thread of its own at the lowest CPU priority: a 1,000,000-host table
/// takes about a second of CPU to parse and compile, and where the proxy shares its cores (or is
/// pinned to one) that second must go to requests first.
pub async fn run_reload(rt: &Arc<PolicyRuntime>, trigger: Trigger) -> Outcome {
    run_apply(rt, move |rt| rt.reload(trigger)).await
}

/// Runs `apply` (a reload, or [`PolicyRuntime::apply_bytes`]) the way [`run_reload`] does: on
/// a thread of its own at the lowest CPU priority.
pub async fn run_apply<F>(rt: &Arc<PolicyRuntime>, apply: F) -> Outcome
where
    F: FnOnce(&PolicyRuntime) -> Outcome + Send + 'static,
{
    let rt = rt.clone();
    on_reload_thread(move || apply(&rt))
        .await
        .unwrap_or_else(|e| Outcome::Error(e.to_owned()))
}

/// Runs `work` on a thread of its own at the lowest CPU priority, with the pause hook that
/// yields to waiting requests (see [`yield_cpu`]): reading, hashing, parsing and compiling a
/// large table must not take the core from the requests it shares it with.
async fn on_reload_thread<T, F>(work: F) -> Result<T, &'static str>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("portcullis-policy-reload".to_owned())
        .spawn(move || {
            lower_priority();
            pause::set_hook(Some(yield_cpu));
            let _ = tx.send(work());
        })
        .map_err(|_| "cannot start the reload thread")?;
    rx.await
        .map_err(|_| "the reload thread ended without an answer")
}

/// The reload thread's pause hook: lets a waiting request worker run. At nice 19 the thread
/// gets the CPU only when nothing else wants it, but once it has the CPU the scheduler lets it
/// finish its slice (up to a tick or two, 4-8 ms at `HZ=250`) before a woken worker runs;
/// yielding every [`YIELD_EVERY`] of work bounds that wait. With nothing else runnable a yield
/// returns at once; more often would cost the reload more in switches than it saves requests.
fn yield_cpu() {
    thread_local! {
        static LAST: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
    }
    let now = std::time::Instant::now();
    let due = LAST.with(|l| match l.get() {
        Some(last) if now.duration_since(last) < YIELD_EVERY => false,
        _ => {
            l.set(Some(now));
            true
        }
    });
    if due {
        std::thread::yield_now();
    }
}

/// The most CPU a reload thread takes between two yields.
const YIELD_EVERY: Duration = Duration::from_micros(500);

/// Nice 19 for the calling thread (Linux nice values are per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19) {
        tracing::debug!(error = %e, "cannot lower the reload thread's priority");
    }
}

async fn reload_on_sighup(rt: Arc<PolicyRuntime>, mut stop: tokio::sync::watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; the policy reloads on change only");
                return;
            }
        };
        loop {
            tokio::select! {
                got = hangup.recv() => if got.is_none() { return },
                _ = stop.changed() => return,
            }
            if rt.cfg.file.is_none() {
                tracing::info!(
                    "SIGHUP: policy.source is etcd, so the policy follows <prefix>/policy and there is nothing to reload (certificates still reload)"
                );
                continue;
            }
            run_reload(&rt, Trigger::Signal).await;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (rt, stop.changed().await);
    }
}

/// Calls `work` every `period` (the first time one period from now) until `stop`; a call that
/// overruns delays the next rather than bunching them.
async fn every<F, Fut>(period: Duration, mut stop: tokio::sync::watch::Receiver<bool>, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        work().await;
    }
}

async fn hash_check(rt: Arc<PolicyRuntime>, stop: tokio::sync::watch::Receiver<bool>) {
    every(rt.cfg.check_interval, stop, || {
        let rt = rt.clone();
        async move {
            let check = rt.clone();
            let changed = on_reload_thread(move || check.file_changed())
                .await
                .unwrap_or(false);
            if changed {
                run_reload(&rt, Trigger::HashCheck).await;
            }
        }
    })
    .await;
}

/// How often order states are re-evaluated by the clock.
pub fn tick_interval(close_grace: Duration) -> Duration {
    (close_grace / 2).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

async fn clock(rt: Arc<PolicyRuntime>, stop: tokio::sync::watch::Receiver<bool>) {
    every(tick_interval(rt.cfg.close_grace), stop, || {
        let rt = rt.clone();
        async move {
            let _ = tokio::task::spawn_blocking(move || rt.tick()).await;
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_up_serial_rule() {
        assert!(refusal(5, 4, "a", "b").is_some());
        assert!(refusal(5, 5, "a", "b").is_some());
        assert!(refusal(5, 5, "a", "a").is_none());
        assert!(refusal(5, 6, "a", "b").is_none());
    }

    #[test]
    fn audit_records_name_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policy.yaml");
        std::fs::write(
            &file,
            "serial: 1\nblocked_by: \"https://edge.example.net/legal\"\norders: []\n",
        )
        .unwrap();
        let cfg = PolicyConfig {
            file: Some(file),
            state_dir: dir.path().join("state"),
            close_grace: Duration::from_secs(5),
            check_interval: Duration::from_secs(1),
            source: crate::config::PolicySource::File,
            trusted_keys: Vec::new(),
            node_id: Some("edge-fra-01".to_owned()),
        };
        let rt = PolicyRuntime::start(&cfg, crate::metrics::Metrics::new().policy).unwrap();
        drop(rt);
        let audit = std::fs::read_to_string(cfg.state_dir.join(AUDIT_LOG)).unwrap();
        let first: Value = serde_json::from_str(audit.lines().next().unwrap()).unwrap();
        assert_eq!(first["event"], event::POLICY_LOADED);
        assert_eq!(first["node"], "edge-fra-01");
    }

    #[test]
    fn ticks_are_bounded_by_the_grace() {
        assert_eq!(
            tick_interval(Duration::from_secs(5)),
            Duration::from_secs(1)
        );
        assert_eq!(
            tick_interval(Duration::from_millis(400)),
            Duration::from_millis(200)
        );
        assert_eq!(tick_interval(Duration::ZERO), Duration::from_millis(50));
    }
}
