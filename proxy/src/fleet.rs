//! The fleet policy source (`policy.source: etcd`): signed bundles at `<prefix>/policy`,
//! watched and applied through the same path as a file reload, and this node's report at
//! `<prefix>/nodes/<node_id>`.
//!
//! ```text
//!  start:  state_dir/policy.last-good.yaml (verified) ─┐
//!          range <prefix>/policy (≤ 3 s) ──────────────┴─▶ the higher serial wins (fail closed:
//!          neither → refuse to start, naming the endpoints and the state_dir copy)
//!  watch:  from the last revision seen + 1 ──▶ PUT ──▶ verify → parse → serial rule → compile
//!          → swap → persist last good → audit → sweep (PolicyRuntime::apply_bytes)
//!          canceled with compact_revision ──▶ range afresh, watch from its revision + 1
//!          error / stream end / the report's keepalive unanswered (a silent partition)
//!            ──▶ connected 0, restart counted, backoff 100 ms … 5 s (jitter)
//!  report: lease (lease_ttl, keepalive every third) ──▶ put <prefix>/nodes/<node_id> =
//!          {node, serial, sha256, applied_at, reported_at, error} at start and after every
//!          apply or refusal; a lost lease is granted again and the report put again
//! ```
//!
//! Cut off from etcd, the node keeps enforcing the running table (and its clock keeps starting
//! and ending orders): nothing here ever lifts a suspension. A deleted key changes nothing
//! either (it is reported as the node's error).
//!
//! The wire protocol is in [`etcd`] (JSON gateway over HTTP/1.1, no protoc).

pub mod etcd;
mod report;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::config::{EtcdConfig, PolicyConfig, PolicySource};
use crate::metrics::PolicyMetrics;
use crate::policy::{Outcome, PolicyRuntime, Primary, StartError, Trigger, run_apply};
use etcd::{Client, Event, WatchMessage};

/// How long start-up waits for etcd before falling back to the last good copy.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(3);
/// First and longest wait between watch restarts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The etcd connection's state: the gauges, and what `GET /admin/policy` shows.
#[derive(Debug)]
pub struct Link {
    connected: AtomicBool,
    /// Unix milliseconds of the last successful exchange (0: never).
    last_contact_ms: AtomicU64,
    /// The store revision of the last change seen (0: none yet).
    revision: AtomicI64,
    metrics: PolicyMetrics,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Link {
    fn new(metrics: PolicyMetrics) -> Link {
        metrics.source_connected.set(0);
        Link {
            connected: AtomicBool::new(false),
            last_contact_ms: AtomicU64::new(0),
            revision: AtomicI64::new(0),
            metrics,
        }
    }

    fn contact(&self) {
        let now = unix_ms(SystemTime::now());
        self.last_contact_ms.store(now, Ordering::Relaxed);
        self.metrics.source_last_contact.set(now as f64 / 1000.0);
    }

    fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Relaxed);
        self.metrics.source_connected.set(i64::from(up));
        if up {
            self.contact();
        }
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Adds `connected`, `seconds_since_contact` (null: never) and `etcd_revision` to the
    /// `GET /admin/policy` answer.
    pub fn describe(&self, out: &mut Value) {
        let last = self.last_contact_ms.load(Ordering::Relaxed);
        let since =
            (last > 0).then(|| unix_ms(SystemTime::now()).saturating_sub(last) as f64 / 1000.0);
        out["connected"] = self.connected().into();
        out["seconds_since_contact"] = json!(since);
        out["etcd_revision"] = self.revision.load(Ordering::Relaxed).into();
    }
}

/// The fleet side of one node: its etcd client, the watch and the report.
#[derive(Debug)]
pub struct Fleet {
    rt: Arc<PolicyRuntime>,
    client: Client,
    etcd: EtcdConfig,
    node_id: String,
    link: Arc<Link>,
    /// The revision start-up read the key at (`None`: etcd did not answer; read it first).
    start_revision: Option<i64>,
    /// The last refusal or error, reported until the next success.
    last_error: Mutex<Option<String>>,
    /// Wakes the reporter when there is something new to report.
    report_changed: tokio::sync::Notify,
    /// Set by the reporter when etcd stops answering it: an idle watch stream cannot tell a
    /// silent partition (no FIN, no RST) from quiet, so the watch is re-established.
    link_suspect: tokio::sync::Notify,
}

/// Loads the policy as `cfg.source` says: the file ([`PolicyRuntime::start`]; no fleet), or
/// etcd, failing closed (see the module chart).
pub async fn start(
    cfg: &PolicyConfig,
    metrics: PolicyMetrics,
) -> Result<(Arc<PolicyRuntime>, Option<Arc<Fleet>>), StartError> {
    match &cfg.source {
        PolicySource::File => PolicyRuntime::start(cfg, metrics).map(|rt| (rt, None)),
        PolicySource::Etcd(etcd) => {
            let (rt, fleet) = start_etcd(cfg, etcd, metrics).await?;
            Ok((rt, Some(fleet)))
        }
    }
}

