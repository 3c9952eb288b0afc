//! `portcullis demo`: a self-contained tour on loopback. It starts a small built-in origin that
//! echoes what it received, writes a dev CA and a certificate for the demo hosts into a temporary
//! folder (removed on exit), builds a config through the same validation as a real file, starts
//! the proxy (plain HTTP and HTTPS), and prints what to try.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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

/// The demo's config; `{origin}`, `{listen}`, `{tls_listen}`, `{certs}` and `{admin}` are
/// filled in at start.
pub const DEMO_CONFIG: &str = r#"
listeners:
  - address: "{listen}"
  - address: "{tls_listen}"
    tls: true
tls:
  certs_dir: "{certs}"
  default_cert: "shop.example"
  handshake_timeout: "10s"
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

/// The demo hosts: the certificate covers both.
const DEMO_HOSTS: [&str; 2] = ["shop.example", "www.shop.example"];

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the demo origin")]
    Origin(#[source] std::io::Error),
    #[error("cannot create a temporary folder for the demo certificate")]
    TempDir(#[source] std::io::Error),
    #[error("cannot generate the demo certificate")]
    Certs(#[source] portcullis_certs::GenerateError),
    #[error("the demo config is invalid (a bug): {0}")]
    Config(ConfigErrors),
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// The addresses the demo asks for.
#[derive(Debug, Clone, Copy)]
pub struct DemoAddrs<'a> {
    pub listen: &'a str,
    pub tls_listen: &'a str,
    pub admin: &'a str,
}

/// Builds the demo config for the given addresses and certificate folder.
pub fn demo_config(
    addrs: DemoAddrs<'_>,
    origin: SocketAddr,
    certs: &Path,
) -> Result<Config, ConfigErrors> {
    // YAML double-quoted string: escape what could end it.
    let certs = certs
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    let yaml = DEMO_CONFIG
        .replace("{listen}", addrs.listen)
        .replace("{tls_listen}", addrs.tls_listen)
        .replace("{admin}", addrs.admin)
        .replace("{certs}", &certs)
        .replace("{origin}", &origin.to_string());
    Config::from_yaml(&yaml, Path::new("."))
}

/// `preferred` when it can be bound now, else any free loopback port.
fn preferred_or_any(preferred: &'static str) -> &'static str {
    match std::net::TcpListener::bind(preferred) {
        Ok(_) => preferred,
        Err(_) => "127.0.0.1:0",
    }
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
    let certs = tempfile::Builder::new()
        .prefix("portcullis-demo-")
        .tempdir()
        .map_err(DemoError::TempDir)?;
    let hosts = DEMO_HOSTS.map(str::to_owned);
    let generated = portcullis_certs::generate(&hosts, certs.path()).map_err(DemoError::Certs)?;
    // Friendly fixed ports when free, any free port otherwise.
    let friendly = DemoAddrs {
        listen: preferred_or_any("127.0.0.1:8080"),
        tls_listen: preferred_or_any("127.0.0.1:8443"),
        admin: preferred_or_any("127.0.0.1:9901"),
    };
    let any = DemoAddrs {
        listen: "127.0.0.1:0",
        tls_listen: "127.0.0.1:0",
        admin: "127.0.0.1:0",
    };
    let config = |addrs| demo_config(addrs, origin, certs.path()).map_err(DemoError::Config);
    let proxy = match Proxy::bind(&config(friendly)?).await {
        Ok(p) => p,
        // Another process took a port between the probe and the bind.
        Err(_) => Proxy::bind(&config(any)?).await?,
    };
    let listen = proxy.local_addrs().first().copied();
    let tls = proxy.tls_addrs().first().copied();
    let admin = proxy.admin_addr();
    if let (Some(listen), Some(tls), Some(admin)) = (listen, tls, admin) {
        println!(
            "{}",
            banner(&Banner {
                listen,
                tls,
                admin,
                origin,
                ca: generated.ca_cert,
            })
        );
    }
    proxy
        .run(crate::cli::shutdown_signal(), Duration::from_secs(5))
        .await;
    // The certificate folder goes when `certs` drops, after the proxy has stopped.
    drop(certs);
    Ok(())
}

struct Banner {
    listen: SocketAddr,
    tls: SocketAddr,
    admin: SocketAddr,
    origin: SocketAddr,
    ca: PathBuf,
}

fn banner(b: &Banner) -> String {
    let Banner {
        listen,
        tls,
        admin,
        origin,
        ca,
    } = b;
    let ca = ca.display();
    let port = tls.port();
    let ip = tls.ip();
    format!(
        r#"
Portcullis demo is running.
  proxy   http://{listen}   (HTTP/1.1 and h2c)
  https   https://shop.example:{port}   (TLS 1.2/1.3, h2 or http/1.1; resolves to {ip}; CA {ca})
  admin   http://{admin}   (/metrics, /healthz, /readyz)
  origin  http://{origin}   (built-in; echoes what it receives)

Try:
  curl -H 'Host: shop.example' http://{listen}/hello            # forwarded; see X-Forwarded-* and Via
  curl --http2-prior-knowledge -H 'Host: shop.example' http://{listen}/h2
  curl -i -H 'Host: unknown.example' http://{listen}/           # 421: no site for this host
  curl -i -H 'Host: bad host' http://{listen}/                  # 400: malformed host
  curl --cacert {ca} --resolve shop.example:{port}:{ip} https://shop.example:{port}/tls
                                                # HTTPS with the demo's dev CA; X-Forwarded-Proto: https
  curl -sv --http2 --cacert {ca} --resolve shop.example:{port}:{ip} https://shop.example:{port}/ -o /dev/null 2>&1 | grep -E 'ALPN|HTTP/2'
  curl -s http://{admin}/metrics | grep -E 'portcullis_requests_total|portcullis_tls_'

Access log lines (JSON) follow below. Ctrl-C to stop.
"#
    )
}
