//! The shared HTTP cache (RFC 9111) on the request path: what is asked before forwarding, and
//! how responses are stored on their way back.
//!
//! ```text
//!  request of a site with cache: true (legal orders already decided: pipeline.rs)
//!    ├─ not GET/HEAD, or a request body ─▶ forward around the cache (fwd=bypass);
//!    │    an unsafe method's 2xx/3xx invalidates the URL and same-host Location /
//!    │    Content-Location (RFC 9111 §4.4)
//!    ├─ lookup: primary key (canonical host, normalised target), then Vary values (store.rs)
//!    ├─ Range: a fresh stored 200 answers it (206 sharing the stored bytes, or 416);
//!    │    otherwise forwarded as it is (fwd=bypass), the partial response not stored
//!    ├─ stored and usable (rfc::reuse): Serve ─▶ from storage (Age, 304 for a matching
//!    │    client conditional, HEAD without body) │ ServeWhileRevalidate ─▶ stale now, one
//!    │    background refresh │ Validate ─▶ conditional request; 304 freshens the stored
//!    │    headers; 5xx or no answer within stale-if-error ─▶ stale
//!    └─ nothing usable: only-if-cached ─▶ 504; else coalesce: the first miss fetches
//!         (the leader), later ones wait for its fill, check the legal orders again and look
//!         up again; the leader's response is teed into storage as it streams (Tee) if
//!         rfc::storable and within max_object_size
//! ```
//!
//! Every response of a cache-enabled site carries `Cache-Status` (RFC 9211) and is counted in
//! `portcullis_cache_requests_total{site,result}`.

pub mod rfc;
pub mod store;

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use portcullis_policy::{CompiledPolicy, RequestFacts, Verdict};
use tokio::sync::watch;

use crate::body::{RequestBody, ResponseBody};
use crate::config::CacheConfig;
use crate::error::ProxyError;
use crate::forward::{ForwardInfo, forward, prepare_request};
use crate::h1::io::ClientBody;
use crate::metrics::{CacheMetrics, CacheResult};
use crate::route::Site;
use rfc::{NotStorable, RequestDirectives, Reuse, Timing, Vary};
use store::{Lookup, NewObject, Object, Store};

const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// How long a request waits for another request's fill of the same URL before fetching on its
/// own (nginx's `proxy_cache_lock_timeout` default).
const COALESCE_WAIT: Duration = Duration::from_secs(5);

/// The cache's clock: the system clock plus an offset that only tests move
/// ([`Clock::advance`]), so freshness can be tested without sleeping.
#[derive(Debug, Clone, Default)]
pub struct Clock(Arc<AtomicU64>);

impl Clock {
    pub fn now(&self) -> SystemTime {
        SystemTime::now() + Duration::from_millis(self.0.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every copy of it) forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::Relaxed);
    }
}

/// The shared cache of one proxy instance.
#[derive(Debug)]
pub struct Cache {
    store: Store,
    inflight: Inflight,
    /// Bytes the tees of responses being stored hold now; bounded by `max_size` too, so many
    /// large fills at once cannot take more memory than the cache may (a tee that cannot get
    /// its bytes lets its response stream on unstored).
    filling: AtomicU64,
    cfg: CacheConfig,
    clock: Clock,
    metrics: CacheMetrics,
}

/// The parts of the forwarding step the cache needs, owned so a background refresh can use
/// them after the client's request is answered.
#[derive(Debug, Clone)]
pub struct Fwd {
    pub client_ip: IpAddr,
    pub host: HeaderValue,
    pub request_id: HeaderValue,
    pub https: bool,
    pub trusted_peer: bool,
    pub max_request_body: Option<u64>,
    /// `limits.min_body_rate` with its grace period, as this request's settings had it.
    pub min_body_rate: Option<(u64, std::time::Duration)>,
}

impl Fwd {
    fn info(&self) -> ForwardInfo<'_> {
        ForwardInfo {
            client_ip: self.client_ip,
            host: &self.host,
            request_id: &self.request_id,
            https: self.https,
            trusted_peer: self.trusted_peer,
        }
    }
}

/// Re-decides the legal orders for a request that waited (coalesced) before it is served;
/// `Some` is the response that replaces it (451, 403, ...).
pub type Recheck<'a> = &'a (dyn Fn(&Request<ClientBody>) -> Option<Response<ResponseBody>> + Sync);

