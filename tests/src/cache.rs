//! Pieces for HTTP cache tests: a [`ScriptedOrigin`] whose answers the test sets per path and
//! changes between requests, which records every request it gets; readers of `Cache-Status`
//! (RFC 9211) and `Age`; HTTP dates on the proxy's cache clock; and `POST /admin/purge`.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use portcullis_tests::cache::{Answer, CacheStatus, ScriptedOrigin};
//! use portcullis_tests::client::get_once;
//! use portcullis_tests::{Site, TestProxy};
//! let origin = ScriptedOrigin::start().await?;
//! let proxy = TestProxy::new()
//!     .site(Site::new("shop", "shop.example").origin(&origin.url()).set("cache", "true"))
//!     .start()
//!     .await?;
//! origin.follow(proxy.clock());
//! origin.on("/a", Answer::ok("v1").cache_control("max-age=60"));
//! let first = get_once(proxy.addr(), "shop.example", "/a").await?;
//! proxy.clock().advance(std::time::Duration::from_secs(10));
//! let second = get_once(proxy.addr(), "shop.example", "/a").await?;
//! assert!(CacheStatus::of(&second).is_some_and(|s| s.hit));
//! assert_eq!(origin.requests("/a"), 1);
//! # Ok(()) }
//! ```
//!
//! Every answer of a scripted origin carries `Connection: close`, so the proxy never keeps an
//! idle connection to it: once [`ScriptedOrigin::stop`] closes the listener, the next request
//! really finds the origin down (an already accepted keep-alive connection would go on being
//! served by its task).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use portcullis::cache::Clock;
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};

use crate::body::{self, BoxError, RepeatBody, TestBody};
use crate::client::{H1, Reply, request};
use crate::origin::{Origin, OriginHandle};

// ---------------------------------------------------------------------------------------------
// Dates

const IMF_FIXDATE: &str =
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT";

/// `t` as an HTTP date (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`), whole seconds.
pub fn http_date(t: SystemTime) -> String {
    let t = OffsetDateTime::from(t);
    let Ok(format) = time::format_description::parse(IMF_FIXDATE) else {
        unreachable!("the IMF-fixdate description is valid")
    };
    t.format(&format)
        .unwrap_or_else(|e| panic!("cannot format {t} as an HTTP date: {e}"))
}

/// Parses an IMF-fixdate HTTP date; `None` for anything else.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let format = time::format_description::parse(IMF_FIXDATE).ok()?;
    let t = time::PrimitiveDateTime::parse(s.trim(), &format).ok()?;
    Some(t.assume_utc().into())
}

// ---------------------------------------------------------------------------------------------
// Cache-Status and Age

/// The `portcullis` member of a response's `Cache-Status` (RFC 9211), its parameters read out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStatus {
    /// The member as received, e.g. `portcullis; hit; ttl=42`, for assertion messages.
    pub raw: String,
    pub hit: bool,
    /// `fwd=` (`uri-miss`, `vary-miss`, `request`, `stale`, `bypass`, ...).
    pub fwd: Option<String>,
    /// `fwd-status=`.
    pub fwd_status: Option<u16>,
    pub stored: bool,
    pub collapsed: bool,
    pub ttl: Option<i64>,
    pub detail: Option<String>,
}

/// The cache name the proxy writes in `Cache-Status`.
pub const CACHE_NAME: &str = "portcullis";

impl CacheStatus {
    /// The last `portcullis` member over every `Cache-Status` line of `headers` (the last
    /// member is the cache nearest the client); `None` when there is none.
    pub fn from_headers(headers: &HeaderMap) -> Option<CacheStatus> {
        headers
            .get_all("cache-status")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(CacheStatus::parse)
            .rfind(CacheStatus::is_ours)
    }

    /// [`CacheStatus::from_headers`] of a reply.
    pub fn of(reply: &Reply) -> Option<CacheStatus> {
        CacheStatus::from_headers(&reply.headers)
    }

