//! Clients that talk to the proxy the way users do: HTTP/1.1 ([`H1`]) and HTTP/2 with prior
//! knowledge ([`H2`]), each owning one connection so tests control reuse, plus a WebSocket
//! client ([`websocket`]).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::body::{self, TestBody};
use crate::canned::Echoed;

/// How long a client waits for response headers, and [`Reply::read`] for a whole body, before
/// failing: a hung proxy must fail the test, not hang the suite.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

async fn bounded<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| anyhow::anyhow!("{what}: nothing after {limit:?}"))?
}

async fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))
}

/// Connects from a chosen local address: any `127.x.y.z` works on Linux loopback, so tests
/// can be several clients of the proxy.
pub async fn connect_from(local: std::net::IpAddr, addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let socket = if local.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket
        .bind(SocketAddr::new(local, 0))
        .with_context(|| format!("binding {local}"))?;
    socket
        .connect(addr)
        .await
        .with_context(|| format!("connecting to {addr} from {local}"))
}

/// A request builder for `host` and `path` (origin-form target, `Host` header).
pub fn request(method: &str, host: &str, path: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, host)
}

/// `GET path` for `host`, without a body.
pub fn get(host: &str, path: &str) -> Request<TestBody> {
    request("GET", host, path)
        .body(body::empty())
        .unwrap_or_else(|e| panic!("bad test request {host} {path}: {e}"))
}

/// A response read to its end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// Reads a response body to its end (within [`DEFAULT_TIMEOUT`]).
    pub async fn read(resp: Response<Incoming>) -> anyhow::Result<Reply> {
        let (parts, incoming) = resp.into_parts();
        let body = bounded(DEFAULT_TIMEOUT, "reading the response body", async {
            Ok(incoming.collect().await?.to_bytes())
        })
        .await?;
        Ok(Reply {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body,
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of a header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as an echo origin's description of the request it received.
    pub fn echoed(&self) -> anyhow::Result<Echoed> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "not an echo answer (status {}): {}",
                self.status,
                self.text()
            )
        })
    }
}

/// One HTTP/1.1 client connection. Dropping it closes the connection once no response is
/// being read, so a response returned by [`H1::send`] stays readable.
#[derive(Debug)]
pub struct H1 {
    sender: http1::SendRequest<TestBody>,
    _conn: JoinHandle<()>,
    timeout: Duration,
}

impl H1 {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<H1> {
        H1::handshake(connect(addr).await?).await
    }

    /// A connection from `local` (see [`connect_from`]).
    pub async fn connect_from(local: std::net::IpAddr, addr: SocketAddr) -> anyhow::Result<H1> {
        H1::handshake(connect_from(local, addr).await?).await
    }

    /// HTTP/1.1 over an already connected stream (e.g. TLS, see [`crate::tls`]).
    pub async fn handshake<I>(io: I) -> anyhow::Result<H1>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, conn) = http1::handshake(TokioIo::new(io)).await?;
        let conn = tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(H1 {
            sender,
            _conn: conn,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// How long [`H1::send`] waits for response headers (default [`DEFAULT_TIMEOUT`]); the
    /// request body is sent meanwhile, so a huge upload needs more.
    pub fn timeout(mut self, limit: Duration) -> H1 {
        self.timeout = limit;
        self
    }

    /// Sends a request and returns the response with its body still streaming.
    pub async fn send(&mut self, req: Request<TestBody>) -> anyhow::Result<Response<Incoming>> {
        let sender = &mut self.sender;
        bounded(self.timeout, "waiting for response headers", async move {
            sender.ready().await.context("the connection is closed")?;
            Ok(sender.send_request(req).await?)
        })
        .await
    }

    /// Sends a request and reads the whole response.
    pub async fn request(&mut self, req: Request<TestBody>) -> anyhow::Result<Reply> {
        Reply::read(self.send(req).await?).await
    }

    /// Whether the server closed the connection.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

/// One HTTP/2 client connection with prior knowledge (h2c); closed once dropped and no stream
/// is open.
#[derive(Debug)]
pub struct H2 {
    sender: http2::SendRequest<TestBody>,
    _conn: JoinHandle<()>,
    scheme: &'static str,
}

impl H2 {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<H2> {
        H2::handshake(connect(addr).await?, "http").await
    }

    /// An h2c connection from `local` (see [`connect_from`]).
    pub async fn connect_from(local: std::net::IpAddr, addr: SocketAddr) -> anyhow::Result<H2> {
        H2::handshake(connect_from(local, addr).await?, "http").await
    }

    /// HTTP/2 over an already connected stream; `scheme` is `https` over TLS.
    pub async fn handshake<I>(io: I, scheme: &'static str) -> anyhow::Result<H2>
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, conn) = bounded(DEFAULT_TIMEOUT, "h2 handshake", async {
            Ok(http2::handshake(TokioExecutor::new(), TokioIo::new(io)).await?)
        })
        .await?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(H2 {
            sender,
            _conn: conn,
            scheme,
        })
    }

    /// Sends a request built with [`request`]: its `Host` header becomes the `:authority` of
    /// an absolute `http://` (or `https://`) target, as an HTTP/2 client sends it. Takes `&self`: streams are
    /// concurrent.
    pub async fn send(&self, req: Request<TestBody>) -> anyhow::Result<Response<Incoming>> {
        let (mut parts, body) = req.into_parts();
        if parts.uri.authority().is_none() {
            let host = parts
                .headers
                .remove(header::HOST)
                .context("an h2 test request needs a Host header to become :authority")?;
            let path = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            parts.uri = Uri::builder()
                .scheme(self.scheme)
                .authority(host.to_str()?)
                .path_and_query(path)
                .build()?;
        }
        parts.version = Version::HTTP_2;
        let mut sender = self.sender.clone();
        bounded(
            DEFAULT_TIMEOUT,
            "waiting for response headers",
            async move {
                sender.ready().await.context("the connection is closed")?;
                Ok(sender
                    .send_request(Request::from_parts(parts, body))
                    .await?)
            },
        )
        .await
    }

    pub async fn request(&self, req: Request<TestBody>) -> anyhow::Result<Reply> {
        Reply::read(self.send(req).await?).await
    }
}

/// `GET path` for `host` on a fresh HTTP/1.1 connection to `addr`.
pub async fn get_once(addr: SocketAddr, host: &str, path: &str) -> anyhow::Result<Reply> {
    H1::connect(addr).await?.request(get(host, path)).await
}

/// Opens a WebSocket through the proxy at `addr` to `ws://host/path`.
pub async fn websocket(
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> anyhow::Result<WebSocketStream<TcpStream>> {
    let stream = connect(addr).await?;
    let req = format!("ws://{host}{path}").into_client_request()?;
    let (ws, resp) = bounded(
        DEFAULT_TIMEOUT,
        "WebSocket handshake through the proxy",
        async { Ok(tokio_tungstenite::client_async(req, stream).await?) },
    )
    .await?;
    anyhow::ensure!(
        resp.status() == StatusCode::SWITCHING_PROTOCOLS,
        "handshake answered {}",
        resp.status()
    );
    Ok(ws)
}