/// One request's way through the cache.
pub struct Exchange<'a> {
    pub site: &'a Arc<Site>,
    /// The canonical host.
    pub host: &'a str,
    pub fwd: Fwd,
    pub recheck: Recheck<'a>,
}

impl std::fmt::Debug for Exchange<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("site", &self.site.name)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

type Answer = (Response<ResponseBody>, Option<http::uri::Authority>);

/// Sends a request to the site's origins the way the pipeline does (headers rewritten, body
/// counted and limited).
async fn send(site: &Site, mut req: Request<ClientBody>, fwd: &Fwd) -> Result<Answer, ProxyError> {
    prepare_request(&mut req, &fwd.info(), false, site.h2)?;
    let counter = site.metrics.bytes_received.clone();
    let slow = &site.metrics.rejected[crate::metrics::Rejected::Slow as usize];
    let req = req.map(|b| {
        RequestBody::new(b, fwd.max_request_body, counter).min_rate(fwd.min_body_rate, slow)
    });
    let (resp, upstream) = forward(site, req, false).await?;
    Ok((resp, Some(upstream)))
}

/// The cache key's target: the normalised path (as forwarded and as legal orders match it)
/// and the query.
fn target_of<B>(req: &Request<B>) -> Cow<'_, str> {
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    match portcullis_policy::path::normalize_path(pq) {
        Ok(t) => t,
        Err(_) => Cow::Borrowed(pq),
    }
}

fn has_body<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(header::TRANSFER_ENCODING)
}

/// Counts a request of a cache-enabled site in `portcullis_cache_requests_total`.
fn count(site: &Site, result: CacheResult) {
    if let Some(c) = &site.cache {
        let i = CacheResult::ALL.iter().position(|r| *r == result);
        c[i.unwrap_or(0)].inc();
    }
}

/// Sets `Cache-Status` (RFC 9211).
pub fn set_status(resp: &mut Response<ResponseBody>, value: String) {
    if let Ok(v) = HeaderValue::try_from(value) {
        resp.headers_mut().insert(CACHE_STATUS, v);
    }
}

/// What a GET's `Range` asks of a stored 200 (RFC 9110 §14.2): one byte range, or a range
/// that cannot be satisfied. `None` serves the whole response: no `Range`, a unit other than
/// bytes, several ranges (a server may ignore `Range`), a syntax error, or an `If-Range` that
/// does not match the stored validator (§13.1.5: strong ETag comparison or the exact
/// `Last-Modified` date).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteRange {
    /// First and last byte, inclusive.
    Satisfiable(u64, u64),
    Unsatisfiable,
}

fn requested_range(req: &Request<ClientBody>, obj: &Object) -> Option<ByteRange> {
    if req.method() != Method::GET || obj.status != StatusCode::OK {
        return None;
    }
    let range = req.headers().get(header::RANGE)?.to_str().ok()?;
    if let Some(if_range) = req.headers().get(header::IF_RANGE) {
        let if_range = if_range.as_bytes();
        let validator = if if_range.starts_with(b"\"") {
            obj.headers.get(header::ETAG)
        } else {
            obj.headers.get(header::LAST_MODIFIED)
        };
        // Weak entity tags never match in If-Range (strong comparison).
        if validator.is_none_or(|v| v.as_bytes() != if_range) {
            return None;
        }
    }
    parse_range(range, obj.body.len() as u64)
}

/// Parses `bytes=first-last`, `bytes=first-` or `bytes=-suffix` against a body of `len` bytes.
fn parse_range(value: &str, len: u64) -> Option<ByteRange> {
    let (unit, spec) = value.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return None;
    }
    let (first, last) = spec.trim().split_once('-')?;
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (first, last) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let n = number(suffix)?;
            if n == 0 || len == 0 {
                return Some(ByteRange::Unsatisfiable);
            }
            (len.saturating_sub(n), len - 1)
        }
        (first, "") => (number(first)?, len.saturating_sub(1)),
        (first, last) => {
            let (f, l) = (number(first)?, number(last)?);
            if l < f {
                return None;
            }
            (f, l.min(len.saturating_sub(1)))
        }
    };
    if first >= len {
        return Some(ByteRange::Unsatisfiable);
    }
    Some(ByteRange::Satisfiable(first, last))
}