async fn start_etcd(
    cfg: &PolicyConfig,
    etcd: &EtcdConfig,
    metrics: PolicyMetrics,
) -> Result<(Arc<PolicyRuntime>, Arc<Fleet>), StartError> {
    let key = etcd.policy_key();
    let endpoints = etcd.endpoints.join(", ");
    let no_policy = |etcd_error: String, last_good: PathBuf, last_good_error: String| {
        StartError::NoEtcdPolicy {
            endpoints: endpoints.clone(),
            key: key.clone(),
            etcd_error,
            last_good,
            last_good_error,
        }
    };
    let client = match Client::new(&etcd.endpoints) {
        Ok(c) => c,
        Err(e) => {
            let last_good = cfg.state_dir.join(crate::policy::LAST_GOOD);
            return Err(no_policy(e.to_string(), last_good, "not tried".into()));
        }
    };
    let link = Arc::new(Link::new(metrics.clone()));
    let read = tokio::time::timeout(STARTUP_TIMEOUT, client.range(key.as_bytes(), false)).await;
    let (fetched, start_revision) = match read {
        Ok(Ok(range)) => {
            link.contact();
            link.revision.store(range.revision, Ordering::Relaxed);
            let fetched = match range.kvs.into_iter().next() {
                Some(kv) => Ok(kv.value),
                None => Err(format!("no bundle published at {key} yet")),
            };
            (fetched, Some(range.revision))
        }
        Ok(Err(e)) => (Err(format!("unreachable: {e}")), None),
        Err(_) => (Err(format!("no answer within {STARTUP_TIMEOUT:?}")), None),
    };
    if let Err(why) = &fetched {
        tracing::warn!(endpoints = %endpoints, %key, error = %why, "no policy from etcd at start-up; trying the last good copy");
    }
    let label = PathBuf::from(format!("etcd:{key}"));
    let primary = Primary::fetched(cfg, label, fetched);
    let rt = PolicyRuntime::start_from(cfg, metrics, primary, no_policy)?;
    rt.set_link(link.clone());
    let fleet = Arc::new(Fleet {
        rt: rt.clone(),
        client,
        etcd: etcd.clone(),
        node_id: cfg.node_id.clone().unwrap_or_default(),
        link,
        start_revision,
        last_error: Mutex::new(rt.last_error()),
        report_changed: tokio::sync::Notify::new(),
        link_suspect: tokio::sync::Notify::new(),
    });
    Ok((rt, fleet))
}

/// Exponential backoff with jitter, 100 ms to 5 s.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff { next: BACKOFF_MIN }
    }

    fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }

    /// The wait before the next try: the current step, ±25 %, then the step doubles.
    fn wait(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        // Jitter from the clock's nanoseconds: enough to keep a fleet from retrying in step.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let factor = 0.75 + f64::from(nanos % 1000) / 2000.0;
        base.mul_f64(factor)
    }
}

/// Why a watch ended without an error worth a backoff.
enum Ended {
    /// Canceled because the start revision was compacted: read afresh, watch again.
    Compacted,
}

