//! Settings reload: on SIGHUP and `POST /admin/config/reload`, the config file is read and
//! validated again, whole. When it is valid, the `protection:` section and the `limits:` keys
//! that apply per request (`min_body_rate`, `min_body_rate_grace`) are swapped in at once; open
//! connections stay, and the client table is kept (buckets take a new rate when next used).
//! Other sections that changed are reported as needing a restart and are not applied. An
//! invalid file changes nothing.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{Live, Protection};
use crate::config::{Config, ConfigErrors};

/// Re-reads one config file into one running proxy.
#[derive(Debug)]
pub struct ConfigReloader {
    path: PathBuf,
    /// The config as it runs: the start-up file, with the reloaded live settings.
    running: Mutex<Config>,
    protection: Arc<Protection>,
}

/// A reload that applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Sections (and `limits.` keys) that differ from the running config and only take effect
    /// after a restart.
    pub restart_needed: Vec<&'static str>,
}

impl ConfigReloader {
    /// `None` when the config did not come from a file.
    pub fn new(config: &Config, protection: Arc<Protection>) -> Option<ConfigReloader> {
        Some(ConfigReloader {
            path: config.source.clone()?,
            running: Mutex::new(config.clone()),
            protection,
        })
    }

    /// Reads, validates and applies the file (blocking IO: call from a blocking thread).
    pub fn reload(&self) -> Result<Applied, ConfigErrors> {
        let new = match Config::load(&self.path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(file = %self.path.display(), errors = %e, "config reload refused; the running settings stay");
                return Err(e);
            }
        };
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let restart_needed = restart_needed(&running, &new);
        running.protection = new.protection.clone();
        running.limits.min_body_rate = new.limits.min_body_rate;
        running.limits.min_body_rate_grace = new.limits.min_body_rate_grace;
        self.protection.store(Live::new(&running));
        if restart_needed.is_empty() {
            tracing::info!(file = %self.path.display(), "config reloaded: protection settings applied");
        } else {
            tracing::warn!(file = %self.path.display(), sections = ?restart_needed, "config reloaded: protection settings applied; the other changed sections needs a restart");
        }
        Ok(Applied { restart_needed })
    }
}

/// What differs between the running config and a new one, outside what a reload applies.
fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    fn differs(a: &impl std::fmt::Debug, b: &impl std::fmt::Debug) -> bool {
        // The config types are plain data with derived Debug: equal text, equal settings.
        format!("{a:?}") != format!("{b:?}")
    }
    let Config {
        source: _,
        node_id,
        listeners,
        admin,
        limits,
        logging,
        tls,
        policy,
        geoip,
        cache,
        protection: _,
        sites,
    } = new;
    let mut out = Vec::new();
    let sections: [(&'static str, bool); 9] = [
        ("node_id", differs(&old.node_id, node_id)),
        ("listeners", differs(&old.listeners, listeners)),
        ("admin", differs(&old.admin, admin)),
        ("logging", differs(&old.logging, logging)),
        ("tls", differs(&old.tls, tls)),
        ("policy", differs(&old.policy, policy)),
        ("geoip", differs(&old.geoip, geoip)),
        ("cache", differs(&old.cache, cache)),
        ("sites", differs(&old.sites, sites)),
    ];
    out.extend(sections.iter().filter(|(_, d)| *d).map(|(n, _)| *n));
    let o = &old.limits;
    let limit_keys: [(&'static str, bool); 7] = [
        (
            "limits.max_connections",
            o.max_connections != limits.max_connections,
        ),
        (
            "limits.header_read_timeout",
            o.header_read_timeout != limits.header_read_timeout,
        ),
        ("limits.idle_timeout", o.idle_timeout != limits.idle_timeout),
        (
            "limits.max_request_body",
            o.max_request_body != limits.max_request_body,
        ),
        (
            "limits.max_header_size",
            o.max_header_size != limits.max_header_size,
        ),
        (
            "limits.h2_max_concurrent_streams",
            o.h2_max_concurrent_streams != limits.h2_max_concurrent_streams,
        ),
        (
            "limits.max_header_list_size",
            o.max_header_list_size != limits.max_header_list_size,
        ),
    ];
    out.extend(limit_keys.iter().filter(|(_, d)| *d).map(|(n, _)| *n));
    out
}
