//! The request pipeline: the one place where the order of a request's steps is decided.
//!
//! ```text
//!  accept (server.rs): a denied peer, or one over per_client.max_connections (protection.rs)
//!    ─▶ closed with a reset, before TLS and before a byte is read
//!  connection (server.rs): plain ─▶ sniff h2c preface │ TLS (tls.rs) ─▶ ClientHello: SNI with
//!    no certificate and no default ─▶ alert unrecognized_name; handshake ─▶ ALPN h2 │ http/1.1
//!    │
//!  client request: HTTP/1.1 head parsed by h1/parse.rs, or an HTTP/2 stream from hyper
//!    │  (h1: malformed head ─▶ 400; head over max_header_size ─▶ 431; CL+TE, differing
//!    │   or invalid Content-Length ─▶ 400; a transfer coding other than chunked ─▶ 501;
//!    │   all answered by `refuse`, and the connection closes)
//!    │
//!    ├─ request id, in-flight count                       (conn.rs: idle / header timeouts)
//!    ├─ method check: CONNECT refused ─────────────────────────────────────────▶ 405
//!    ├─ canonical host (authority.rs): :authority │ absolute URI │ Host ──────▶ 400 if malformed
//!    ├─ site lookup (route.rs), then protection (protection.rs), before any policy, cache
//!    │    or origin work: in flight over shed.max_inflight_requests ─▶ 503 Retry-After: 1 │
//!    │    client (a trusted proxy's X-Forwarded-For, else the peer) on the deny list ─▶ 403 │
//!    │    client's token bucket (per_site override, else per_client) empty ─▶ 429 Retry-After
//!    ├─ client country (geo.rs): mmdb on the peer, or a trusted proxy's header (an
//!    │    untrusted peer's country header was removed before the host was read)
//!    ├─ legal orders (policy.rs, on this request's snapshot; a suspended host gets its
//!    │    order's action whatever the SNI or certificate): 451 page │ 403/404 │ 307 to the
//!    │    notice │ close: connection dropped │ SNI suspended, host not ─▶ 421 │ dry_run:
//!    │    counted, served  (refuse_tls orders already ended the TLS handshake: tls.rs)
//!    ├─ TLS only: host not covered by the connection's certificate ──────────▶ 421
//!    ├─ no site for the host ──────────────────────────────────────────────────▶ 421
//!    ├─ plain listener with redirect_https ─────────▶ 308 https://host[:port]/path?query
//!    ├─ framing: conflicting Content-Length ─▶ 400; over max_request_body ───────▶ 413;
//!    │    body slower than min_body_rate (after its grace) ─▶ 408
//!    ├─ site with cache: true ─▶ the cache (cache.rs: hit, stale, validate, coalesce,
//!    │    store as it streams) — it forwards through the same two steps below
//!    ├─ rewrite (forward.rs): hop-by-hop out, X-Forwarded-* (Proto https on TLS), Via,
//!    │    X-Request-Id
//!    ├─ forward (forward.rs, upstream.rs): pick origin (round robin, passive health),
//!    │    pooled connection, retry once on connect failure ─▶ 502 / 504 on failure
//!    ▼
//!  response streams back; its body carries the Completion (complete.rs), which records
//!  metrics and the access log line when the last byte is sent or the exchange is cut.
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, header};
use portcullis_policy::{RequestFacts, Verdict, page};

use crate::authority::request_host;
use crate::body::{RequestBody, ResponseBody};
use crate::complete::{AccessLog, Completion};
use crate::config::Limits;
use crate::conn::ConnState;
use crate::error::ProxyError;
use crate::forward::{ForwardInfo, forward, prepare_request, wants_upgrade};
use crate::geo::Geo;
use crate::h1::io::ClientBody;
use crate::metrics::{Metrics, NO_SITE, Rejected, SiteMetrics};
use crate::policy::{PolicyRuntime, cut};
use crate::protection::{Protection, Refusal};
use crate::route::{Site, SiteTable};
use crate::tls::TlsInfo;

/// State shared by every connection of one proxy instance.
#[derive(Debug)]
pub struct Shared {
    pub sites: SiteTable,
    pub metrics: Metrics,
    pub limits: Limits,
    pub access_log: bool,
    /// Legal orders, when the config has a `policy:` section.
    pub policy: Option<Arc<PolicyRuntime>>,
    pub geo: Arc<Geo>,
    /// The shared cache, when a site has `cache: true`.
    pub cache: Option<Arc<crate::cache::Cache>>,
    /// Rate limits, connection caps, deny list, shedding.
    pub protection: Arc<Protection>,
    no_site: Arc<SiteMetrics>,
    no_site_name: Arc<str>,
    ids: RequestIds,
}

