//! `portcullis policy publish` and `portcullis fleet status`: the etcd side of the fleet policy
//! source ([`crate::fleet`]), for operators.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use portcullis_policy::{Policy, PolicyErrors};
use serde_json::{Value, json};

use crate::bundle::{self, BundleError, KeyError};
use crate::fleet::etcd::{Client, EtcdError, Expect};

/// Why `policy publish` or `fleet status` failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetCommandError {
    #[error("{}: cannot read the bundle: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source} [{}]", path.display(), source.reason())]
    Bundle {
        path: PathBuf,
        #[source]
        source: BundleError,
    },
    #[error("{}: the signed policy is invalid:\n{source}", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: PolicyErrors,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("etcd: {0}")]
    Etcd(#[from] EtcdError),
    #[error(
        "refusing to publish serial {new}: {key} already holds serial {current} (a published serial must be higher than the current one)"
    )]
    NotHigher { new: u64, current: u64, key: String },
    #[error("{key} kept changing while publishing (tried {tries} times); try again")]
    Contended { key: String, tries: u32 },
    #[error("{0:?} is not a key prefix (start with '/', no trailing '/')")]
    BadPrefix(String),
}

fn check_prefix(prefix: &str) -> Result<(), FleetCommandError> {
    if prefix.starts_with('/') && prefix.len() > 1 && !prefix.ends_with('/') {
        Ok(())
    } else {
        Err(FleetCommandError::BadPrefix(prefix.to_owned()))
    }
}

/// The serial of a bundle's policy: verified against `keys` when there are any (a forged
/// bundle's serial must not block a genuine publish), else read unverified (the nodes verify).
fn bundle_serial(bytes: &[u8], keys: &[bundle::TrustedKey]) -> Option<u64> {
    let verified = if keys.is_empty() {
        bundle::unverified(bytes)
    } else {
        bundle::open(bytes, keys)
    }
    .ok()?;
    let text = std::str::from_utf8(&verified.policy).ok()?;
    Policy::parse(text, "etcd").ok().map(|p| p.serial)
}

/// `portcullis policy publish`: checks `path` is a well-formed bundle (verified when `trusted`
/// keys are given), then writes it to `<prefix>/policy` in a transaction that refuses a serial
/// not higher than the one there.
pub async fn policy_publish(
    endpoint: &str,
    prefix: &str,
    path: &Path,
    trusted: &[PathBuf],
) -> Result<String, FleetCommandError> {
    check_prefix(prefix)?;
    let bytes = std::fs::read(path).map_err(|source| FleetCommandError::Read {
        path: path.to_owned(),
        source,
    })?;
    let keys = trusted
        .iter()
        .map(|k| bundle::load_public_key(k))
        .collect::<Result<Vec<_>, _>>()?;
    let contents = if keys.is_empty() {
        bundle::unverified(&bytes)
    } else {
        bundle::open(&bytes, &keys)
    }
    .map_err(|source| FleetCommandError::Bundle {
        path: path.to_owned(),
        source,
    })?;
    let text = std::str::from_utf8(&contents.policy).map_err(|_| FleetCommandError::Bundle {
        path: path.to_owned(),
        source: BundleError::Malformed("the signed policy is not UTF-8 text".into()),
    })?;
    let policy = Policy::parse(text, &path.display().to_string()).map_err(|source| {
        FleetCommandError::Invalid {
            path: path.to_owned(),
            source,
        }
    })?;
    let client = Client::new(&[endpoint.to_owned()])?;
    let key = format!("{prefix}/policy");
    const TRIES: u32 = 5;
    for _ in 0..TRIES {
        let range = client.range(key.as_bytes(), false).await?;
        let (expect, current) = match range.kvs.first() {
            Some(kv) => (
                Expect::ModRevision(kv.mod_revision),
                bundle_serial(&kv.value, &keys),
            ),
            None => (Expect::Absent, None),
        };
        if let Some(current) = current.filter(|c| policy.serial <= *c) {
            return Err(FleetCommandError::NotHigher {
                new: policy.serial,
                current,
                key,
            });
        }
        // Someone may publish between the read and the write: the compare refuses that, and
        // the decision is made again on what they wrote.
        let txn = client.put_if(key.as_bytes(), &bytes, expect).await?;
        if txn.succeeded {
            let mut out = String::new();
            let _ = writeln!(
                out,
                "published serial {} to {key} (etcd revision {}, key {})",
                policy.serial, txn.revision, contents.key_id
            );
            if let Some(previous) = current {
                let _ = writeln!(out, "  replaces serial {previous}");
            }
            return Ok(out);
        }
    }
    Err(FleetCommandError::Contended { key, tries: TRIES })
}

/// One node's report, as `fleet status` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub node: String,
    pub serial: Option<u64>,
    /// Serials behind the published one (`None`: nothing published, or no serial reported).
    pub lag: Option<u64>,
    pub applied_at: Option<String>,
    pub seconds_since_report: Option<f64>,
    pub error: Option<String>,
}

