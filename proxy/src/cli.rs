//! The commands behind `portcullis run`, `check`, `demo`, `certs`, `policy` and `audit`, kept
//! here so `main.rs` stays a thin shell and everything is testable. The policy and audit
//! commands live in `cli/policy.rs`, key generation and signing in `cli/sign.rs`, publishing to
//! etcd and the fleet view in `cli/fleet.rs`.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, ConfigErrors, PolicyConfig};
use crate::server::{Proxy, ServeError};
use crate::tls::Tls;

pub use crate::config::parse_duration;

mod fleet;
mod policy;
mod sign;

pub use fleet::{FleetCommandError, NodeRow, fleet_status, node_rows, policy_publish};
pub use policy::{
    ExplainRequest, PolicyCommandError, ReportFormat, audit_verify, load_bundle, load_policy,
    parse_time, policy_check, policy_explain, policy_report,
};
pub use sign::{SignError, keys_generate, policy_sign};

/// Where the running proxy keeps the last policy it loaded, inside `policy.state_dir` (see
/// [`PolicyConfig::state_dir`]).
const LAST_GOOD: &str = "policy.last-good.yaml";

/// What `portcullis check` found wrong.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The config file itself: every error, with file, line and key.
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    /// The config is valid but its policy file is missing or invalid.
    #[error("{error}{fallback}")]
    Policy {
        error: PolicyCommandError,
        /// What a running proxy would do instead (one line, newline-terminated).
        fallback: String,
    },
}

/// `portcullis check`: validates the config and everything it points at, the policy file
/// included. On success returns a human summary; on failure every error found.
pub fn check(path: &Path) -> Result<String, CheckError> {
    let cfg = Config::load(path)?;
    let policy = cfg.policy.as_ref().map(check_policy).transpose()?;
    let mut out = String::new();
    let _ = writeln!(out, "{}: OK", path.display());
    for l in &cfg.listeners {
        let kind = match (l.tls, l.redirect_https) {
            (true, _) => "TLS 1.2/1.3, ALPN h2 and http/1.1",
            (false, true) => "HTTP/1.1, h2c; redirects to https",
            (false, false) => "HTTP/1.1, h2c",
        };
        let _ = writeln!(out, "  listener {} ({kind})", l.address);
    }
    if let Some(tls) = &cfg.tls {
        // Validation already loaded the directory; list what it holds.
        let pairs = portcullis_certs::check_dir(&tls.certs_dir, tls.default_cert.as_deref())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  certs    {} ({} pair{}, default {}, handshake timeout {:?})",
            tls.certs_dir.display(),
            pairs.len(),
            if pairs.len() == 1 { "" } else { "s" },
            tls.default_cert.as_deref().unwrap_or("none"),
            tls.handshake_timeout
        );
        for p in pairs {
            let _ = writeln!(
                out,
                "    {:<16} [{}] expires {}",
                p.label,
                p.names.join(", "),
                u64::try_from(p.not_after).map_or_else(
                    |_| p.not_after.to_string(),
                    |secs| httpdate::fmt_http_date(
                        std::time::UNIX_EPOCH + Duration::from_secs(secs)
                    )
                )
            );
        }
    }
    if let (Some(p), Some(line)) = (&cfg.policy, policy) {
        match (&p.source, &p.file) {
            (crate::config::PolicySource::Etcd(e), _) => {
                let _ = writeln!(
                    out,
                    "  policy   etcd {} key {}, node {} ({line})",
                    e.endpoints.join(", "),
                    e.policy_key(),
                    p.node_id.as_deref().unwrap_or("-"),
                );
                let _ = writeln!(
                    out,
                    "    reports {}{} with a {:?} lease",
                    e.nodes_prefix(),
                    p.node_id.as_deref().unwrap_or("-"),
                    e.lease_ttl
                );
            }
            (_, Some(file)) => {
                let _ = writeln!(out, "  policy   {} {line}", file.display());
            }
            (_, None) => {}
        }
        let _ = writeln!(
            out,
            "    state_dir {} (last good copy, audit log), close_grace {:?}",
            p.state_dir.display(),
            p.close_grace
        );
        if !p.trusted_keys.is_empty() {
            let keys: Vec<String> = p
                .trusted_keys
                .iter()
                .map(|k| format!("{} ({})", k.id, k.path.display()))
                .collect();
            let _ = writeln!(
                out,
                "    signed bundles only, trusted keys {}",
                keys.join(", ")
            );
        }
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
    let p = &cfg.protection;
    if *p == crate::config::ProtectionConfig::default() {
        let _ = writeln!(out, "  protection off");
    } else {
        let rate = |r: &crate::config::RateLimit| {
            if r.requests_per_second == 0 {
                "no rate limit".to_owned()
            } else {
                format!("{} req/s (burst {})", r.requests_per_second, r.burst)
            }
        };
        let sites: Vec<String> = p
            .per_site
            .iter()
            .map(|(name, r)| format!("{name}: {}", rate(r)))
            .collect();
        let _ = writeln!(
            out,
            "  protection per client {}, {} connections; per site [{}]; deny {} block(s); shed at {}; up to {} clients tracked",
            rate(&p.per_client),
            if p.max_connections == 0 {
                "any".to_owned()
            } else {
                p.max_connections.to_string()
            },
            sites.join(", "),
            p.deny.len(),
            if p.shed_max_inflight == 0 {
                "off".to_owned()
            } else {
                format!("{} in flight", p.shed_max_inflight)
            },
            p.max_tracked_clients
        );
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
        if let Some(t) = &s.origin_tls {
            let _ = writeln!(
                out,
                "    origin_tls: ca {}, server name {}{}",
                t.ca_file
                    .as_ref()
                    .map_or("webpki roots".into(), |p| p.display().to_string()),
                t.server_name.as_deref().unwrap_or("from the URL"),
                if t.insecure_skip_verify {
                    ", CERTIFICATES NOT VERIFIED"
                } else {
                    ""
                }
            );
        }
        if s.origin_tls
            .as_ref()
            .is_some_and(|t| t.insecure_skip_verify)
        {
            let _ = writeln!(
                out,
                "    warning: origin certificates are NOT verified (origin_tls.insecure_skip_verify)"
            );
        }
    }
    Ok(out)
}