impl Shared {
    // One argument per shared part; a parts struct would only restate the fields.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sites: SiteTable,
        metrics: Metrics,
        limits: Limits,
        access_log: bool,
        policy: Option<Arc<PolicyRuntime>>,
        geo: Arc<Geo>,
        cache: Option<Arc<crate::cache::Cache>>,
        protection: Arc<Protection>,
    ) -> Shared {
        Shared {
            protection,
            policy,
            geo,
            cache,
            no_site: Arc::new(metrics.site(NO_SITE)),
            no_site_name: Arc::from(NO_SITE),
            sites,
            metrics,
            limits,
            access_log,
            ids: RequestIds::new(),
        }
    }
}

/// Request ids: a per-process random prefix and a counter, as 16 hex digits.
#[derive(Debug)]
struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        // splitmix64 of time and pid: distinct across restarts and across a fleet.
        let mut z = t ^ (u64::from(std::process::id()) << 32);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        RequestIds {
            prefix: (z ^ (z >> 31)) as u32,
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let v = (u64::from(self.prefix) << 32) | (n & 0xffff_ffff);
        let mut buf = [0u8; 16];
        for (i, b) in buf.iter_mut().enumerate() {
            let nibble = (v >> (60 - 4 * i)) & 0xf;
            *b = b"0123456789abcdef"[nibble as usize];
        }
        HeaderValue::from_bytes(&buf).unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
}

/// One client connection's view, shared by its requests.
#[derive(Debug)]
pub struct ConnCtx {
    pub peer: SocketAddr,
    pub state: Arc<ConnState>,
    /// The TLS facts (certificate, ALPN, version) on a TLS listener; `None` on plain ones.
    pub tls: Option<TlsInfo>,
    /// On a plain listener with `redirect_https`: the port of the first TLS listener, where
    /// every request for a known site is sent with a 308.
    pub redirect_https: Option<u16>,
}

/// Handles one request. Never fails: every error becomes a response here.
pub async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnCtx>,
    req: Request<ClientBody>,
) -> Result<Response<ResponseBody>, std::convert::Infallible> {
    let start = Instant::now();
    let (in_flight, in_flight_before) = conn.state.request_started();
    let request_id = shared.ids.next();
    let mut log = shared.access_log.then(|| {
        Box::new(AccessLog {
            request_id: request_id.clone(),
            client: conn.peer,
            method: req.method().clone(),
            host: String::new(),
            path: req.uri().path().to_owned(),
            status: 0,
            upstream: None,
            site: shared.no_site_name.clone(),
        })
    });
    let mut site_metrics = shared.no_site.clone();
    let result = route_and_forward(
        &shared,
        &conn,
        req,
        &request_id,
        &mut log,
        &mut site_metrics,
        in_flight_before,
    )
    .await;
    let mut resp = match result {
        Ok((resp, upstream)) => {
            if let Some(l) = log.as_mut() {
                l.upstream = upstream;
            }
            resp
        }
        Err(e) => answer_error(&e, &request_id),
    };
    site_metrics.count_status(resp.status());
    if let Some(l) = log.as_mut() {
        l.status = resp.status().as_u16();
    }
    let completion = Completion::new(site_metrics, in_flight, start, log);
    resp.body_mut().set_completion(completion);
    Ok(resp)
}

/// Logs a request's error by who is at fault, and answers it.
fn answer_error(e: &ProxyError, request_id: &HeaderValue) -> Response<ResponseBody> {
    match e.source_side() {
        crate::error::ErrorSource::Downstream => {
            tracing::debug!(request_id = ?request_id, error = %e, "request refused")
        }
        _ => {
            tracing::warn!(request_id = ?request_id, error = %crate::error::Chain(e), "request failed")
        }
    }
    e.to_response(request_id)
}

