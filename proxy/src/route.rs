//! Sites and the host → site table.
//!
//! The table is built once from the config; a lookup is one hash probe on the canonical host, with
//! no allocation.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::config::SiteConfig;
use crate::metrics::{Metrics, SiteMetrics};
use crate::upstream::Origin;
use crate::upstream::tls::{OriginTlsError, SiteTls};

/// A site whose origins cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("site {site}: origin TLS")]
pub struct SiteError {
    pub site: String,
    #[source]
    pub source: OriginTlsError,
}

/// A site: a named group of hosts served by a group of origins.
#[derive(Debug)]
pub struct Site {
    pub name: Arc<str>,
    pub origins: Vec<Arc<Origin>>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub h2: bool,
    pub origin_down_for: Duration,
    pub metrics: Arc<SiteMetrics>,
    /// `cache: true`: this site's `portcullis_cache_requests_total` series, by
    /// [`crate::metrics::CacheResult`]; `None` when the site does not cache.
    pub cache: Option<[prometheus::IntCounter; 5]>,
    next: AtomicUsize,
}

impl Site {
    /// Fails only when the TLS settings of `https://` origins cannot be built (a CA file that
    /// changed since the config was checked).
    pub fn new(cfg: &SiteConfig, metrics: &Metrics) -> Result<Site, OriginTlsError> {
        let site_tls = if cfg.origins.iter().any(|o| o.tls) {
            Some(SiteTls::new(&cfg.name, cfg.origin_tls.as_ref())?)
        } else {
            None
        };
        let mut origins = Vec::with_capacity(cfg.origins.len());
        for o in &cfg.origins {
            let tls = match (&site_tls, o.tls) {
                (Some(t), true) => Some(t.for_origin(o.authority.host())?),
                _ => None,
            };
            origins.push(Arc::new(Origin::new(
                o.url.clone(),
                o.authority.clone(),
                tls,
            )));
        }
        Ok(Site {
            name: Arc::from(cfg.name.as_str()),
            origins,
            connect_timeout: cfg.connect_timeout,
            response_timeout: cfg.response_timeout,
            h2: cfg.h2,
            origin_down_for: cfg.origin_down_for,
            metrics: Arc::new(metrics.site(&cfg.name)),
            cache: cfg.cache.then(|| metrics.cache.site(&cfg.name)),
            next: AtomicUsize::new(0),
        })
    }

    /// Round robin over the origins that are not marked down; when all are down, plain round
    /// robin (trying a down origin beats refusing outright).
    pub fn pick(&self) -> &Arc<Origin> {
        let n = self.origins.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.origins[(start + i) % n])
            .find(|o| !o.is_down())
            .unwrap_or(&self.origins[start % n])
    }

    /// Another origin than `tried` for a retry, preferring ones that are up.
    pub fn pick_other(&self, tried: &Arc<Origin>) -> Option<&Arc<Origin>> {
        let others = || self.origins.iter().filter(|o| !Arc::ptr_eq(o, tried));
        others().find(|o| !o.is_down()).or_else(|| others().next())
    }
}

/// Canonical host → site.
#[derive(Debug, Default)]
pub struct SiteTable {
    by_host: HashMap<Box<str>, Arc<Site>>,
}

impl SiteTable {
    pub fn new(sites: &[SiteConfig], metrics: &Metrics) -> Result<SiteTable, SiteError> {
        let mut table = SiteTable::default();
        for cfg in sites {
            let site = Site::new(cfg, metrics).map_err(|source| SiteError {
                site: cfg.name.clone(),
                source,
            })?;
            let site = Arc::new(site);
            for host in &cfg.hosts {
                table.by_host.insert(host.as_str().into(), site.clone());
            }
        }
        Ok(table)
    }

    /// `host` must be canonical (see `portcullis_policy::canonical_host`).
    pub fn lookup(&self, host: &str) -> Option<&Arc<Site>> {
        self.by_host.get(host)
    }
}