/// A 206 (one range of the stored body, shared, not copied) or a 416.
fn partial(obj: &Object, range: ByteRange) -> Response<ResponseBody> {
    let len = obj.body.len() as u64;
    let (status, body, content_range) = match range {
        ByteRange::Satisfiable(first, last) => (
            StatusCode::PARTIAL_CONTENT,
            ResponseBody::full(obj.body.slice(first as usize..=last as usize)),
            format!("bytes {first}-{last}/{len}"),
        ),
        ByteRange::Unsatisfiable => (
            StatusCode::RANGE_NOT_SATISFIABLE,
            ResponseBody::empty(),
            format!("bytes */{len}"),
        ),
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = obj.headers.clone();
    r.headers_mut().remove(header::CONTENT_LENGTH);
    if let Ok(v) = HeaderValue::try_from(content_range) {
        r.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    r
}

/// The conditional request headers a client may send (RFC 9110 §13.1).
const CONDITIONALS: [HeaderName; 5] = [
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_MATCH,
    header::IF_UNMODIFIED_SINCE,
    header::IF_RANGE,
];

/// What the cache learnt from a request before it is sent on.
struct Asked {
    method: Method,
    headers: HeaderMap,
    dirs: RequestDirectives,
    /// The cache key's target.
    target: String,
}

impl Cache {
    pub fn new(cfg: CacheConfig, clock: Clock, metrics: CacheMetrics) -> Cache {
        Cache {
            store: Store::new(cfg.max_size, metrics.clone()),
            inflight: Inflight::default(),
            filling: AtomicU64::new(0),
            cfg,
            clock,
            metrics,
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Answers a request of a cache-enabled site. An error (the origin failed, no stale copy
    /// may stand in) is counted as a miss; the caller answers it.
    pub async fn handle(
        self: &Arc<Self>,
        x: Exchange<'_>,
        req: Request<ClientBody>,
    ) -> Result<Answer, ProxyError> {
        let site = x.site.clone();
        let answer = self.answer(x, req).await;
        if answer.is_err() {
            count(&site, CacheResult::Miss);
        }
        answer
    }

    async fn answer(
        self: &Arc<Self>,
        x: Exchange<'_>,
        req: Request<ClientBody>,
    ) -> Result<Answer, ProxyError> {
        let method = req.method().clone();
        if !matches!(method, Method::GET | Method::HEAD) || has_body(&req) {
            return self.bypass(x, req).await;
        }
        // Borrowed from the request: a hit allocates no key.
        let target = target_of(&req);
        let dirs = rfc::request_directives(req.headers());
        let hash = self.store.hash(x.host, &target);
        let found = self.store.lookup(hash, x.host, &target, |names| {
            rfc::secondary_key(names, req.headers())
        });
        if method == Method::GET && req.headers().contains_key(header::RANGE) {
            // A Range request is answered from a fresh stored response; anything else goes
            // to the origin as it is, and its (partial) response is not stored.
            if let Lookup::Hit(obj) = &found {
                let now = self.clock.now();
                let age = obj.timing.current_age(now);
                if rfc::reuse(&dirs, &obj.dirs, age, obj.lifetime) == Reuse::Serve {
                    count(x.site, CacheResult::Hit);
                    let status = format!("portcullis; hit; ttl={}", obj.ttl(now));
                    return Ok((self.serve(&req, obj, now, status), None));
                }
            }
            return self.bypass(x, req).await;
        }
        let miss = match found {
            Lookup::Hit(obj) => return self.stored(x, req, dirs, hash, obj).await,
            Lookup::VaryMiss => "vary-miss",
            Lookup::Miss => "uri-miss",
        };
        let target = target.into_owned();
        if dirs.dirs.only_if_cached {
            return Ok((self.only_if_cached(&x, miss), None));
        }
        if method == Method::HEAD {
            // A HEAD response has no body to store; a stored GET would have answered it.
            let (mut resp, up) = send(x.site, req, &x.fwd).await?;
            set_status(&mut resp, format!("portcullis; fwd={miss}"));
            count(x.site, CacheResult::Miss);
            return Ok((resp, up));
        }
        let guard = match self.join(hash) {
            Join::Leader(guard) => Some(guard),
            Join::Waiter(mut done) => {
                let _ = tokio::time::timeout(COALESCE_WAIT, done.wait_for(|d| *d)).await;
                if let Some(blocked) = (x.recheck)(&req) {
                    return Ok((blocked, None));
                }
                let again = self.store.lookup(hash, x.host, &target, |names| {
                    rfc::secondary_key(names, req.headers())
                });
                if let Lookup::Hit(obj) = again {
                    let now = self.clock.now();
                    let age = obj.timing.current_age(now);
                    if rfc::reuse(&dirs, &obj.dirs, age, obj.lifetime) == Reuse::Serve {
                        self.metrics.coalesced.inc();
                        count(x.site, CacheResult::Hit);
                        let status =
                            format!("portcullis; fwd={miss}; collapsed; ttl={}", obj.ttl(now));
                        return Ok((self.serve(&req, &obj, now, status), None));
                    }
                }
                // Uncacheable, failed or too slow: this request fetches on its own.
                None
            }
        };
        self.fetch(x, req, dirs, hash, target, format!("fwd={miss}"), guard)
            .await
    }

    /// Forwards around the cache; an unsafe method's success invalidates (RFC 9111 §4.4).
    async fn bypass(
        &self,
        x: Exchange<'_>,
        req: Request<ClientBody>,
    ) -> Result<Answer, ProxyError> {
        let method = req.method().clone();
        let target = target_of(&req).into_owned();
        let (mut resp, up) = send(x.site, req, &x.fwd).await?;
        let status = resp.status();
        if rfc::is_unsafe(&method) && (status.is_success() || status.is_redirection()) {
            self.store.remove_url(x.host, &target);
            for t in rfc::invalidations(&method, status, x.host, &target, resp.headers()) {
                self.store.remove_url(x.host, &t);
            }
        }
        set_status(&mut resp, "portcullis; fwd=bypass".to_owned());
        count(x.site, CacheResult::Bypass);
        Ok((resp, up))
    }

    fn only_if_cached(&self, x: &Exchange<'_>, miss: &str) -> Response<ResponseBody> {
        let mut resp = Response::new(ResponseBody::empty());
        *resp.status_mut() = StatusCode::GATEWAY_TIMEOUT;
        set_status(
            &mut resp,
            format!("portcullis; fwd={miss}; detail=only-if-cached"),
        );
        count(x.site, CacheResult::Miss);
        resp
    }

    /// A stored response matched: serve it, serve it stale while refreshing, or validate it.
    async fn stored(
        self: &Arc<Self>,
        x: Exchange<'_>,
        req: Request<ClientBody>,
        dirs: RequestDirectives,
        hash: u64,
        obj: Arc<Object>,
    ) -> Result<Answer, ProxyError> {
        let now = self.clock.now();
        let age = obj.timing.current_age(now);
        let ttl = obj.ttl(now);
        match rfc::reuse(&dirs, &obj.dirs, age, obj.lifetime) {
            Reuse::Serve => {
                let result = if age > obj.lifetime {
                    CacheResult::Stale
                } else {
                    CacheResult::Hit
                };
                count(x.site, result);
                let status = format!("portcullis; hit; ttl={ttl}");
                Ok((self.serve(&req, &obj, now, status), None))
            }
            Reuse::ServeWhileRevalidate => {
                if !obj.refreshing.swap(true, Ordering::AcqRel) {
                    self.refresh_in_background(&x, &req, hash, obj.clone());
                }
                count(x.site, CacheResult::Stale);
                let status = format!("portcullis; hit; ttl={ttl}; detail=stale-while-revalidate");
                Ok((self.serve(&req, &obj, now, status), None))
            }
            Reuse::Validate => {
                if dirs.dirs.only_if_cached {
                    return Ok((self.only_if_cached(&x, "stale"), None));
                }
                let forced = age <= obj.lifetime;
                self.validate(x, req, dirs, hash, obj, forced).await
            }
        }
    }

    /// A response made from storage: 304 when the client's conditional matches, no body for
    /// HEAD, `Age` and `Cache-Status` set.
    fn serve(
        &self,
        req: &Request<ClientBody>,
        obj: &Object,
        now: SystemTime,
        status: String,
    ) -> Response<ResponseBody> {
        let age = obj.timing.current_age(now).as_secs();
        let mut resp = if rfc::not_modified(req.method(), req.headers(), &obj.headers) {
            let mut r = Response::new(ResponseBody::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            *r.headers_mut() = rfc::not_modified_headers(&obj.headers);
            r
        } else if let Some(range) = requested_range(req, obj) {
            partial(obj, range)
        } else {
            let body = if req.method() == Method::HEAD {
                ResponseBody::empty()
            } else {
                ResponseBody::full(obj.body.clone())
            };
            let mut r = Response::new(body);
            *r.status_mut() = obj.status;
            *r.headers_mut() = obj.headers.clone();
            r
        };
        let mut digits = itoa::Buffer::new();
        if let Ok(v) = HeaderValue::from_str(digits.format(age)) {
            resp.headers_mut().insert(header::AGE, v);
        }
        set_status(&mut resp, status);
        resp
    }

    /// Validates a stored response with the origin (RFC 9111 §4.3): a matching 304 freshens
    /// and serves it; a 5xx or no answer within stale-if-error serves it stale; anything else
    /// is a new response, stored if it may be.
    async fn validate(
        self: &Arc<Self>,
        x: Exchange<'_>,
        req: Request<ClientBody>,
        dirs: RequestDirectives,
        hash: u64,
        obj: Arc<Object>,
        forced: bool,
    ) -> Result<Answer, ProxyError> {
        let fwd = if forced { "request" } else { "stale" };
        let head = req.method() == Method::HEAD;
        let (parts, _) = req.into_parts();
        let client = Request::from_parts(parts.clone(), ClientBody::Empty);
        let mut out = Request::from_parts(parts, ClientBody::Empty);
        for name in CONDITIONALS {
            out.headers_mut().remove(name);
        }
        let conditional = !head && rfc::add_validators(&obj.headers, out.headers_mut());
        let asked = Asked {
            method: client.method().clone(),
            headers: client.headers().clone(),
            dirs,
            target: obj.target.to_string(),
        };
        let request_time = self.clock.now();
        let sent = send(x.site, out, &x.fwd).await;
        let now = self.clock.now();
        let staleness = obj.timing.current_age(now).saturating_sub(obj.lifetime);
        let stale_ok = !forced && rfc::stale_if_error(&asked.dirs, &obj.dirs, staleness);
        let (resp, up) = match sent {
            Ok(answer) => answer,
            Err(e) if stale_ok && e.upstream_kind().is_some() => {
                count(x.site, CacheResult::Stale);
                let status = format!(
                    "portcullis; fwd={fwd}; ttl={}; detail=stale-if-error",
                    obj.ttl(now)
                );
                return Ok((self.serve(&client, &obj, now, status), None));
            }
            Err(e) => return Err(e),
        };
        let code = resp.status();
        if code == StatusCode::NOT_MODIFIED
            && conditional
            && rfc::validates(&obj.headers, resp.headers())
        {
            let fresh = self.freshen(hash, &obj, request_time, now, resp.headers());
            count(x.site, CacheResult::Revalidated);
            let status = format!(
                "portcullis; fwd={fwd}; fwd-status=304; ttl={}",
                fresh.ttl(now)
            );
            return Ok((self.serve(&client, &fresh, now, status), up));
        }
        if head {
            // RFC 9111 §4.3.5: a HEAD response freshens the stored GET it validates.
            if code.is_success() && rfc::validates(&obj.headers, resp.headers()) {
                self.freshen(hash, &obj, request_time, now, resp.headers());
            }
        }
        if code.is_server_error() && stale_ok {
            count(x.site, CacheResult::Stale);
            let status = format!(
                "portcullis; fwd={fwd}; fwd-status={}; ttl={}; detail=stale-if-error",
                code.as_u16(),
                obj.ttl(now)
            );
            return Ok((self.serve(&client, &obj, now, status), None));
        }
        let label = format!("fwd={fwd}; fwd-status={}", code.as_u16());
        Ok(self.store_response(&x, &asked, hash, request_time, (resp, up), label, None))
    }

    /// Stores a validated copy of `obj` with its headers updated from `update` (a 304 or a
    /// HEAD response) and its age restarted.
    fn freshen(
        &self,
        hash: u64,
        obj: &Object,
        request_time: SystemTime,
        response_time: SystemTime,
        update: &HeaderMap,
    ) -> Arc<Object> {
        let mut headers = obj.headers.clone();
        rfc::freshen(&mut headers, update);
        let dirs = rfc::response_directives(&headers);
        let timing = Timing::new(request_time, response_time, update);
        let lifetime = rfc::freshness_lifetime(
            obj.status,
            &headers,
            &dirs,
            response_time,
            self.cfg.heuristic_fraction,
        );
        self.store.insert(
            hash,
            Object::new(NewObject {
                host: obj.host.clone(),
                target: obj.target.clone(),
                status: obj.status,
                headers,
                body: obj.body.clone(),
                timing,
                lifetime,
                dirs,
                vary: obj.vary.clone(),
                secondary: obj.secondary.clone(),
            }),
        )
    }

    /// Fetches a response for a miss and stores it as it streams.
    #[allow(clippy::too_many_arguments)]
    async fn fetch(
        self: &Arc<Self>,
        x: Exchange<'_>,
        req: Request<ClientBody>,
        dirs: RequestDirectives,
        hash: u64,
        target: String,
        label: String,
        guard: Option<FillGuard>,
    ) -> Result<Answer, ProxyError> {
        let asked = Asked {
            method: req.method().clone(),
            headers: req.headers().clone(),
            dirs,
            target,
        };
        let request_time = self.clock.now();
        let answer = send(x.site, req, &x.fwd).await?;
        Ok(self.store_response(&x, &asked, hash, request_time, answer, label, guard))
    }

    /// Tees a storable response into the store as it streams to the client; labels and
    /// counts it as a miss either way.
    #[allow(clippy::too_many_arguments)]
    fn store_response(
        self: &Arc<Self>,
        x: &Exchange<'_>,
        asked: &Asked,
        hash: u64,
        request_time: SystemTime,
        (mut resp, up): Answer,
        label: String,
        guard: Option<FillGuard>,
    ) -> Answer {
        count(x.site, CacheResult::Miss);
        match self.tee(x.host, asked, hash, request_time, &mut resp, guard) {
            Ok(lifetime) => set_status(
                &mut resp,
                format!("portcullis; {label}; stored; ttl={}", lifetime.as_secs()),
            ),
            Err(reason) => set_status(&mut resp, format!("portcullis; {label}; detail={reason}")),
        }
        (resp, up)
    }

    /// Attaches a [`Tee`] to a storable response's body; returns its freshness lifetime, or
    /// why it is not stored.
    fn tee(
        self: &Arc<Self>,
        host: &str,
        asked: &Asked,
        hash: u64,
        request_time: SystemTime,
        resp: &mut Response<ResponseBody>,
        guard: Option<FillGuard>,
    ) -> Result<Duration, &'static str> {
        let response_time = self.clock.now();
        let status = resp.status();
        let dirs = rfc::response_directives(resp.headers());
        if asked.dirs.dirs.no_store {
            return Err(NotStorable::NoStore.as_str());
        }
        rfc::storable(
            &asked.method,
            &asked.headers,
            &asked.dirs,
            status,
            resp.headers(),
            &dirs,
            self.cfg.heuristic_fraction,
        )
        .map_err(NotStorable::as_str)?;
        let length = http_body::Body::size_hint(resp.body()).exact();
        if length.is_some_and(|n| n > self.cfg.max_object_size) {
            return Err("too-large");
        }
        let lifetime = rfc::freshness_lifetime(
            status,
            resp.headers(),
            &dirs,
            response_time,
            self.cfg.heuristic_fraction,
        );
        let vary = match rfc::vary(resp.headers()) {
            Vary::Names(names) => names,
            Vary::None | Vary::Star => Vec::new(),
        };
        let secondary = rfc::secondary_key(&vary, &asked.headers);
        let mut headers = resp.headers().clone();
        rfc::strip_for_storage(&mut headers, &dirs);
        headers.remove(CACHE_STATUS);
        let object = NewObject {
            host: host.into(),
            target: asked.target.as_str().into(),
            status,
            headers,
            body: Bytes::new(),
            timing: Timing::new(request_time, response_time, resp.headers()),
            lifetime,
            dirs,
            vary,
            secondary,
        };
        let mut tee = Tee {
            cache: self.clone(),
            hash,
            object: Some(object),
            buf: BytesMut::new(),
            reserved: 0,
            limit: self.cfg.max_object_size,
            guard,
        };
        if let Some(n) = length {
            if !tee.reserve(n) {
                return Err("busy");
            }
            tee.buf.reserve(n as usize);
        }
        resp.body_mut().set_tee(Box::new(tee));
        Ok(lifetime)
    }

    /// Stale-while-revalidate: validates `obj` with the origin once, off the client's path.
    fn refresh_in_background(
        self: &Arc<Self>,
        x: &Exchange<'_>,
        req: &Request<ClientBody>,
        hash: u64,
        obj: Arc<Object>,
    ) {
        let mut out = Request::new(ClientBody::Empty);
        *out.uri_mut() = req.uri().clone();
        *out.version_mut() = req.version();
        *out.headers_mut() = req.headers().clone();
        for name in CONDITIONALS {
            out.headers_mut().remove(name);
        }
        let asked = Asked {
            method: Method::GET,
            headers: out.headers().clone(),
            dirs: RequestDirectives::default(),
            target: obj.target.to_string(),
        };
        let conditional = rfc::add_validators(&obj.headers, out.headers_mut());
        let cache = self.clone();
        let site = x.site.clone();
        let fwd = x.fwd.clone();
        let host: Box<str> = x.host.into();
        tokio::spawn(async move {
            let request_time = cache.clock.now();
            match send(&site, out, &fwd).await {
                Ok((resp, _)) if resp.status() == StatusCode::NOT_MODIFIED => {
                    if conditional && rfc::validates(&obj.headers, resp.headers()) {
                        let now = cache.clock.now();
                        cache.freshen(hash, &obj, request_time, now, resp.headers());
                    }
                }
                Ok((mut resp, _)) => {
                    if cache
                        .tee(&host, &asked, hash, request_time, &mut resp, None)
                        .is_ok()
                    {
                        // Read it through: the tee stores it at the end.
                        use http_body_util::BodyExt as _;
                        let mut body = resp.into_body();
                        while let Some(Ok(_)) = body.frame().await {}
                    }
                }
                Err(e) => {
                    tracing::debug!(site = %site.name, error = %e, "background refresh failed")
                }
            }
            obj.refreshing.store(false, Ordering::Release);
        });
    }

    /// `POST /admin/purge {"url": ...}`: every stored response of that URL.
    pub fn purge_url(&self, host: &str, target: &str) -> u64 {
        let target = match portcullis_policy::path::normalize_path(target) {
            Ok(t) => t,
            Err(_) => Cow::Borrowed(target),
        };
        self.store.remove_url(host, &target)
    }

    /// Every stored response of `host` (canonical).
    pub fn purge_host(&self, host: &str) -> u64 {
        self.store.remove_where(|o| &*o.host == host)
    }

    pub fn purge_all(&self) -> u64 {
        self.store.remove_where(|_| true)
    }

    /// Drops what a legal order now blocks for every country (a global suspension); objects
    /// blocked only in some countries stay for the others (POLICY-SPEC.md, Cache).
    pub fn purge_blocked(&self, table: &CompiledPolicy, now: SystemTime) -> u64 {
        if table.host_count() == 0 {
            return 0;
        }
        let n = self.store.remove_where(|o| {
            let facts = RequestFacts {
                host: &o.host,
                path: &o.target,
                country: None,
                sni: None,
                now,
            };
            matches!(
                table.decide(&facts).verdict,
                Verdict::Block { order, .. } if order.scope.countries.is_empty()
            )
        });
        if n > 0 {
            tracing::info!(objects = n, "cached responses of suspended hosts purged");
        }
        n
    }
}

/// Fills in progress, by primary-key hash: the first miss leads, later ones wait.
#[derive(Debug, Default)]
struct Inflight {
    shards: [Mutex<HashMap<u64, watch::Receiver<bool>>>; 16],
}

enum Join {
    Leader(FillGuard),
    Waiter(watch::Receiver<bool>),
}

impl Inflight {
    fn shard(&self, hash: u64) -> std::sync::MutexGuard<'_, HashMap<u64, watch::Receiver<bool>>> {
        self.shards[(hash & 15) as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl Cache {
    fn join(self: &Arc<Self>, hash: u64) -> Join {
        let mut map = self.inflight.shard(hash);
        if let Some(rx) = map.get(&hash) {
            if !*rx.borrow() && rx.has_changed().is_ok() {
                return Join::Waiter(rx.clone());
            }
        }
        let (tx, rx) = watch::channel(false);
        map.insert(hash, rx);
        Join::Leader(FillGuard {
            cache: self.clone(),
            hash,
            tx,
        })
    }
}

/// Held by the request fetching a URL for the others; dropping it (stored, uncacheable,
/// failed) wakes them.
#[derive(Debug)]
pub struct FillGuard {
    cache: Arc<Cache>,
    hash: u64,
    tx: watch::Sender<bool>,
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        let mut map = self.cache.inflight.shard(self.hash);
        if map
            .get(&self.hash)
            .is_some_and(|rx| rx.same_channel(&self.tx.subscribe()))
        {
            map.remove(&self.hash);
        }
        drop(map);
        let _ = self.tx.send(true);
    }
}

/// Collects a response body on its way to the client, up to `max_object_size`, and stores
/// the response when the last byte has passed. Dropped early (the client went away, the
/// origin broke off, the limit was passed), it stores nothing.
#[derive(Debug)]
pub struct Tee {
    cache: Arc<Cache>,
    hash: u64,
    object: Option<NewObject>,
    buf: BytesMut,
    /// Bytes of `Cache::filling` this tee holds.
    reserved: u64,
    limit: u64,
    guard: Option<FillGuard>,
}

impl Tee {
    /// Takes `total` bytes (all this tee will hold) from the fill budget; false when the
    /// response is too large or the budget is spent.
    fn reserve(&mut self, total: u64) -> bool {
        if total > self.limit {
            return false;
        }
        let more = total.saturating_sub(self.reserved);
        let budget = self.cache.cfg.max_size;
        let before = self.cache.filling.fetch_add(more, Ordering::Relaxed);
        if before + more > budget {
            self.cache.filling.fetch_sub(more, Ordering::Relaxed);
            return false;
        }
        self.reserved += more;
        true
    }

    /// Copies a chunk; `false` once the response is too large to store, or the fill budget is
    /// spent (drop the tee then).
    pub fn push(&mut self, data: &Bytes) -> bool {
        let total = (self.buf.len() + data.len()) as u64;
        if total > self.reserved && !self.reserve(total) {
            return false;
        }
        self.buf.extend_from_slice(data);
        true
    }

    /// The body is complete: store the response, wake the waiters.
    pub fn finish(mut self) {
        if let Some(mut object) = self.object.take() {
            let body = std::mem::take(&mut self.buf).freeze();
            let mut digits = itoa::Buffer::new();
            if let Ok(v) = HeaderValue::from_str(digits.format(body.len())) {
                object.headers.insert(header::CONTENT_LENGTH, v);
            }
            object.body = body;
            self.cache.store.insert(self.hash, Object::new(object));
        }
        drop(self.guard.take());
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        self.cache
            .filling
            .fetch_sub(self.reserved, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_rfc9110_14_1_2() {
        use ByteRange::{Satisfiable, Unsatisfiable};
        let len = 10;
        for (value, want) in [
            ("bytes=0-3", Some(Satisfiable(0, 3))),
            ("bytes=2-", Some(Satisfiable(2, 9))),
            ("bytes=-4", Some(Satisfiable(6, 9))),
            ("bytes=-40", Some(Satisfiable(0, 9))),
            ("bytes=5-99", Some(Satisfiable(5, 9))),
            ("Bytes = 1-1", Some(Satisfiable(1, 1))),
            ("bytes=10-", Some(Unsatisfiable)),
            ("bytes=12-14", Some(Unsatisfiable)),
            ("bytes=-0", Some(Unsatisfiable)),
            // Served whole: several ranges, other units, syntax errors, last < first.
            ("bytes=0-1,4-5", None),
            ("items=0-1", None),
            ("bytes=a-b", None),
            ("bytes=-", None),
            ("bytes=+1-2", None),
            ("bytes=4-2", None),
            ("bytes 0-1", None),
        ] {
            assert_eq!(parse_range(value, len), want, "{value}");
        }
        assert_eq!(parse_range("bytes=0-", 0), Some(Unsatisfiable));
    }
}
