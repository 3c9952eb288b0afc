//! Listeners and connections: the accept loop with its connection cap (and protection's
//! deny list and per-client cap, checked before a byte is read), the hyper server builder
//! (HTTP/1.1 and h2c on one port; on TLS listeners HTTP/2 or HTTP/1.1 by ALPN), per-connection
//! timeouts and the graceful drain. The cap, the gauges, the idle watchdog and the drain cover a
//! TLS connection from its first byte, handshake included.
//!
//! [`Proxy::bind`] binds every socket first (so tests can bind port 0 and read the address back),
//! and [`Proxy::run`] serves until its shutdown future resolves, then stops accepting and gives
//! in-flight requests up to `grace` to finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::admin;
use crate::config::Config;
use crate::geo::Geo;
use crate::metrics::Metrics;
use crate::pipeline::Shared;
use crate::protection::Protection;
use crate::protection::reload::ConfigReloader;
use crate::route::SiteTable;
use crate::tls::{Tls, TlsSetupError};

mod connection;

use connection::serve_connection;

/// Errors that stop the proxy from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot bind {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the origins")]
    Site(#[source] crate::route::SiteError),
    #[error("cannot set up TLS")]
    Tls(#[source] TlsSetupError),
    #[error("cannot start enforcing legal orders")]
    Policy(#[source] crate::policy::StartError),
    #[error("cannot set up GeoIP")]
    Geo(#[source] crate::geo::GeoError),
}

/// What a listener serves.
#[derive(Debug, Clone)]
enum Mode {
    /// HTTP/1.1 and h2c; with `redirect_https`, the port requests are redirected to.
    Plain {
        redirect_https: Option<u16>,
    },
    Tls(Arc<Tls>),
}

/// A bound, not yet serving, proxy instance.
#[derive(Debug)]
pub struct Proxy {
    listeners: Vec<(TcpListener, Mode)>,
    admin: Option<TcpListener>,
    shared: Arc<Shared>,
    admin_state: Arc<admin::AdminState>,
    tls: Option<Arc<Tls>>,
    /// Started at bind, so a change made once the addresses are known is never missed.
    cert_watch: Option<portcullis_certs::WatchGuard>,
    /// Re-reads the config file (SIGHUP, admin); `None` when the config has no file.
    config_reload: Option<Arc<ConfigReloader>>,
    /// The etcd watch and report (`policy.source: etcd`), started by `run`.
    fleet: Option<Arc<crate::fleet::Fleet>>,
}

async fn bind(address: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| ServeError::Bind { address, source })
}

impl Proxy {
    /// Binds the listeners and the admin address of a validated config.
    pub async fn bind(config: &Config) -> Result<Proxy, ServeError> {
        let metrics = Metrics::new();
        // Fail closed: no listener is bound before the policy to enforce is loaded.
        let (policy, fleet) = match &config.policy {
            Some(p) => {
                let (rt, fleet) = crate::fleet::start(p, metrics.policy.clone())
                    .await
                    .map_err(ServeError::Policy)?;
                (Some(rt), fleet)
            }
            None => (None, None),
        };
        let geo = Arc::new(Geo::new(config.geoip.as_ref()).map_err(ServeError::Geo)?);
        let tls = match &config.tls {
            Some(t) => Some(Arc::new(
                Tls::new(t, &metrics.tls, policy.clone(), geo.clone()).map_err(ServeError::Tls)?,
            )),
            None => None,
        };
        let mut bound = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            bound.push((bind(l.address).await?, l));
        }
        // Redirects go to the first TLS listener's port as bound (port 0 in tests).
        let https_port = bound
            .iter()
            .find(|(_, l)| l.tls)
            .and_then(|(b, _)| b.local_addr().ok())
            .map(|a| a.port());
        let mut listeners = Vec::with_capacity(bound.len());
        for (listener, l) in bound {
            let mode = match (&tls, l.tls) {
                (Some(tls), true) => Mode::Tls(tls.clone()),
                _ => Mode::Plain {
                    redirect_https: https_port.filter(|_| l.redirect_https),
                },
            };
            listeners.push((listener, mode));
        }
        let admin = match &config.admin {
            Some(a) => Some(bind(a.address).await?),
            None => None,
        };
        // Without a watch (e.g. the inotify limit is reached) SIGHUP still reloads.
        let cert_watch = tls.as_ref().and_then(|t| match t.watch() {
            Ok(guard) => Some(guard),
            Err(e) => {
                tracing::error!(error = %e, "cannot watch the certificate directory; reload with SIGHUP");
                None
            }
        });
        let sites = SiteTable::new(&config.sites, &metrics).map_err(ServeError::Site)?;
        let cache = config.sites.iter().any(|s| s.cache).then(|| {
            Arc::new(crate::cache::Cache::new(
                config.cache.clone(),
                crate::cache::Clock::default(),
                metrics.cache.clone(),
            ))
        });
        if let (Some(cache), Some(policy)) = (&cache, &policy) {
            // A global suspension purges the host's stored responses (POLICY-SPEC.md, Cache).
            let cache = Arc::downgrade(cache);
            policy.on_sweep(crate::policy::SweepHook(Box::new(move |table, now| {
                if let Some(cache) = cache.upgrade() {
                    cache.purge_blocked(table, now);
                }
            })));
        }
        let protection = Arc::new(Protection::new(config, &metrics.protection));
        let config_reload = ConfigReloader::new(config, protection.clone()).map(Arc::new);
        let shared = Arc::new(Shared::new(
            sites,
            metrics,
            config.limits.clone(),
            config.logging.access_log,
            policy.clone(),
            geo,
            cache.clone(),
            protection,
        ));
        let admin_state = Arc::new(admin::AdminState {
            metrics: shared.metrics.clone(),
            policy,
            cache,
            config: config_reload.clone(),
            token: config.admin.as_ref().and_then(|a| a.token.clone()),
            draining: AtomicBool::new(false),
        });
        Ok(Proxy {
            listeners,
            admin,
            shared,
            admin_state,
            cert_watch,
            tls,
            config_reload,
            fleet,
        })
    }

    /// Re-reads the config file and applies what can change live (see
    /// [`crate::protection::reload`]); for SIGHUP.
    pub fn config_reloader(&self) -> Option<Arc<ConfigReloader>> {
        self.config_reload.clone()
    }

    /// The clock the cache reads; tests move it forward instead of sleeping. Without a cache
    /// (no site has `cache: true`) a clock nothing reads.
    pub fn cache_clock(&self) -> crate::cache::Clock {
        self.shared
            .cache
            .as_ref()
            .map(|c| c.clock().clone())
            .unwrap_or_default()
    }

    /// The bound addresses of the proxy listeners, in config order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// The bound addresses of the TLS listeners, in config order.
    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter(|(_, mode)| matches!(mode, Mode::Tls(_)))
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// TLS termination, when the config has TLS listeners: for reloading certificates on
    /// SIGHUP.
    pub fn tls(&self) -> Option<Arc<Tls>> {
        self.tls.clone()
    }

    /// The bound admin address, if the config has one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` resolves, then drains for at most `grace`.
    pub async fn run(self, shutdown: impl Future<Output = ()>, grace: Duration) {
        let Proxy {
            listeners,
            admin,
            shared,
            admin_state,
            // Listeners hold what the connections need; SIGHUP reloads go through `Proxy::tls`.
            tls: _,
            // Certificates follow their directory until the proxy stops.
            cert_watch: _cert_watch,
            // SIGHUP reloads go through `Proxy::config_reloader`; the admin state holds one too.
            config_reload: _,
            fleet,
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        if let Some(policy) = &shared.policy {
            policy.spawn_triggers(stop_rx.clone());
        }
        if let Some(fleet) = &fleet {
            fleet.spawn(stop_rx.clone());
        }
        let permits = Arc::new(Semaphore::new(shared.limits.max_connections));
        let builder = Arc::new(server_builder(&shared));
        let mut accept_tasks = Vec::new();
        for (listener, mode) in listeners {
            accept_tasks.push(tokio::spawn(accept_loop(
                listener,
                mode,
                shared.clone(),
                builder.clone(),
                permits.clone(),
                stop_rx.clone(),
            )));
        }
        if let Some(listener) = admin {
            tokio::spawn(admin::serve(listener, admin_state.clone(), stop_rx.clone()));
        }
        shutdown.await;
        tracing::info!("shutting down: no new connections; draining in-flight requests");
        admin_state.draining.store(true, Ordering::Relaxed);
        let _ = stop_tx.send(true);
        for t in accept_tasks {
            let _ = t.await;
        }
        // Every open connection holds a permit: all permits back means all connections done.
        let max = u32::try_from(shared.limits.max_connections).unwrap_or(u32::MAX);
        let open = shared.metrics.connections_active.get();
        match tokio::time::timeout(grace, permits.acquire_many(max)).await {
            Ok(_) => tracing::info!(connections = open, "drained"),
            Err(_) => tracing::warn!(
                grace_secs = grace.as_secs_f64(),
                "grace period over; cutting the remaining connections"
            ),
        }
    }
}

type Builder = hyper::server::conn::http2::Builder<TokioExecutor>;

/// HTTP/2 streams a client may reset before the server has accepted them, beyond which h2 sends
/// GOAWAY `ENHANCE_YOUR_CALM` (h2's own rapid-reset defence; hyper's default, made explicit).
const H2_PENDING_ACCEPT_RESETS: usize = 20;
/// Streams the server may reset because the client broke the protocol on them, before the
/// connection is closed with `ENHANCE_YOUR_CALM`.
const H2_LOCAL_ERROR_RESETS: usize = 100;

fn server_builder(shared: &Shared) -> Builder {
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(shared.limits.h2_max_concurrent_streams)
        // Also the bound on a CONTINUATION flood: h2 stops decoding a header block past it.
        .max_header_list_size(shared.limits.max_header_list_size)
        .max_pending_accept_reset_streams(H2_PENDING_ACCEPT_RESETS)
        .max_local_error_reset_streams(H2_LOCAL_ERROR_RESETS);
    b
}

/// Sets `TCP_NODELAY` on a listener, where accepted sockets inherit it (Linux does), so no
/// connection needs a `setsockopt` of its own; returns whether they do. Small responses must not
/// wait for Nagle.
fn listener_nodelay(listener: &TcpListener) -> bool {
    cfg!(target_os = "linux")
        && socket2::SockRef::from(listener)
            .set_tcp_nodelay(true)
            .is_ok()
}

async fn accept_loop(
    listener: TcpListener,
    mode: Mode,
    shared: Arc<Shared>,
    builder: Arc<Builder>,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let nodelay_each = !listener_nodelay(&listener);
    loop {
        // Take a connection slot before accepting: at the cap, new clients wait in the kernel
        // backlog instead of being accepted and starved.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        // Before the TLS handshake and before a byte is parsed: the cheapest refusal there is.
        let slot = match shared.protection.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(reason) => {
                shared.metrics.protection.unsited(reason);
                tracing::debug!(%peer, reason = reason.as_str(), "connection refused at accept");
                // An RST rather than a FIN: no TIME_WAIT kept here for an abusive client.
                let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                drop(stream);
                continue;
            }
        };
        let shared = shared.clone();
        let builder = builder.clone();
        let stop = stop.clone();
        let mode = mode.clone();
        tokio::spawn(async move {
            if nodelay_each {
                let _ = stream.set_nodelay(true);
            }
            serve_connection(stream, peer, mode, shared, &builder, stop).await;
            drop(slot);
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-connection `setsockopt` is skipped on the strength of this: a socket accepted
    /// from a listener with `TCP_NODELAY` has it too.
    #[tokio::test]
    async fn accepted_sockets_have_nodelay() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let inherited = listener_nodelay(&listener);
        assert_eq!(inherited, cfg!(target_os = "linux"));
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        if inherited {
            assert!(accepted.nodelay().unwrap(), "TCP_NODELAY not inherited");
        }
        drop(client);
    }
}
