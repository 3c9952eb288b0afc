//! Reload on change. The whole directory is watched (recursively, following symlinks), not the
//! files: an atomic rename or a symlink swap replaces a file's inode, and a watch on the old inode
//! would go quiet (P5). Only create/modify/remove events count, never access or metadata events,
//! which our own reads cause; events are debounced, because an in-place write is a truncate and a
//! write, and a deploy touches several files.
//!
//! If the watched directory itself is deleted and recreated, the watch is lost; `reload()` (e.g.
//! on SIGHUP) still works.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use crate::error::{LoadErrors, WatchError};
use crate::store::{CertStore, ReloadSummary};

/// Quiet time after the last event before reloading.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// A directory that never goes quiet still gets reloaded this often.
const MAX_DELAY: Duration = Duration::from_secs(2);

/// Keeps the watch alive; dropping it stops watching (and waits for a reload in progress, unless
/// dropped from inside the callback).
#[derive(Debug)]
pub struct WatchGuard {
    watcher: Option<RecommendedWatcher>,
    stop: mpsc::Sender<Msg>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
enum Msg {
    Changed,
    Stop,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        // Stop the event source first, so nothing queues behind the stop message.
        drop(self.watcher.take());
        let _ = self.stop.send(Msg::Stop);
        // No let-chains: the workspace still declares rust-version 1.85.
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

/// Reload callback type.
type OnReload = dyn Fn(&Result<ReloadSummary, LoadErrors>) + Send + Sync + 'static;

impl CertStore {
    /// Watches the store's directory; on each (debounced) change, calls [`CertStore::reload`]
    /// and then `on_reload` with the result. A failed reload keeps the last good set. The
    /// returned guard stops watching when dropped.
    pub fn watch(
        &self,
        on_reload: impl Fn(&Result<ReloadSummary, LoadErrors>) + Send + Sync + 'static,
    ) -> Result<WatchGuard, WatchError> {
        let dir = self.dir().to_owned();
        let err = |source| WatchError {
            path: dir.clone(),
            source,
        };
        let (tx, rx) = mpsc::channel();
        let events = tx.clone();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let relevant = match &event {
                Ok(event) => counts(&event.kind),
                Err(e) => {
                    // Typically an overflowed queue: events were lost, so look again.
                    tracing::warn!(error = %e, "certificate watcher error; reloading to be safe");
                    true
                }
            };
            if relevant {
                let _ = events.send(Msg::Changed);
            }
        })
        .map_err(err)?;
        watcher.watch(&dir, RecursiveMode::Recursive).map_err(err)?;
        let store = self.clone();
        let thread = std::thread::Builder::new()
            .name("portcullis-certs-watch".to_owned())
            .spawn(move || run(&rx, &store, &on_reload))
            .map_err(|e| err(notify::Error::io(e)))?;
        tracing::info!(dir = %dir.display(), "watching certificates");
        Ok(WatchGuard {
            watcher: Some(watcher),
            stop: tx,
            thread: Some(thread),
        })
    }
}

/// Whether an event may mean a certificate changed.
fn counts(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Create(_)
        | EventKind::Modify(_)
        | EventKind::Remove(_)
        | EventKind::Any
        | EventKind::Other => true,
    }
}

fn run(rx: &mpsc::Receiver<Msg>, store: &CertStore, on_reload: &OnReload) {
    loop {
        match rx.recv() {
            Ok(Msg::Changed) => {}
            Ok(Msg::Stop) | Err(_) => return,
        }
        let first = Instant::now();
        loop {
            let wait = DEBOUNCE.min(MAX_DELAY.saturating_sub(first.elapsed()));
            match rx.recv_timeout(wait) {
                Ok(Msg::Changed) if first.elapsed() < MAX_DELAY => {}
                Ok(Msg::Changed) | Err(RecvTimeoutError::Timeout) => break,
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        let result = store.reload();
        match &result {
            Ok(summary) if summary.is_unchanged() => {
                tracing::debug!(dir = %store.dir().display(), "certificates unchanged");
            }
            Ok(summary) => tracing::info!(
                dir = %store.dir().display(),
                pairs = summary.pairs,
                added = ?summary.added,
                removed = ?summary.removed,
                changed = ?summary.changed,
                "certificates reloaded"
            ),
            Err(errors) => tracing::error!(
                dir = %store.dir().display(),
                %errors,
                "certificate reload failed; keeping the last good set"
            ),
        }
        on_reload(&result);
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, CreateKind, DataChange, MetadataKind, RemoveKind, RenameMode};

    use super::*;

    #[test]
    fn our_own_reads_do_not_count_as_changes() {
        // Reading the files on reload fires access (and, via atime, metadata) events; reacting
        // to them would reload forever (P5).
        assert!(!counts(&EventKind::Access(AccessKind::Any)));
        assert!(!counts(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::AccessTime
        ))));
        assert!(counts(&EventKind::Create(CreateKind::File)));
        assert!(counts(&EventKind::Modify(ModifyKind::Data(
            DataChange::Any
        ))));
        assert!(counts(&EventKind::Modify(ModifyKind::Name(RenameMode::To))));
        assert!(counts(&EventKind::Remove(RemoveKind::File)));
    }
}
