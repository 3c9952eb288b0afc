//! This node's report at `<prefix>/nodes/<node_id>`, written with a lease so that a node
//! that dies leaves the fleet view after `lease_ttl` (one that stops cleanly revokes it).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::{Backoff, Fleet, etcd, sleep_or_stop};
use crate::policy::rfc3339;

impl Fleet {
    /// This node's report.
    pub fn report(&self) -> Value {
        let (serial, sha256, applied_at) = self.rt.running();
        let error = self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        json!({
            "node": self.node_id,
            "serial": serial,
            "sha256": sha256,
            "applied_at": rfc3339(applied_at),
            "reported_at": rfc3339(SystemTime::now()),
            "error": error,
        })
    }

    pub(super) async fn report_loop(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let key = format!("{}{}", self.etcd.nodes_prefix(), self.node_id);
        let keepalive_every = self.etcd.lease_ttl / 3;
        let mut lease: Option<i64> = None;
        let mut dirty = true;
        let mut backoff = Backoff::new();
        loop {
            let step = async {
                let id = match lease {
                    Some(id) => id,
                    None => {
                        let id = self.client.lease_grant(self.etcd.lease_ttl).await?;
                        lease = Some(id);
                        dirty = true;
                        id
                    }
                };
                if dirty {
                    let report = self.report().to_string();
                    self.client
                        .put(key.as_bytes(), report.as_bytes(), Some(id))
                        .await?;
                    dirty = false;
                }
                self.link.contact();
                Ok::<(), etcd::EtcdError>(())
            };
            let failed = tokio::select! {
                r = step => r.err(),
                _ = stop.changed() => break,
            };
            if let Some(e) = failed {
                // The lease may have expired meanwhile: a new one is granted on reconnect.
                lease = None;
                // etcd answering with an error (an expired lease) is not a lost connection.
                if !matches!(e, etcd::EtcdError::Status { .. }) {
                    self.link_suspect.notify_one();
                }
                let wait = backoff.wait();
                tracing::debug!(%key, error = %e, "cannot report to etcd");
                if sleep_or_stop(wait, &mut stop).await {
                    break;
                }
                continue;
            }
            backoff.reset();
            tokio::select! {
                _ = tokio::time::sleep(keepalive_every) => {
                    if let Some(id) = lease {
                        match self.client.lease_keepalive(id).await {
                            Ok(ttl) if ttl > 0 => self.link.contact(),
                            Ok(_) => lease = None,
                            Err(e) => {
                                tracing::debug!(error = %e, "lease keepalive failed");
                                lease = None;
                                self.link_suspect.notify_one();
                            }
                        }
                    }
                }
                _ = self.report_changed.notified() => dirty = true,
                _ = stop.changed() => break,
            }
        }
        if let Some(id) = lease {
            // A drained node leaves the fleet view at once rather than after the TTL.
            let _ =
                tokio::time::timeout(Duration::from_secs(1), self.client.lease_revoke(id)).await;
        }
    }
}
