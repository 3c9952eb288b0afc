//! `portcullis demo`: a self-contained tour on loopback. It starts a small built-in origin that
//! echoes what it received, writes a dev CA and a certificate for the demo hosts and a sample
//! legal-order policy (one suspended host) into a temporary folder (removed on exit), builds a
//! config through the same validation as a real file, starts the proxy (plain HTTP and HTTPS),
//! and prints what to try: a served host next to a suspended one's 451 page, and a deliberately
//! small rate limit on `api.example` that answers 429 after a burst of 5.

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

/// The demo's config; `{origin}`, `{listen}`, `{tls_listen}`, `{certs}`, `{policy}`, `{state}`
/// and `{admin}` are filled in at start.
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
policy:
  file: "{policy}"
  state_dir: "{state}"
  close_grace: "5s"
cache:
  max_size: "64MiB"
  max_object_size: "4MiB"
protection:
  per_site:
    api: { requests_per_second: 2, burst: 5 }
sites:
  - name: shop
    hosts: ["shop.example", "www.shop.example"]
    origins: ["http://{origin}"]
    connect_timeout: "2s"
    response_timeout: "30s"
    cache: true
  - name: pirate
    hosts: ["pirate.example", "www.pirate.example"]
    origins: ["http://{origin}"]
  - name: api
    hosts: ["api.example"]
    origins: ["http://{origin}"]
"#;

/// The demo's legal orders: `pirate.example` (and its subdomains) is suspended by a court
/// order; a dry-run order watches `www.shop.example` without blocking it.
pub const DEMO_POLICY: &str = r#"serial: 2026112601
blocked_by: "https://edge.example.net/legal"
orders:
  - id: "US-SDNY-2026-CV-0142"
    authority: { name: "U.S. District Court for the Southern District of New York", type: court, jurisdiction: "US" }
    legal_basis: "17 U.S.C. 512(j)"
    reference: "1:26-cv-00142"
    issued_at: "2026-11-20T00:00:00Z"
    effective_from: "2026-11-21T00:00:00Z"
    expires_at: null
    notice_url: "https://lumendatabase.org/notices/00000001"
    disclosure: public
    mode: enforce
    scope:
      hosts:
        - { name: "pirate.example", include_subdomains: true }
    action: { type: unavailable_451 }
  - id: "DEMO-DRY-RUN-0001"
    authority: { name: "Demo Regulator", type: regulator, jurisdiction: "DE" }
    legal_basis: "Demo Act 1"
    reference: "demo-1"
    issued_at: "2026-11-20T00:00:00Z"
    effective_from: "2026-11-21T00:00:00Z"
    expires_at: null
    notice_url: "https://lumendatabase.org/notices/00000003"
    disclosure: public
    mode: dry_run
    scope:
      hosts: [{ name: "www.shop.example", include_subdomains: false }]
    action: { type: unavailable_451 }
"#;

/// The demo hosts: the certificate covers all of them.
const DEMO_HOSTS: [&str; 5] = [
    "shop.example",
    "www.shop.example",
    "pirate.example",
    "www.pirate.example",
    "api.example",
];

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot start the demo origin")]
    Origin(#[source] std::io::Error),
    #[error("cannot create a temporary folder for the demo certificate")]
    TempDir(#[source] std::io::Error),
    #[error("cannot write the demo policy")]
    Policy(#[source] std::io::Error),
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

/// Builds the demo config for the given addresses and folder (`certs/`, `policy.yaml` and
/// `state/` inside it).
pub fn demo_config(
    addrs: DemoAddrs<'_>,
    origin: SocketAddr,
    dir: &Path,
) -> Result<Config, ConfigErrors> {
    // YAML double-quoted string: escape what could end it.
    let quoted = |p: PathBuf| {
        p.display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
    };
    let yaml = DEMO_CONFIG
        .replace("{listen}", addrs.listen)
        .replace("{tls_listen}", addrs.tls_listen)
        .replace("{admin}", addrs.admin)
        .replace("{certs}", &quoted(dir.join("certs")))
        .replace("{policy}", &quoted(dir.join("policy.yaml")))
        .replace("{state}", &quoted(dir.join("state")))
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
    if let Some(name) = req.uri().path().strip_prefix("/static/") {
        // Cacheable for a minute: the second request is a hit (`Cache-Status`).
        let mut resp = Response::new(Full::new(Bytes::from(format!(
            "A static asset ({name}) from the Portcullis demo origin.\n"
        ))));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("public, max-age=60"),
        );
        h.insert(
            header::ETAG,
            header::HeaderValue::from_static("\"demo-v1\""),
        );
        return resp;
    }
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
    let dir = tempfile::Builder::new()
        .prefix("portcullis-demo-")
        .tempdir()
        .map_err(DemoError::TempDir)?;
    let hosts = DEMO_HOSTS.map(str::to_owned);
    let generated =
        portcullis_certs::generate(&hosts, &dir.path().join("certs")).map_err(DemoError::Certs)?;
    std::fs::write(dir.path().join("policy.yaml"), DEMO_POLICY).map_err(DemoError::Policy)?;
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
    let config = |addrs| demo_config(addrs, origin, dir.path()).map_err(DemoError::Config);
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
                policy: dir.path().join("policy.yaml"),
            })
        );
    }
    proxy
        .run(crate::cli::shutdown_signal(), Duration::from_secs(5))
        .await;
    // The folder goes when `dir` drops, after the proxy has stopped.
    drop(dir);
    Ok(())
}

struct Banner {
    listen: SocketAddr,
    tls: SocketAddr,
    admin: SocketAddr,
    origin: SocketAddr,
    ca: PathBuf,
    policy: PathBuf,
}

fn banner(b: &Banner) -> String {
    let Banner {
        listen,
        tls,
        admin,
        origin,
        ca,
        policy,
    } = b;
    let ca = ca.display();
    let policy = policy.display();
    let port = tls.port();
    let ip = tls.ip();
    format!(
        r#"
Portcullis demo is running.
  proxy   http://{listen}   (HTTP/1.1 and h2c)
  https   https://shop.example:{port}   (TLS 1.2/1.3, h2 or http/1.1; resolves to {ip}; CA {ca})
  admin   http://{admin}   (/metrics, /healthz, /readyz, /admin/policy)
  origin  http://{origin}   (built-in; echoes what it receives)
  policy  {policy}   (legal orders; edit it and raise serial: applied within a second)

Legal orders: pirate.example is suspended by a court order; shop.example is served.
  curl -i -H 'Host: shop.example' http://{listen}/              # 200 from the origin
  curl -i -H 'Host: pirate.example' http://{listen}/            # 451 with the order's page
  curl -s -H 'Host: www.pirate.example' -H 'Accept: application/problem+json' http://{listen}/
  curl -s http://{admin}/admin/policy                           # serial, orders and their state
  curl -s 'http://{admin}/admin/policy/explain?host=pirate.example&path=/'

Cache (shop.example has cache: true; /static/* is fresh for 60 s):
  curl -si -H 'Host: shop.example' http://{listen}/static/logo.txt | grep -iE 'cache-status|^age'
                                                # run it twice: fwd=uri-miss; stored, then hit

Attack protection: api.example allows 2 requests/s per client (burst 5); beyond, 429.
  for i in $(seq 8); do curl -s -o /dev/null -w '%{{http_code}} ' -H 'Host: api.example' http://{listen}/; done; echo
                                                # 200 200 200 200 200 429 429 429
  curl -s http://{admin}/metrics | grep portcullis_protection_rejected_total | grep -v ' 0$'

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
