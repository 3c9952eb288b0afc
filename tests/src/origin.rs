//! Test origins: a hyper 1 server on `127.0.0.1:0` running a handler closure, counting the TCP
//! connections it accepts and the requests it sees.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use portcullis_tests::Origin;
//! let origin = Origin::echo().named("a").start().await?;
//! // ... point a site at origin.url(), send traffic ...
//! assert_eq!(origin.connections(), 1);
//! # Ok(()) }
//! ```
//!
//! Canned handlers live in [`crate::canned`]; raw-socket misbehaviour (reset mid-body, closed
//! port) too, since hyper would not misbehave on purpose.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::body::TestBody;

/// The future a handler returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Response<TestBody>> + Send>>;

/// A request handler shared by every connection of an origin.
pub type Handler = Arc<dyn Fn(Request<Incoming>) -> HandlerFuture + Send + Sync>;

/// Builder for a test origin.
pub struct Origin {
    handler: Handler,
    h2c: bool,
    name: Option<HeaderValue>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Origin")
            .field("h2c", &self.h2c)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Origin {
    /// An origin answering every request with `handler`.
    pub fn new<F, Fut>(handler: F) -> Origin
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<TestBody>> + Send + 'static,
    {
        Origin {
            handler: Arc::new(move |req| Box::pin(handler(req))),
            h2c: false,
            name: None,
            tls: None,
        }
    }

    /// Serve HTTPS with the certificates in `certs_dir` (see [`crate::TestCerts`]); ALPN
    /// offers `h2` too when [`Origin::h2c`] is set.
    pub fn tls(mut self, certs_dir: &std::path::Path) -> anyhow::Result<Origin> {
        let store = portcullis_certs::CertStore::load(certs_dir, None)?;
        let alpn: &[&[u8]] = if self.h2c {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"http/1.1"]
        };
        self.tls = Some(portcullis_certs::server_config(&store, alpn)?);
        Ok(self)
    }

    /// Also accept HTTP/2 with prior knowledge (h2c) on the same port; HTTP/1.1 only otherwise.
    pub fn h2c(mut self) -> Origin {
        self.h2c = true;
        self
    }

    /// Adds `x-origin: <name>` to every response, so a test can tell origins apart.
    pub fn named(mut self, name: &'static str) -> Origin {
        self.name = Some(HeaderValue::from_static(name));
        self
    }

    /// Binds `127.0.0.1:0` and serves until the handle is dropped.
    pub async fn start(self) -> anyhow::Result<OriginHandle> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(Stats::default());
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(serve(listener, self, stats.clone()));
        Ok(OriginHandle {
            addr,
            scheme,
            stats,
            task,
        })
    }
}

/// Counters of one origin.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) connections: AtomicUsize,
    pub(crate) requests: AtomicUsize,
}

async fn serve(listener: TcpListener, origin: Origin, stats: Arc<Stats>) {
    let Origin {
        handler,
        h2c,
        name,
        tls,
    } = origin;
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        stats.connections.fetch_add(1, Ordering::SeqCst);
        let handler = handler.clone();
        let stats = stats.clone();
        let name = name.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                stats.requests.fetch_add(1, Ordering::SeqCst);
                let fut = handler(req);
                let name = name.clone();
                async move {
                    let mut resp = fut.await;
                    if let Some(n) = name {
                        resp.headers_mut().insert("x-origin", n);
                    }
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            if !h2c {
                builder = builder.http1_only();
            }
            // Errors here are the client (the proxy) going away, or a handshake the proxy
            // refused; the test sees them elsewhere.
            match acceptor {
                None => {
                    let _ = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                }
                Some(acceptor) => {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        let _ = builder
                            .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                            .await;
                    }
                }
            }
        });
    }
}

/// A running origin; stops serving (new connections and open ones) when dropped.
#[derive(Debug)]
pub struct OriginHandle {
    pub(crate) addr: SocketAddr,
    pub(crate) scheme: &'static str,
    pub(crate) stats: Arc<Stats>,
    pub(crate) task: JoinHandle<()>,
}

impl OriginHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` for a TLS origin), as a site's `origins` entry.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.stats.connections.load(Ordering::SeqCst)
    }

    /// Requests received so far (counted when the head arrives, before the handler runs).
    pub fn requests(&self) -> usize {
        self.stats.requests.load(Ordering::SeqCst)
    }
}

impl Drop for OriginHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}
