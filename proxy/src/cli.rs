//! The commands behind `portcullis run`, `check` and `demo`, kept here so `main.rs` stays a thin
//! shell and everything is testable.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::config::{Config, ConfigErrors};
use crate::server::{Proxy, ServeError};

pub use crate::config::parse_duration;

/// `portcullis check`: validates the config and everything it points at. On success returns a
/// human summary; on failure every error found.
pub fn check(path: &Path) -> Result<String, ConfigErrors> {
    let cfg = Config::load(path)?;
    let mut out = String::new();
    let _ = writeln!(out, "{}: OK", path.display());
    for l in &cfg.listeners {
        let _ = writeln!(out, "  listener {} (HTTP/1.1, h2c)", l.address);
    }
    match &cfg.admin {
        Some(a) => {
            let token = if a.token.is_some() {
                "token set"
            } else {
                "no token: state-changing endpoints refused"
            };
            let _ = writeln!(out, "  admin    {} ({token})", a.address);
        }
        None => {
            let _ = writeln!(out, "  admin    none");
        }
    }
    for s in &cfg.sites {
        let origins: Vec<&str> = s.origins.iter().map(|o| o.url.as_str()).collect();
        let _ = writeln!(
            out,
            "  site {:<12} hosts [{}] → origins [{}]{}",
            s.name,
            s.hosts.join(", "),
            origins.join(", "),
            if s.h2 { " (h2)" } else { "" }
        );
    }
    Ok(out)
}

/// `portcullis run`: serves until SIGTERM or SIGINT, then drains for at most `grace`.
pub async fn run(config: &Config, grace: Duration) -> Result<(), ServeError> {
    let proxy = Proxy::bind(config).await?;
    for addr in proxy.local_addrs() {
        tracing::info!(%addr, "listening");
    }
    if let Some(addr) = proxy.admin_addr() {
        tracing::info!(%addr, "admin listening");
    }
    proxy.run(shutdown_signal(), grace).await;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