/// The policy file of a valid config: `serial N, K orders (A active)`, or what is wrong and
/// what a running proxy would do about it.
fn check_policy(p: &PolicyConfig) -> Result<String, CheckError> {
    let last_good = p.state_dir.join(LAST_GOOD);
    let Some(file) = &p.file else {
        // `check` never needs etcd to be up (CI checks every example without one): the
        // bundle is verified by the node when it arrives.
        return Ok(if last_good.is_file() {
            match load_bundle(&last_good, &p.trusted_keys) {
                Ok(policy) => format!(
                    "not contacted by check; last good copy {}: serial {}",
                    last_good.display(),
                    policy.serial
                ),
                Err(e) => format!(
                    "not contacted by check; the last good copy {} is unusable: {}",
                    last_good.display(),
                    e.to_string().trim_end()
                ),
            }
        } else {
            format!(
                "not contacted by check; no last good copy at {} yet: a node starting now needs etcd",
                last_good.display()
            )
        });
    };
    let fallback = if last_good.is_file() {
        format!(
            "  (a running proxy would keep its current table, or start from the last good copy {})\n",
            last_good.display()
        )
    } else {
        format!(
            "  (there is no last good copy at {}: a proxy starting now would refuse to serve)\n",
            last_good.display()
        )
    };
    let loaded = if p.trusted_keys.is_empty() {
        load_policy(file)
    } else {
        load_bundle(file, &p.trusted_keys)
    };
    let policy = loaded.map_err(|error| {
        let fallback = match &error {
            // The read error is one line; the parse errors end with a newline already.
            PolicyCommandError::Read { .. } => format!("\n{fallback}"),
            _ => fallback.clone(),
        };
        CheckError::Policy { error, fallback }
    })?;
    let summary = portcullis_policy::report::summary(&policy, time::OffsetDateTime::now_utc());
    let active = summary
        .states
        .get(&portcullis_policy::OrderState::Active)
        .copied()
        .unwrap_or(0);
    Ok(format!(
        "serial {}, {} order{} ({active} active)",
        summary.serial,
        summary.orders.len(),
        if summary.orders.len() == 1 { "" } else { "s" }
    ))
}

