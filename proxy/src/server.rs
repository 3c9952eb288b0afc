//! Listeners and connections: the accept loop with its connection cap, the hyper server builder
//! (HTTP/1.1 and h2c on one port), per-connection timeouts and the graceful drain.
//!
//! [`Proxy::bind`] binds every socket first (so tests can bind port 0 and read the address back),
//! and [`Proxy::run`] serves until its shutdown future resolves, then stops accepting and gives
//! in-flight requests up to `grace` to finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::admin;
use crate::config::Config;
use crate::conn::{ConnState, IdleIo, Rewind, watchdog};
use crate::h1;
use crate::h1::io::{ClientBody, ClientReader};
use crate::metrics::Metrics;
use crate::pipeline::{ConnCtx, Shared, handle};
use crate::route::SiteTable;
use bytes::BytesMut;
use http::Request;
use hyper::body::Incoming;

/// Errors that stop the proxy from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot bind {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Config accepts and validates `https://` origins, but this build cannot forward to them
    /// yet (it arrives with the origin pool rewrite): refuse to start rather than send the
    /// traffic in cleartext.
    #[error(
        "site {site}: origin {origin} is https://; forwarding to https origins is not implemented yet"
    )]
    OriginTlsUnsupported { site: String, origin: String },
}

/// A bound, not yet serving, proxy instance.
#[derive(Debug)]
pub struct Proxy {
    listeners: Vec<TcpListener>,
    admin: Option<TcpListener>,
    shared: Arc<Shared>,
    admin_state: Arc<admin::AdminState>,
}

async fn bind(address: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| ServeError::Bind { address, source })
}

impl Proxy {
    /// Binds the listeners and the admin address of a validated config.
    pub async fn bind(config: &Config) -> Result<Proxy, ServeError> {
        for site in &config.sites {
            if let Some(o) = site.origins.iter().find(|o| o.tls) {
                return Err(ServeError::OriginTlsUnsupported {
                    site: site.name.clone(),
                    origin: o.url.clone(),
                });
            }
        }
        let mut listeners = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            listeners.push(bind(l.address).await?);
        }
        let admin = match &config.admin {
            Some(a) => Some(bind(a.address).await?),
            None => None,
        };
        let metrics = Metrics::new();
        let sites = SiteTable::new(&config.sites, &metrics);
        let shared = Arc::new(Shared::new(
            sites,
            metrics,
            config.limits.clone(),
            config.logging.access_log,
        ));
        let admin_state = Arc::new(admin::AdminState {
            metrics: shared.metrics.clone(),
            token: config.admin.as_ref().and_then(|a| a.token.clone()),
            draining: AtomicBool::new(false),
        });
        Ok(Proxy {
            listeners,
            admin,
            shared,
            admin_state,
        })
    }

    /// The bound addresses of the proxy listeners, in config order.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
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
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let permits = Arc::new(Semaphore::new(shared.limits.max_connections));
        let builder = Arc::new(server_builder(&shared));
        let mut accept_tasks = Vec::new();
        for listener in listeners {
            accept_tasks.push(tokio::spawn(accept_loop(
                listener,
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

fn server_builder(shared: &Shared) -> Builder {
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(shared.limits.max_header_size).unwrap_or(u32::MAX));
    b
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    builder: Arc<Builder>,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
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
        let shared = shared.clone();
        let builder = builder.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, shared, &builder, stop).await;
            drop(permit);
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    builder: &Builder,
    stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    shared.metrics.connections_total.inc();
    let _active = ActiveConnection::new(&shared.metrics.connections_active);
    let state = ConnState::new();
    let idle = watchdog(state.clone(), shared.limits.idle_timeout);
    tokio::select! {
        () = serve_protocol(stream, peer, shared.clone(), state, builder, stop) => {}
        () = idle => tracing::debug!(%peer, "closing idle or slow connection"),
    }
}

/// Looks at the first bytes: the HTTP/2 preface goes to hyper's HTTP/2 server, anything else to
/// our HTTP/1.1 engine.
async fn serve_protocol(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    state: Arc<ConnState>,
    builder: &Builder,
    mut stop: watch::Receiver<bool>,
) {
    let ctx = Arc::new(ConnCtx {
        peer,
        state: state.clone(),
    });
    let header_timeout = shared.limits.header_read_timeout;
    let (read, write) = stream.into_split();
    let mut reader = ClientReader::new(Box::new(read), BytesMut::new(), state.clone());
    let sniffed = tokio::select! {
        s = sniff(&mut reader, header_timeout) => s,
        _ = stop.changed() => return,
    };
    match sniffed {
        Sniffed::Closed => {}
        Sniffed::H1 => {
            h1::serve::serve(
                reader,
                IdleIo::new(write, state, header_timeout),
                shared,
                ctx,
                stop,
            )
            .await
        }
        Sniffed::H2 => {
            let ClientReader { io, buf, .. } = reader;
            let io = Rewind::new(buf.freeze(), tokio::io::join(io, write));
            let io = TokioIo::new(IdleIo::new(io, state, header_timeout));
            let svc_shared = shared.clone();
            let service = service_fn(move |req: Request<Incoming>| {
                handle(svc_shared.clone(), ctx.clone(), req.map(ClientBody::H2))
            });
            let conn = builder.serve_connection(io, service);
            let mut conn = std::pin::pin!(conn);
            let mut draining = *stop.borrow();
            if draining {
                conn.as_mut().graceful_shutdown();
            }
            loop {
                tokio::select! {
                    res = conn.as_mut() => {
                        if let Err(e) = res {
                            tracing::debug!(%peer, error = %e, "h2 client connection ended with an error");
                        }
                        break;
                    }
                    r = stop.changed(), if !draining => {
                        // GOAWAY: finish the open streams, then close. A closed channel means
                        // the proxy is gone: drain as well.
                        let _ = r;
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum Sniffed {
    H1,
    H2,
    Closed,
}

/// Reads until the first bytes tell HTTP/1 from the HTTP/2 preface, within the head deadline.
async fn sniff(reader: &mut ClientReader, header_timeout: Duration) -> Sniffed {
    let read = async {
        loop {
            let n = reader.buf.len().min(H2_PREFACE.len());
            if reader.buf[..n] != H2_PREFACE[..n] {
                return Sniffed::H1;
            }
            if n == H2_PREFACE.len() {
                return Sniffed::H2;
            }
            match std::future::poll_fn(|cx| reader.poll_fill(cx, h1::io::HEAD_BUFFER)).await {
                Ok(0) | Err(_) => return Sniffed::Closed,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(header_timeout, read)
        .await
        .unwrap_or(Sniffed::Closed)
}

/// Keeps `portcullis_connections_active` right however a connection task ends.
struct ActiveConnection<'a>(&'a prometheus::IntGauge);

impl<'a> ActiveConnection<'a> {
    fn new(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        ActiveConnection(gauge)
    }
}

impl Drop for ActiveConnection<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
