//! `portcullis demo`: a self-contained tour on loopback. It starts a small built-in origin that
//! echoes what it received, builds a config through the same validation as a real file, starts
//! the proxy, and prints what to try.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::config::{Config, ConfigErrors};
use crate::server::{Proxy, ServeError};

/// The demo's config; `{origin}`, `{listen}` and `{admin}` are filled in at start.
pub const DEMO_CONFIG: &str = r#"
listeners:
  - address: "{listen}"
admin:
  address: "{admin}"
limits:
  max_connections: 1000
  header_read_timeout: "10s"
  idle_timeout: "60s"
  max_request_body: "10MiB"
logging:
  access_log: true
sites:
  - name: shop
    hosts: ["shop.example", "www.shop.example"]
    origins: ["http://{origin}"]
    connect_timeout: "2s"
    response_timeout: "30s"
"#;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the demo origin")]
    Origin(#[source] std::io::Error),
    #[error("the demo config is invalid (a bug): {0}")]
    Config(ConfigErrors),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Builds the demo config for the given addresses.
pub fn demo_config(listen: &str, admin: &str, origin: SocketAddr) -> Result<Config, ConfigErrors> {
    let yaml = DEMO_CONFIG
        .replace("{listen}", listen)
        .replace("{admin}", admin)
        .replace("{origin}", &origin.to_string());
    Config::from_yaml(&yaml, Path::new("."))
}

/// Starts the built-in origin on a free loopback port.
pub async fn start_origin() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc =
                    service_fn(|req| async move { Ok::<_, std::convert::Infallible>(echo(&req)) });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn echo(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut text = format!(
        "Hello from the Portcullis demo origin.\n\nYou asked for: {} {}\nHeaders the origin received:\n",
        req.method(),
        req.uri()
    );
    for (k, v) in req.headers() {
        text.push_str(&format!("  {}: {}\n", k, v.to_str().unwrap_or("<binary>")));
    }
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Runs the demo until Ctrl-C.
pub async fn run() -> Result<(), DemoError> {
    let origin = start_origin().await.map_err(DemoError::Origin)?;
    // Friendly fixed ports when free, any free port otherwise.
    let proxy = match Proxy::bind(
        &demo_config("127.0.0.1:8080", "127.0.0.1:9901", origin).map_err(DemoError::Config)?,
    )
    .await
    {
        Ok(p) => p,
        Err(_) => {
            Proxy::bind(
                &demo_config("127.0.0.1:0", "127.0.0.1:0", origin).map_err(DemoError::Config)?,
            )
            .await?
        }
    };
    let listen = proxy.local_addrs().first().copied();
    let admin = proxy.admin_addr();
    if let (Some(listen), Some(admin)) = (listen, admin) {
        println!("{}", banner(listen, admin, origin));
    }
    proxy
        .run(crate::cli::shutdown_signal(), Duration::from_secs(5))
        .await;
    Ok(())
}

fn banner(listen: SocketAddr, admin: SocketAddr, origin: SocketAddr) -> String {
    format!(
        r#"
Portcullis demo is running.
  proxy   http://{listen}   (HTTP/1.1 and h2c)
  admin   http://{admin}   (/metrics, /healthz, /readyz)
  origin  http://{origin}   (built-in; echoes what it receives)

Try:
  curl -H 'Host: shop.example' http://{listen}/hello            # forwarded; see X-Forwarded-* and Via
  curl --http2-prior-knowledge -H 'Host: shop.example' http://{listen}/h2
  curl -i -H 'Host: unknown.example' http://{listen}/           # 421: no site for this host
  curl -i -H 'Host: bad host' http://{listen}/                  # 400: malformed host
  curl -s http://{admin}/metrics | grep portcullis_requests_total

Access log lines (JSON) follow below. Ctrl-C to stop.
"#
    )
}