/// `portcullis certs generate`: writes a dev CA (or reuses the one in `out`) and a certificate
/// for `hosts`, and returns what was written and how to trust the CA.
pub fn certs_generate(
    hosts: &[String],
    out: &Path,
) -> Result<String, portcullis_certs::GenerateError> {
    let g = portcullis_certs::generate(hosts, out)?;
    let mut text = String::new();
    let _ = writeln!(text, "wrote certificate {}", g.cert.display());
    let _ = writeln!(text, "wrote key         {} (mode 0600)", g.key.display());
    let _ = writeln!(text, "  covering {}", hosts.join(", "));
    if g.ca_reused {
        let _ = writeln!(text, "signed by the existing CA {}", g.ca_cert.display());
    } else {
        let _ = writeln!(
            text,
            "created a dev CA  {} (its key {} stays private, mode 0600)",
            g.ca_cert.display(),
            g.ca_key.display()
        );
    }
    let ca = g.ca_cert.display();
    let host = hosts.first().map_or("HOST", String::as_str);
    let _ = write!(
        text,
        r#"
Serve it: set `tls: {{ certs_dir: "{out}" }}` and a listener with `tls: true`.
Trust the CA (development machines only; anyone with its key can impersonate any site to you):
  curl:          curl --cacert {ca} https://{host}/
  Debian/Ubuntu: sudo cp {ca} /usr/local/share/ca-certificates/portcullis-dev-ca.crt && sudo update-ca-certificates
  macOS:         sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {ca}
  Firefox:       Settings → Privacy & Security → Certificates → View Certificates → Authorities → Import
"#,
        out = out.display()
    );
    Ok(text)
}

/// `portcullis run`: serves until SIGTERM or SIGINT, then drains for at most `grace`.
pub async fn run(config: &Config, grace: Duration) -> Result<(), ServeError> {
    let proxy = Proxy::bind(config).await?;
    let tls_addrs = proxy.tls_addrs();
    for addr in proxy.local_addrs() {
        if tls_addrs.contains(&addr) {
            tracing::info!(%addr, "tls listening");
        } else {
            tracing::info!(%addr, "listening");
        }
    }
    if let Some(tls) = proxy.tls() {
        tokio::spawn(reload_on_sighup(tls));
    }
    if let Some(reloader) = proxy.config_reloader() {
        tokio::spawn(reload_config_on_sighup(reloader));
    }
    if let Some(addr) = proxy.admin_addr() {
        tracing::info!(%addr, "admin listening");
    }
    proxy.run(shutdown_signal(), grace).await;
    Ok(())
}

/// Reloads the certificates on every SIGHUP, for as long as the process runs.
async fn reload_on_sighup(tls: Arc<Tls>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; certificates reload on change only");
                return;
            }
        };
        while hangup.recv().await.is_some() {
            let tls = tls.clone();
            // Reading and parsing files blocks; keep it off the request workers.
            let _ = tokio::task::spawn_blocking(move || tls.reload()).await;
        }
    }
    #[cfg(not(unix))]
    let _ = tls;
}

/// Re-reads the config file on every SIGHUP and applies its live settings (see
/// [`crate::protection::reload`]); an invalid file is logged and changes nothing.
async fn reload_config_on_sighup(reloader: Arc<crate::protection::reload::ConfigReloader>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload the config with POST /admin/config/reload");
                return;
            }
        };
        while hangup.recv().await.is_some() {
            let reloader = reloader.clone();
            // The outcome is logged by `reload` itself.
            let _ = tokio::task::spawn_blocking(move || reloader.reload()).await;
        }
    }
    #[cfg(not(unix))]
    let _ = reloader;
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