/// Answers a request refused before it could enter the pipeline (a malformed HTTP/1.1 head),
/// counted under the no-site label.
pub fn refuse(shared: &Shared, conn: &ConnCtx, err: ProxyError) -> Response<ResponseBody> {
    let request_id = shared.ids.next();
    tracing::debug!(request_id = ?request_id, client = %conn.peer, error = %err, "request refused");
    let resp = err.to_response(&request_id);
    shared.no_site.count_status(resp.status());
    resp
}

async fn route_and_forward(
    shared: &Shared,
    conn: &ConnCtx,
    mut req: Request<ClientBody>,
    request_id: &HeaderValue,
    log: &mut Option<Box<AccessLog>>,
    site_metrics: &mut Arc<SiteMetrics>,
    in_flight_before: usize,
) -> Result<(Response<ResponseBody>, Option<http::uri::Authority>), ProxyError> {
    if req.method() == Method::CONNECT {
        return Err(ProxyError::MethodNotAllowed);
    }
    // A country header from anyone but a trusted proxy is removed now; the country itself
    // (a database lookup) is decided after the protection checks.
    shared
        .geo
        .strip_untrusted(conn.peer.ip(), req.headers_mut());
    let country;
    type Routed = (
        Arc<Site>,
        HeaderValue,
        Option<HeaderValue>,
        Option<(u64, cut::Facts)>,
        // The canonical host, kept for the cache key on cache-enabled sites.
        Option<Box<str>>,
    );
    let min_body_rate;
    let (site, raw_host, redirect, exchange, cache_host): Routed = {
        let host = request_host(&req)?;
        if let Some(l) = log.as_mut() {
            l.host = host.canonical.clone().into_owned();
        }
        let site = shared.sites.lookup(&host.canonical);
        if let Some(site) = site {
            *site_metrics = site.metrics.clone();
            if let Some(l) = log.as_mut() {
                l.site = site.name.clone();
            }
        }
        // Protection: before the legal orders, the cache and the origin, so a flood costs
        // this and nothing more.
        {
            let live = shared.protection.live();
            let refused =
                if live.shed_max_inflight > 0 && in_flight_before >= live.shed_max_inflight {
                    Some(Refusal::Shed)
                } else {
                    shared
                        .protection
                        .check_request(&live, conn.peer.ip(), req.headers(), site.map(|s| &*s.name))
                        .err()
                };
            if let Some(refusal) = refused {
                site_metrics.count_rejected(refusal.reason());
                return Ok((refusal.response(request_id), None));
            }
            min_body_rate = live.min_body_rate;
        }
        // The client's country (GeoIP on the peer, or a trusted proxy's header; the header and
        // X-Forwarded-For of anyone else are not believed).
        country = shared.geo.country_of(conn.peer.ip(), req.headers());
        // Legal orders: a suspended authority gets its order's action whatever the SNI or the
        // certificate (domain fronting), before the redirect and before any cache; the origin
        // is never contacted for a blocked request.
        let exchange = match &shared.policy {
            Some(policy) => {
                let facts = Ask {
                    host: &host.canonical,
                    country,
                    request_id,
                };
                match decide(policy, conn, &req, facts) {
                    Decided::Allow(facts) => Some(facts),
                    Decided::Blocked(resp) => return Ok((*resp, None)),
                    Decided::Refused(e) => return Err(e),
                }
            }
            None => None,
        };
        // RFC 9110 §7.4 / RFC 6066 §3: names on one certificate may share a connection
        // (coalescing); a name the certificate does not cover was sent to the wrong server.
        if let Some(tls) = &conn.tls {
            if !tls.cert.covers(&host.canonical) {
                return Err(ProxyError::MisdirectedForCertificate);
            }
        }
        let site = site.ok_or(ProxyError::UnknownHost)?;
        let redirect = conn
            .redirect_https
            .map(|port| https_location(&host.canonical, port, req.uri()))
            .transpose()?;
        let cache_host = site.cache.as_ref().map(|_| Box::from(&*host.canonical));
        (
            site.clone(),
            host.raw_value()?,
            redirect,
            exchange,
            cache_host,
        )
    };
    if let Some(location) = redirect {
        return Ok((redirect_response(location), None));
    }
    check_framing(&req, shared.limits.max_request_body)?;
    let upgrade = wants_upgrade(&req);
    if let (Some(cache), Some(host), false) = (&shared.cache, &cache_host, upgrade) {
        let recheck = |r: &Request<ClientBody>| {
            let policy = shared.policy.as_ref()?;
            let ask = Ask {
                host,
                country,
                request_id,
            };
            match decide(policy, conn, r, ask) {
                Decided::Allow(_) => None,
                Decided::Blocked(resp) => Some(*resp),
                Decided::Refused(e) => Some(e.to_response(request_id)),
            }
        };
        let x = crate::cache::Exchange {
            site: &site,
            host,
            fwd: crate::cache::Fwd {
                client_ip: conn.peer.ip(),
                host: raw_host.clone(),
                request_id: request_id.clone(),
                https: conn.tls.is_some(),
                trusted_peer: shared.geo.is_trusted(conn.peer.ip()),
                max_request_body: shared.limits.max_request_body,
                min_body_rate,
            },
            recheck: &recheck,
        };
        let _awaiting = conn.state.awaiting_origin();
        // Boxed: the cache's state machine is many times the size of the plain forward's, and
        // every request's future (on HTTP/2, a task moved and allocated per stream) would be
        // that big.
        let (resp, upstream) = match Box::pin(cache.handle(x, req)).await {
            Ok(answer) => answer,
            // Answered here rather than by the caller so it carries `Cache-Status` too, as
            // every response of a cache-enabled site does.
            Err(e) => {
                let mut resp = answer_error(&e, request_id);
                crate::cache::set_status(&mut resp, "portcullis; fwd=miss; detail=error".into());
                (resp, None)
            }
        };
        return Ok((register(shared, exchange, resp), upstream));
    }
    let info = ForwardInfo {
        client_ip: conn.peer.ip(),
        host: &raw_host,
        request_id,
        https: conn.tls.is_some(),
        trusted_peer: shared.geo.is_trusted(conn.peer.ip()),
    };
    // Upgrades go over HTTP/1.1 whatever the site speaks (see forward.rs).
    prepare_request(&mut req, &info, upgrade, site.h2 && !upgrade)?;
    let counter = site.metrics.bytes_received.clone();
    let limit = shared.limits.max_request_body;
    let slow = &site.metrics.rejected[Rejected::Slow as usize];
    let req = req.map(|b| RequestBody::new(b, limit, counter).min_rate(min_body_rate, slow));
    let _awaiting = conn.state.awaiting_origin();
    let (resp, upstream) = forward(&site, req, upgrade).await?;
    Ok((register(shared, exchange, resp), Some(upstream)))
}