/// Sleeps `d`, or returns `true` early if the node is stopping.
async fn sleep_or_stop(d: Duration, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

impl Fleet {
    pub fn link(&self) -> &Arc<Link> {
        &self.link
    }

    /// Starts the watch and the reporter; both end when `stop` turns true (the report's lease
    /// is then revoked, so a drained node disappears at once).
    pub fn spawn(self: &Arc<Self>, stop: tokio::sync::watch::Receiver<bool>) {
        tokio::spawn(self.clone().watch_loop(stop.clone()));
        tokio::spawn(self.clone().report_loop(stop));
    }

    async fn watch_loop(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let key = self.etcd.policy_key();
        let mut revision = self.start_revision;
        let mut backoff = Backoff::new();
        loop {
            let ended = {
                let once = self.watch_once(&key, &mut revision, &mut backoff);
                tokio::pin!(once);
                loop {
                    tokio::select! {
                        r = &mut once => break r,
                        // Only an established watch is in doubt; while connecting, the
                        // connection attempt's own errors and timeouts decide.
                        _ = self.link_suspect.notified() => if self.link.connected() {
                            break Err(etcd::EtcdError::Endpoint(
                                "etcd stopped answering the lease keepalive".into(),
                            ));
                        },
                        _ = stop.changed() => return,
                    }
                }
            };
            self.link.set_connected(false);
            self.rt.metrics.watch_restarts.inc();
            match ended {
                Ok(Ended::Compacted) => {
                    tracing::warn!(%key, "etcd compacted past the watch's revision; reading the key afresh");
                    revision = None;
                }
                Err(e) => {
                    let wait = backoff.wait();
                    tracing::warn!(%key, error = %e, retry_in_ms = wait.as_millis() as u64, "etcd watch lost; keeping the running table");
                    if sleep_or_stop(wait, &mut stop).await {
                        return;
                    }
                }
            }
        }
    }

    /// One watch, from (re)connect to its end.
    async fn watch_once(
        &self,
        key: &str,
        revision: &mut Option<i64>,
        backoff: &mut Backoff,
    ) -> Result<Ended, etcd::EtcdError> {
        let from = match *revision {
            Some(r) => r,
            None => {
                let range = self.client.range(key.as_bytes(), false).await?;
                self.link.contact();
                if let Some(kv) = range.kvs.into_iter().next() {
                    self.apply(kv.value, kv.mod_revision).await;
                }
                *revision = Some(range.revision);
                range.revision
            }
        };
        let mut watch = self.client.watch(key.as_bytes(), from + 1).await?;
        loop {
            let Some(message) = watch.next().await? else {
                return Err(etcd::EtcdError::Endpoint(
                    "etcd closed the watch stream".into(),
                ));
            };
            match message {
                WatchMessage::Created { .. } => {
                    self.link.set_connected(true);
                    backoff.reset();
                    tracing::info!(%key, from = from + 1, "watching the policy in etcd");
                }
                WatchMessage::Events { events, .. } => {
                    self.link.contact();
                    for event in events {
                        match event {
                            Event::Put(kv) => {
                                *revision = Some(kv.mod_revision);
                                self.apply(kv.value, kv.mod_revision).await;
                            }
                            Event::Delete(kv) => {
                                *revision = Some(kv.mod_revision);
                                self.link.revision.store(kv.mod_revision, Ordering::Relaxed);
                                let msg = format!(
                                    "{key} was deleted from etcd; the running table stays (deleting the key lifts nothing)"
                                );
                                tracing::error!("{msg}");
                                self.set_error(Some(msg));
                            }
                        }
                    }
                }
                WatchMessage::Canceled {
                    compact_revision,
                    reason,
                } => {
                    if compact_revision > 0 {
                        return Ok(Ended::Compacted);
                    }
                    return Err(etcd::EtcdError::Endpoint(format!(
                        "etcd canceled the watch: {reason}"
                    )));
                }
            }
        }
    }

    /// Applies one value of the key through the policy runtime, then reports.
    async fn apply(&self, bytes: Vec<u8>, revision: i64) {
        self.link.revision.store(revision, Ordering::Relaxed);
        let label = PathBuf::from(format!("etcd:{}@{revision}", self.etcd.policy_key()));
        let sha = crate::policy::sha256_hex(&bytes);
        let outcome = run_apply(&self.rt, move |rt| {
            rt.apply_bytes(Trigger::Etcd, &label, bytes)
        })
        .await;
        match &outcome {
            Outcome::Applied { .. } | Outcome::Unchanged { .. } => self.set_error(None),
            // What etcd holds is what runs (e.g. read again after a reconnect): whatever kept
            // the node from it (etcd unreachable at start-up) is over.
            Outcome::Skipped if self.rt.running().1 == sha => self.set_error(None),
            // Content already refused: the report already says so.
            Outcome::Skipped => {}
            other => self.set_error(other.error().map(str::to_owned)),
        }
    }

    fn set_error(&self, error: Option<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = error;
        self.report_changed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_shows_in_describe_and_the_gauges() {
        let metrics = crate::metrics::Metrics::new().policy;
        let link = Link::new(metrics.clone());
        let mut out = json!({});
        link.describe(&mut out);
        assert_eq!(out["connected"], false);
        assert_eq!(
            out["seconds_since_contact"],
            Value::Null,
            "never in contact"
        );
        assert_eq!(out["etcd_revision"], 0);
        link.set_connected(true);
        link.revision.store(42, Ordering::Relaxed);
        link.describe(&mut out);
        assert_eq!(out["connected"], true);
        assert!(
            out["seconds_since_contact"]
                .as_f64()
                .is_some_and(|s| s < 5.0)
        );
        assert_eq!(out["etcd_revision"], 42);
        assert_eq!(metrics.source_connected.get(), 1);
        assert!(metrics.source_last_contact.get() > 1.7e9);
        link.set_connected(false);
        assert_eq!(metrics.source_connected.get(), 0);
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let mut b = Backoff::new();
        let waits: Vec<Duration> = (0..10).map(|_| b.wait()).collect();
        assert!(waits[0] >= Duration::from_millis(75) && waits[0] <= Duration::from_millis(125));
        assert!(waits.iter().all(|w| *w <= BACKOFF_MAX.mul_f64(1.25)));
        assert!(waits[9] >= BACKOFF_MAX.mul_f64(0.75));
        b.reset();
        assert!(b.wait() <= Duration::from_millis(125));
    }
}