fn seconds_since(rfc3339: &str, now: SystemTime) -> Option<f64> {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()?;
    let at: SystemTime = t.into();
    Some(
        now.duration_since(at)
            .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0),
    )
}

/// Rows from the reports under `<prefix>/nodes/`, given the published serial.
pub fn node_rows(
    reports: &[(String, Value)],
    published: Option<u64>,
    now: SystemTime,
) -> Vec<NodeRow> {
    reports
        .iter()
        .map(|(node, v)| {
            let serial = v.get("serial").and_then(Value::as_u64);
            NodeRow {
                node: v
                    .get("node")
                    .and_then(Value::as_str)
                    .unwrap_or(node)
                    .to_owned(),
                serial,
                lag: published.zip(serial).map(|(p, s)| p.saturating_sub(s)),
                applied_at: v
                    .get("applied_at")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                seconds_since_report: v
                    .get("reported_at")
                    .and_then(Value::as_str)
                    .and_then(|t| seconds_since(t, now)),
                error: v.get("error").and_then(Value::as_str).map(str::to_owned),
            }
        })
        .collect()
}

/// `portcullis fleet status`: the published serial and every node's report, as a table or JSON.
pub async fn fleet_status(
    endpoint: &str,
    prefix: &str,
    as_json: bool,
) -> Result<String, FleetCommandError> {
    check_prefix(prefix)?;
    let client = Client::new(&[endpoint.to_owned()])?;
    let key = format!("{prefix}/policy");
    let nodes_prefix = format!("{prefix}/nodes/");
    let policy = client.range(key.as_bytes(), false).await?;
    let published = policy
        .kvs
        .first()
        .map(|kv| (bundle_serial(&kv.value, &[]), kv.mod_revision));
    let nodes = client.range(nodes_prefix.as_bytes(), true).await?;
    let reports: Vec<(String, Value)> = nodes
        .kvs
        .iter()
        .map(|kv| {
            let name = String::from_utf8_lossy(&kv.key[nodes_prefix.len().min(kv.key.len())..])
                .into_owned();
            let v = serde_json::from_slice(&kv.value)
                .unwrap_or_else(|e| json!({ "error": format!("unreadable report: {e}") }));
            (name, v)
        })
        .collect();
    let published_serial = published.and_then(|(s, _)| s);
    let rows = node_rows(&reports, published_serial, SystemTime::now());
    if as_json {
        let listed: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "node": r.node, "serial": r.serial, "lag": r.lag,
                    "applied_at": r.applied_at,
                    "seconds_since_report": r.seconds_since_report,
                    "error": r.error,
                })
            })
            .collect();
        let out = json!({
            "key": key,
            "published": published.map(|(serial, revision)| json!({
                "serial": serial, "mod_revision": revision,
            })),
            "revision": nodes.revision,
            "nodes": listed,
        });
        return Ok(format!("{out}\n"));
    }
    let mut out = String::new();
    match published {
        Some((Some(serial), rev)) => {
            let _ = writeln!(out, "published serial {serial} at {key} (revision {rev})");
        }
        Some((None, rev)) => {
            let _ = writeln!(
                out,
                "published: {key} (revision {rev}) holds no readable bundle"
            );
        }
        None => {
            let _ = writeln!(out, "published: nothing at {key}");
        }
    }
    let _ = writeln!(
        out,
        "{:<24} {:>8} {:>5} {:<26} {:>9}  ERROR",
        "NODE", "SERIAL", "LAG", "APPLIED_AT", "REPORTED"
    );
    let dash = || "-".to_owned();
    for r in &rows {
        let _ = writeln!(
            out,
            "{:<24} {:>8} {:>5} {:<26} {:>9}  {}",
            r.node,
            r.serial.map_or_else(dash, |s| s.to_string()),
            r.lag.map_or_else(dash, |l| l.to_string()),
            r.applied_at.clone().unwrap_or_else(dash),
            r.seconds_since_report
                .map_or_else(dash, |s| format!("{s:.0}s ago")),
            r.error.clone().unwrap_or_else(dash),
        );
    }
    if rows.is_empty() {
        let _ = writeln!(out, "(no node reports under {nodes_prefix})");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_show_lag_behind_the_published_serial() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_010);
        let reports = vec![
            (
                "a".to_owned(),
                json!({"node": "a", "serial": 7, "reported_at": "2027-01-15T08:00:00Z", "error": null}),
            ),
            (
                "b".to_owned(),
                json!({"node": "b", "serial": 5, "error": "bad signature"}),
            ),
        ];
        let rows = node_rows(&reports, Some(7), now);
        assert_eq!(rows[0].lag, Some(0));
        assert_eq!(rows[0].seconds_since_report, Some(10.0));
        assert_eq!(rows[1].lag, Some(2));
        assert_eq!(rows[1].error.as_deref(), Some("bad signature"));
        assert_eq!(node_rows(&reports, None, now)[0].lag, None);
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(check_prefix("/portcullis").is_ok());
        assert!(check_prefix("portcullis").is_err());
        assert!(check_prefix("/p/").is_err());
    }
}