    /// Like [`CacheStatus::of`], failing with the reply's status and headers when there is no
    /// `portcullis` member.
    pub fn require(reply: &Reply) -> anyhow::Result<CacheStatus> {
        CacheStatus::of(reply).with_context(|| {
            format!(
                "no `Cache-Status: {CACHE_NAME}; ...` on a {} reply; headers: {:?}",
                reply.status, reply.headers
            )
        })
    }

    /// Parses one list member: `name; key=value; flag`. Values may be quoted strings.
    pub fn parse(member: &str) -> Option<CacheStatus> {
        let member = member.trim();
        let mut parts = member.split(';').map(str::trim);
        let name = unquote(parts.next()?);
        if name.is_empty() {
            return None;
        }
        let mut s = CacheStatus {
            raw: member.to_owned(),
            ..CacheStatus::default()
        };
        if name != CACHE_NAME {
            // Kept only to be filtered out: `raw` says whose it was.
            s.raw = format!("{name}: {member}");
        }
        for p in parts.filter(|p| !p.is_empty()) {
            let (key, value) = match p.split_once('=') {
                Some((k, v)) => (k.trim(), Some(unquote(v.trim()))),
                None => (p, None),
            };
            match (key, value) {
                ("hit", None) => s.hit = true,
                ("stored", None) => s.stored = true,
                ("collapsed", None) => s.collapsed = true,
                ("fwd", Some(v)) => s.fwd = Some(v.to_owned()),
                ("fwd-status", Some(v)) => s.fwd_status = v.parse().ok(),
                ("ttl", Some(v)) => s.ttl = v.parse().ok(),
                ("detail", Some(v)) => s.detail = Some(v.to_owned()),
                _ => {}
            }
        }
        Some(s)
    }

    fn is_ours(&self) -> bool {
        self.raw.split(';').next().map(|n| unquote(n.trim())) == Some(CACHE_NAME)
    }

    /// `fwd=<v>`.
    pub fn fwd_is(&self, v: &str) -> bool {
        self.fwd.as_deref() == Some(v)
    }

    /// `detail=<v>`.
    pub fn detail_is(&self, v: &str) -> bool {
        self.detail.as_deref() == Some(v)
    }
}

fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

/// The `Age` header of a reply in seconds; `None` when absent or not a number.
pub fn age(reply: &Reply) -> Option<u64> {
    reply.header("age").and_then(|v| v.trim().parse().ok())
}

// ---------------------------------------------------------------------------------------------
// A latch

/// A latch the test opens to let a held answer (or the rest of a streamed body) go.
#[derive(Debug, Clone)]
pub struct Release {
    tx: Arc<watch::Sender<bool>>,
}

impl Release {
    pub fn new() -> Release {
        Release {
            tx: Arc::new(watch::channel(false).0),
        }
    }

    /// Lets everything held by this latch (now and later) through.
    pub fn open(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_open(&self) -> bool {
        *self.tx.borrow()
    }

    /// Waits until [`Release::open`].
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}

impl Default for Release {
    fn default() -> Self {
        Release::new()
    }
}

// ---------------------------------------------------------------------------------------------
// Answers

/// The body of an [`Answer`].
#[derive(Debug, Clone)]
enum Content {
    /// Known length (`Content-Length`).
    Full(Bytes),
    /// The same bytes sent in pieces without a length (chunked).
    Chunked(Vec<Bytes>),
    /// Generated bytes ([`RepeatBody`]), with or without a length.
    Generated {
        total: u64,
        chunk: usize,
        length: bool,
    },
    /// `first`, then (after the release) `rest` generated bytes.
    Streamed {
        first: Bytes,
        rest: u64,
        release: Release,
        length: bool,
        finished: Arc<AtomicBool>,
    },
}

/// What a scripted origin answers for one path: status, headers, body, an optional delay or
/// latch before the head, and whether it answers conditionals with 304.
#[derive(Debug, Clone)]
pub struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    content: Content,
    delay: Option<Duration>,
    hold: Option<Release>,
    conditional: bool,
}

impl Answer {
    /// 200 with `body` (and its `Content-Length`).
    pub fn ok(body: impl Into<Bytes>) -> Answer {
        Answer::status(200, body)
    }