/// Registers a served exchange for as long as its body streams, so a change that blocks the
/// host cuts it; decided again here if the table changed while the origin answered.
fn register(
    shared: &Shared,
    exchange: Option<(u64, cut::Facts)>,
    mut resp: Response<ResponseBody>,
) -> Response<ResponseBody> {
    if let (Some(policy), Some((generation, facts))) = (&shared.policy, exchange) {
        let recheck = policy.recheck(&facts, generation, SystemTime::now());
        let guard = policy.cuts.register(facts);
        if recheck.is_some() {
            guard.signal.trip();
        }
        resp.body_mut().set_cut_guard(guard);
    }
    resp
}

/// What the policy step decided.
enum Decided {
    /// Serve; the facts (and the table generation they were decided on) register the exchange.
    Allow((u64, cut::Facts)),
    Blocked(Box<Response<ResponseBody>>),
    Refused(ProxyError),
}

/// What the policy step asks about a request, besides the request itself.
struct Ask<'a> {
    host: &'a str,
    country: Option<[u8; 2]>,
    request_id: &'a HeaderValue,
}

/// Asks this request's snapshot of the legal-order table.
fn decide<B>(policy: &PolicyRuntime, conn: &ConnCtx, req: &Request<B>, ask: Ask<'_>) -> Decided {
    let Ask {
        host,
        country,
        request_id,
    } = ask;
    // The generation first: if a swap lands between the two loads, the exchange is checked
    // again when it registers.
    let generation = policy.generation();
    let snapshot = policy.snapshot();
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let sni = conn.tls.as_ref().and_then(|t| t.sni.as_deref());
    let now = SystemTime::now();
    let decision = snapshot.table.decide(&RequestFacts {
        host,
        path,
        country,
        sni,
        now,
    });
    for order in decision.dry_run() {
        policy.metrics.dry_run(&order.id);
        tracing::info!(request_id = ?request_id, order = %order.id, host, "dry_run order would have blocked this request");
    }
    match decision.verdict {
        Verdict::Allow => {
            let facts = cut::Facts {
                host: host.into(),
                path: path.into(),
                country,
                sni: sni.map(Box::from),
            };
            Decided::Allow((generation, facts))
        }
        Verdict::BadHost(e) => Decided::Refused(ProxyError::BadHost(e)),
        Verdict::Misdirected => Decided::Refused(ProxyError::MisdirectedForPolicy),
        Verdict::Block { order, action } => {
            policy.metrics.blocked(&order.id, action.as_str());
            let matched: Vec<&str> = decision.matched().map(|o| o.id.as_str()).collect();
            tracing::info!(request_id = ?request_id, order = %order.id, action = action.as_str(), ?matched, host, "request blocked by a legal order");
            let accept = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let format = if page::wants_json(accept) {
                page::Format::ProblemJson
            } else {
                page::Format::Html
            };
            let page = page::blocked_response(
                order,
                &snapshot.table.policy().blocked_by,
                host,
                request_id.to_str().unwrap_or("-"),
                format,
            );
            Decided::Blocked(Box::new(blocked_response(page, request_id)))
        }
    }
}