    /// `code` with `body`.
    pub fn status(code: u16, body: impl Into<Bytes>) -> Answer {
        Answer {
            status: StatusCode::from_u16(code)
                .unwrap_or_else(|e| panic!("bad test status {code}: {e}")),
            headers: HeaderMap::new(),
            content: Content::Full(body.into()),
            delay: None,
            hold: None,
            conditional: false,
        }
    }

    /// Appends a header (a second call with the same name adds a second line). `Date` set here
    /// replaces the one the origin would write from the clock.
    pub fn header(mut self, name: &str, value: impl AsRef<str>) -> Answer {
        let name = HeaderName::try_from(name)
            .unwrap_or_else(|e| panic!("bad test header name {name:?}: {e}"));
        let value = HeaderValue::try_from(value.as_ref())
            .unwrap_or_else(|e| panic!("bad test header value {:?}: {e}", value.as_ref()));
        self.headers.append(name, value);
        self
    }

    /// Replaces every line of a header.
    pub fn set_header(mut self, name: &str, value: impl AsRef<str>) -> Answer {
        if let Ok(n) = HeaderName::try_from(name) {
            self.headers.remove(n);
        }
        self.header(name, value)
    }

    /// `Cache-Control: <v>`.
    pub fn cache_control(self, v: &str) -> Answer {
        self.header("cache-control", v)
    }

    /// `ETag: <v>` (give the quotes: `"\"v1\""`).
    pub fn etag(self, v: &str) -> Answer {
        self.header("etag", v)
    }

    /// `Last-Modified: <t>`.
    pub fn last_modified(self, t: SystemTime) -> Answer {
        self.header("last-modified", http_date(t))
    }

    /// `Date: <t>`, instead of the clock's now at answer time.
    pub fn date(self, t: SystemTime) -> Answer {
        self.set_header("date", http_date(t))
    }

    /// Waits `d` before sending the head.
    pub fn delay(mut self, d: Duration) -> Answer {
        self.delay = Some(d);
        self
    }

    /// Holds the head until `release` opens.
    pub fn hold_until(mut self, release: &Release) -> Answer {
        self.hold = Some(release.clone());
        self
    }

    /// Answers `304 Not Modified` (this answer's headers, no body) when the request's
    /// `If-None-Match` matches this answer's `ETag`, or, without `If-None-Match`, when its
    /// `If-Modified-Since` is not before this answer's `Last-Modified`.
    pub fn conditional(mut self) -> Answer {
        self.conditional = true;
        self
    }

    /// The same body sent without a length (HTTP/1.1 chunked), in three pieces.
    pub fn chunked(mut self) -> Answer {
        let all = match &self.content {
            Content::Full(b) => b.clone(),
            other => panic!("Answer::chunked needs a body given as bytes, not {other:?}"),
        };
        let third = all.len().div_ceil(3).max(1);
        let pieces = all.chunks(third).map(Bytes::copy_from_slice).collect();
        self.content = Content::Chunked(pieces);
        self
    }

    /// 200 with `total` generated bytes (`a..z` repeated) in pieces of `chunk`; with a
    /// `Content-Length` when `length`, chunked otherwise. See [`generated_bytes`].
    pub fn generated(total: u64, chunk: usize, length: bool) -> Answer {
        let mut a = Answer::ok(Bytes::new());
        a.content = Content::Generated {
            total,
            chunk,
            length,
        };
        a
    }

    /// 200 whose body is `first`, then nothing until `release` opens, then `rest` generated
    /// bytes; with a `Content-Length` of the whole when `length`. `finished` is set once the
    /// last byte is handed to the server.
    pub fn streamed(
        first: impl Into<Bytes>,
        release: &Release,
        rest: u64,
        length: bool,
        finished: &Arc<AtomicBool>,
    ) -> Answer {
        let mut a = Answer::ok(Bytes::new());
        a.content = Content::Streamed {
            first: first.into(),
            rest,
            release: release.clone(),
            length,
            finished: finished.clone(),
        };
        a
    }

    fn matches_conditional(&self, req: &HeaderMap) -> bool {
        if let Some(inm) = req.get(header::IF_NONE_MATCH) {
            let Some(etag) = self.headers.get(header::ETAG).and_then(|e| e.to_str().ok()) else {
                return false;
            };
            let weak = |t: &str| t.trim().trim_start_matches("W/").to_owned();
            return inm
                .to_str()
                .unwrap_or_default()
                .split(',')
                .any(|t| t.trim() == "*" || weak(t) == weak(etag));
        }
        let ims = req
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date);
        let lm = self
            .headers
            .get(header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date);
        matches!((ims, lm), (Some(ims), Some(lm)) if lm <= ims)
    }
}

/// The bytes [`Answer::generated`] sends: `a..z` repeated, restarting at every `chunk`.
pub fn generated_bytes(total: usize, chunk: usize) -> Vec<u8> {
    (0..total)
        .map(|i| b'a' + ((i % chunk.max(1)) % 26) as u8)
        .collect()
}

/// A body fed by a task through a channel, with or without an announced length.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
    length: Option<u64>,
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx
            .poll_recv(cx)
            .map(|next| next.map(|b| Ok(Frame::data(b))))
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

fn channel_body(length: Option<u64>) -> (mpsc::Sender<Bytes>, TestBody) {
    let (tx, rx) = mpsc::channel(4);
    let body = ChannelBody { rx, length };
    (tx, http_body_util::BodyExt::boxed(body))
}