/// The response for a blocked request; `None` (close, refuse_tls) drops the connection.
fn blocked_response(
    page: Option<page::BlockedResponse>,
    request_id: &HeaderValue,
) -> Response<ResponseBody> {
    let Some(page) = page else {
        let mut resp = Response::new(ResponseBody::empty());
        resp.extensions_mut().insert(DropConnection);
        return resp;
    };
    let mut resp = Response::new(ResponseBody::full(page.body));
    *resp.status_mut() =
        StatusCode::from_u16(page.status).unwrap_or(StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS);
    let h = resp.headers_mut();
    for (name, value) in page.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.append(name, v);
        }
    }
    h.insert("x-request-id", request_id.clone());
    resp
}

/// Marks a response that must not be sent: the connection is dropped instead (HTTP/1.1: closed
/// without a byte; HTTP/2: the stream is reset).
#[derive(Debug, Clone, Copy)]
pub struct DropConnection;

/// `https://{host}[:{port}]{path?query}`; the port is left out when it is 443.
fn https_location(host: &str, port: u16, uri: &Uri) -> Result<HeaderValue, ProxyError> {
    // `OPTIONS *` (and anything else not origin-form) goes to the root.
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| p.starts_with('/'))
        .unwrap_or("/");
    let location = if port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{port}{path}")
    };
    HeaderValue::from_str(&location).map_err(|e| ProxyError::Internal(e.into()))
}

/// A 308 (method and body are kept on the retry, unlike 301/302).
fn redirect_response(location: HeaderValue) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    resp.headers_mut().insert(header::LOCATION, location);
    resp
}

/// Refuses conflicting lengths, and bodies announced larger than the limit before a byte of them
/// is read.
///
/// HTTP/1.1 requests with Content-Length together with Transfer-Encoding never get here: the h1
/// parser refuses them (RFC 9112 §6.1). HTTP/2 requests may carry a Content-Length, checked here.
fn check_framing<B>(req: &Request<B>, limit: Option<u64>) -> Result<(), ProxyError> {
    let mut lengths = req.headers().get_all(header::CONTENT_LENGTH).iter();
    let first = lengths.next();
    if first.is_none() {
        return Ok(());
    }
    if lengths.any(|v| Some(v) != first) {
        return Err(ProxyError::AmbiguousLength);
    }
    let len: u64 = first
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .ok_or(ProxyError::AmbiguousLength)?;
    match limit {
        Some(max) if len > max => Err(ProxyError::BodyTooLarge),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_location_keeps_path_and_query_and_drops_port_443() {
        let uri: Uri = "/a/b?x=1".parse().unwrap();
        assert_eq!(
            https_location("shop.example", 443, &uri).unwrap(),
            "https://shop.example/a/b?x=1"
        );
        assert_eq!(
            https_location("[::1]", 8443, &uri).unwrap(),
            "https://[::1]:8443/a/b?x=1"
        );
        let absolute: Uri = "http://shop.example:80/p?q".parse().unwrap();
        assert_eq!(
            https_location("shop.example", 8443, &absolute).unwrap(),
            "https://shop.example:8443/p?q"
        );
        let star: Uri = "*".parse().unwrap();
        assert_eq!(
            https_location("shop.example", 443, &star).unwrap(),
            "https://shop.example/"
        );
    }
}