impl Content {
    fn body(&self) -> TestBody {
        match self.clone() {
            Content::Full(b) => body::full(b),
            Content::Chunked(pieces) => {
                let (tx, body) = channel_body(None);
                tokio::spawn(async move {
                    for p in pieces {
                        if tx.send(p).await.is_err() {
                            return;
                        }
                    }
                });
                body
            }
            Content::Generated {
                total,
                chunk,
                length,
            } => {
                let b = RepeatBody::new(total, chunk);
                if length {
                    b.boxed()
                } else {
                    b.chunked().boxed()
                }
            }
            Content::Streamed {
                first,
                rest,
                release,
                length,
                finished,
            } => {
                let total = first.len() as u64 + rest;
                let (tx, body) = channel_body(length.then_some(total));
                tokio::spawn(async move {
                    if tx.send(first).await.is_err() {
                        return;
                    }
                    release.wait().await;
                    let piece = Bytes::from(generated_bytes(16 * 1024, 16 * 1024));
                    let mut left = rest;
                    while left > 0 {
                        let n = left.min(piece.len() as u64);
                        if tx.send(piece.slice(..n as usize)).await.is_err() {
                            return;
                        }
                        left -= n;
                    }
                    finished.store(true, Ordering::SeqCst);
                });
                body
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The scripted origin

/// A request as the scripted origin received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query, e.g. `/a?b=1`.
    pub target: String,
    /// The `Host` header (HTTP/1.1 towards the origin).
    pub host: Option<String>,
    pub headers: HeaderMap,
}

impl Seen {
    /// A header's first value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

type Decide = Arc<dyn Fn(&Seen) -> Answer + Send + Sync>;

#[derive(Clone)]
enum Rule {
    Fixed(Answer),
    Decide(Decide),
}

#[derive(Default)]
struct Script {
    rules: Mutex<HashMap<(Method, String), Rule>>,
    seen: Mutex<Vec<Seen>>,
    clock: Mutex<Option<Clock>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Script {
    fn now(&self) -> SystemTime {
        lock(&self.clock)
            .as_ref()
            .map_or_else(SystemTime::now, Clock::now)
    }

    fn rule(&self, method: &Method, target: &str) -> Option<Rule> {
        let rules = lock(&self.rules);
        rules
            .get(&(method.clone(), target.to_owned()))
            .or_else(|| {
                (method == Method::HEAD)
                    .then(|| rules.get(&(Method::GET, target.to_owned())))
                    .flatten()
            })
            .cloned()
    }

    async fn answer(self: Arc<Self>, req: Request<Incoming>) -> Response<TestBody> {
        let (parts, incoming) = req.into_parts();
        // Read (and drop) any request body, so every exchange ends cleanly.
        let _ = body::count(incoming).await;
        let target = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
        let seen = Seen {
            method: parts.method.clone(),
            target: target.clone(),
            host: parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned),
            headers: parts.headers.clone(),
        };
        lock(&self.seen).push(seen.clone());
        let answer = match self.rule(&parts.method, &target) {
            Some(Rule::Fixed(a)) => a,
            Some(Rule::Decide(f)) => f(&seen),
            None => Answer::status(500, format!("no script for {} {target}\n", parts.method))
                .cache_control("no-store"),
        };
        if let Some(d) = answer.delay {
            tokio::time::sleep(d).await;
        }
        if let Some(r) = &answer.hold {
            r.wait().await;
        }
        let not_modified = answer.conditional && answer.matches_conditional(&parts.headers);
        let mut resp = if not_modified {
            let mut r = Response::new(body::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            *r.headers_mut() = answer.headers.clone();
            r.headers_mut().remove(header::CONTENT_LENGTH);
            r
        } else {
            let mut r = Response::new(answer.content.body());
            *r.status_mut() = answer.status;
            *r.headers_mut() = answer.headers.clone();
            r
        };
        let h = resp.headers_mut();
        if !h.contains_key(header::DATE) {
            if let Ok(v) = HeaderValue::try_from(http_date(self.now())) {
                h.insert(header::DATE, v);
            }
        }
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        resp
    }
}

/// An origin answering what the test scripted per method and path, counting and recording
/// every request. See the module docs.
pub struct ScriptedOrigin {
    script: Arc<Script>,
    handle: Mutex<Option<OriginHandle>>,
    addr: SocketAddr,
}

impl std::fmt::Debug for ScriptedOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedOrigin")
            .field("addr", &self.addr)
            .field("requests", &self.total())
            .finish_non_exhaustive()
    }
}

impl ScriptedOrigin {
    /// Starts with no script: every request gets `500` with `Cache-Control: no-store` until a
    /// path is scripted.
    pub async fn start() -> anyhow::Result<ScriptedOrigin> {
        let script = Arc::new(Script::default());
        let s = script.clone();
        let handle = Origin::new(move |req| s.clone().answer(req))
            .start()
            .await?;
        Ok(ScriptedOrigin {
            script,
            addr: handle.addr(),
            handle: Mutex::new(Some(handle)),
        })
    }

    /// `http://127.0.0.1:PORT`, as a site's `origins` entry.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes `Date` from `clock` (the proxy's cache clock, see
    /// [`crate::RunningProxy::clock`]) instead of the system clock.
    pub fn follow(&self, clock: Clock) {
        *lock(&self.script.clock) = Some(clock);
    }

    /// Now on the origin's clock.
    pub fn now(&self) -> SystemTime {
        self.script.now()
    }

    /// What `GET path` (and `HEAD path`, unless scripted apart) answers from now on; `path`
    /// includes the query as the origin receives it.
    pub fn on(&self, path: &str, answer: Answer) {
        self.on_method("GET", path, answer);
    }

    /// What `method path` answers from now on.
    pub fn on_method(&self, method: &str, path: &str, answer: Answer) {
        self.set(method, path, Rule::Fixed(answer));
    }

    /// `GET path` is answered by `decide`, which sees the request.
    pub fn on_request<F>(&self, path: &str, decide: F)
    where
        F: Fn(&Seen) -> Answer + Send + Sync + 'static,
    {
        self.set("GET", path, Rule::Decide(Arc::new(decide)));
    }

    fn set(&self, method: &str, path: &str, rule: Rule) {
        let method = Method::from_bytes(method.as_bytes())
            .unwrap_or_else(|e| panic!("bad test method {method:?}: {e}"));
        lock(&self.script.rules).insert((method, path.to_owned()), rule);
    }

    /// Requests for `path` (path and query), any method.
    pub fn requests(&self, path: &str) -> usize {
        lock(&self.script.seen)
            .iter()
            .filter(|s| s.target == path)
            .count()
    }

    /// Requests `method path`.
    pub fn requests_with(&self, method: &str, path: &str) -> usize {
        lock(&self.script.seen)
            .iter()
            .filter(|s| s.target == path && s.method.as_str() == method)
            .count()
    }

    /// Every request so far.
    pub fn total(&self) -> usize {
        lock(&self.script.seen).len()
    }

    /// The requests for `path`, in arrival order.
    pub fn seen(&self, path: &str) -> Vec<Seen> {
        lock(&self.script.seen)
            .iter()
            .filter(|s| s.target == path)
            .cloned()
            .collect()
    }

    /// The latest request for `path`.
    pub fn last_seen(&self, path: &str) -> Option<Seen> {
        self.seen(path).pop()
    }

    /// Closes the listener: from now on connecting is refused (a dead origin). Answers already
    /// under way finish.
    pub fn stop(&self) {
        lock(&self.handle).take();
    }
}

// ---------------------------------------------------------------------------------------------
// Purge

/// `POST /admin/purge` with `body` (sent as JSON text) and `Authorization: Bearer {token}`
/// (none when `None`). Returns the status and the body text.
pub async fn purge(
    admin: SocketAddr,
    token: Option<&str>,
    body: &str,
) -> anyhow::Result<(StatusCode, String)> {
    let mut req =
        request("POST", "admin", "/admin/purge").header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let reply = H1::connect(admin)
        .await?
        .request(req.body(body::full(body.to_owned()))?)
        .await?;
    Ok((reply.status, reply.text()))
}

/// `POST /admin/purge` that must answer 200 `{"purged":N}`; returns N.
pub async fn purged(admin: SocketAddr, token: &str, body: &str) -> anyhow::Result<u64> {
    let (status, text) = purge(admin, Some(token), body).await?;
    anyhow::ensure!(
        status == StatusCode::OK,
        "purge {body} answered {status}: {text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("purge answered non-JSON: {text}"))?;
    json["purged"]
        .as_u64()
        .with_context(|| format!("purge answer without a count: {text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cache_status_members() -> anyhow::Result<()> {
        let s = CacheStatus::parse("portcullis; fwd=uri-miss; stored; ttl=60").context("parses")?;
        assert!(!s.hit && s.stored && s.fwd_is("uri-miss") && s.ttl == Some(60));
        let s = CacheStatus::parse("portcullis; hit; ttl=-5; detail=stale-while-revalidate")
            .context("parses")?;
        assert!(s.hit && s.ttl == Some(-5) && s.detail_is("stale-while-revalidate"));
        let s = CacheStatus::parse("\"portcullis\"; fwd=stale; fwd-status=503; detail=\"x y\"")
            .context("parses")?;
        assert!(s.fwd_is("stale") && s.fwd_status == Some(503) && s.detail_is("x y"));
        let mut h = HeaderMap::new();
        h.append("cache-status", HeaderValue::from_static("upstream; hit"));
        h.append(
            "cache-status",
            HeaderValue::from_static("other; fwd=miss, portcullis; hit; ttl=3"),
        );
        let s = CacheStatus::from_headers(&h).context("parses")?;
        assert!(s.hit && s.ttl == Some(3), "{s:?}");
        h.clear();
        h.append("cache-status", HeaderValue::from_static("upstream; hit"));
        assert_eq!(CacheStatus::from_headers(&h), None);
        Ok(())
    }

    #[test]
    fn http_dates_round_trip() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
    }

    #[test]
    fn conditionals_match_the_answer_validators() -> anyhow::Result<()> {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let a = Answer::ok("x").etag("\"v1\"").last_modified(t);
        let mut req = HeaderMap::new();
        req.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"v0\", W/\"v1\""),
        );
        assert!(a.matches_conditional(&req));
        req.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"v2\""));
        assert!(
            !a.matches_conditional(&req),
            "If-None-Match wins over If-Modified-Since"
        );
        req.clear();
        let ims = HeaderValue::try_from(http_date(t)).context("parses")?;
        req.insert(header::IF_MODIFIED_SINCE, ims);
        assert!(a.matches_conditional(&req));
        let before =
            HeaderValue::try_from(http_date(t - Duration::from_secs(1))).context("parses")?;
        req.insert(header::IF_MODIFIED_SINCE, before);
        assert!(!a.matches_conditional(&req));
        Ok(())
    }
}
