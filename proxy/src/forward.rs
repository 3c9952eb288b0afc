//! Forwarding one request to a site's origins: header rewriting, the exchange with retries,
//! error classification and HTTP/1.1 upgrade tunnels.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};

use crate::body::{BodyTooLarge, RequestBody, ResponseBody, SlowBody};
use crate::error::{Chain, ProxyError};
use crate::h1::client::{ExchangeError, Exchanged, H1Conn, OriginBody, exchange, request_framing};
use crate::h1::write::{Framing, encode_request_head};
use crate::metrics::UpstreamErrorKind;
use crate::route::Site;
use crate::upstream::{ConnectError, Origin};

mod h2;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Client-sent headers that could make the origin believe a different host or URL than the one
/// we routed on; never forwarded.
const SPOOFABLE: [HeaderName; 3] = [
    HeaderName::from_static("forwarded"),
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
];

/// Whether a request asks for an HTTP/1.1 protocol upgrade (WebSocket).
pub fn wants_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && connection_has(req.headers(), "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The fixed hop-by-hop set (RFC 9110 §7.6.1 and RFC 9112), `Connection` first.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    KEEP_ALIVE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers (RFC 9110 §7.6.1): the fixed set and every header the
/// `Connection` header names. `Upgrade` survives when `upgrade` is set.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // One pass over the names, then removals only of what is there: a removal costs a hash
    // lookup, and most messages carry one of these at most (an origin's `Connection`).
    let mut present = [false; 6];
    let mut proxy_named = false;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present[i] = true;
        } else if name.as_str().starts_with("proxy-") {
            proxy_named = true;
        }
    }
    if present[0] {
        // Tokens are compared as text before any is parsed into a name: the usual
        // `Connection: keep-alive` (or `close`) then costs neither a parse nor an allocation.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            // Connection options that name no header here, framing and routing headers (ours
            // to manage, whatever Connection says), and the fixed set (it goes below anyway).
            .filter(|t| {
                !t.is_empty()
                    && !t.eq_ignore_ascii_case("close")
                    && !t.eq_ignore_ascii_case(header::HOST.as_str())
                    && !t.eq_ignore_ascii_case(header::CONTENT_LENGTH.as_str())
                    && !HOP_BY_HOP
                        .iter()
                        .any(|h| t.eq_ignore_ascii_case(h.as_str()))
            })
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        let keep = upgrade && *name == header::UPGRADE;
        if present[i] && !keep {
            headers.remove(name);
        }
    }
    if proxy_named {
        let proxy: Vec<HeaderName> = headers
            .keys()
            .filter(|k| k.as_str().starts_with("proxy-"))
            .cloned()
            .collect();
        for name in proxy {
            headers.remove(name);
        }
    }
}

/// What the proxy adds to every forwarded request.
#[derive(Debug)]
pub struct ForwardInfo<'a> {
    pub client_ip: IpAddr,
    /// The authority as the client sent it.
    pub host: &'a HeaderValue,
    pub request_id: &'a HeaderValue,
    /// The client connection is TLS: `X-Forwarded-Proto: https`.
    pub https: bool,
    /// The peer is one of `geoip.trusted_proxies` (`Geo::is_trusted`): its X-Forwarded-For is
    /// kept and the peer appended. From anyone else it is replaced by the peer address alone,
    /// so a client cannot put words in a trusted hop's mouth (POLICY-SPEC.md, Countries).
    pub trusted_peer: bool,
}

/// Rewrites a client request into the request for the origin (headers and target).
pub fn prepare_request<B>(
    req: &mut Request<B>,
    info: &ForwardInfo<'_>,
    upgrade: bool,
    h2_origin: bool,
) -> Result<(), ProxyError> {
    let version = req.version();
    let headers = req.headers_mut();
    remove_hop_by_hop(headers, upgrade);
    // One pass over the names instead of a hash lookup per header we might touch.
    let (mut spoofed, mut has_xff, mut has_via) = (false, false, false);
    for name in headers.keys() {
        if name == X_FORWARDED_FOR {
            has_xff = true;
        } else if name == header::VIA {
            has_via = true;
        } else if SPOOFABLE.contains(name) {
            spoofed = true;
        }
    }
    if spoofed {
        for name in SPOOFABLE {
            headers.remove(name);
        }
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let xff = if has_xff && info.trusted_peer {
        let xff = format!("{}, {}", joined(headers, &X_FORWARDED_FOR), info.client_ip);
        header_value(&xff)?
    } else {
        ip_value(info.client_ip)?
    };
    headers.insert(X_FORWARDED_FOR, xff);
    let proto = if info.https { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    headers.insert(X_FORWARDED_HOST, info.host.clone());
    headers.insert(X_REQUEST_ID, info.request_id.clone());
    let via = match version {
        Version::HTTP_2 => "2 portcullis",
        Version::HTTP_10 => "1.0 portcullis",
        _ => "1.1 portcullis",
    };
    if has_via {
        let v = format!("{}, {via}", joined(headers, &header::VIA));
        headers.insert(header::VIA, header_value(&v)?);
    } else {
        headers.insert(header::VIA, HeaderValue::from_static(via));
    }
    let path = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    // The normalised path (unreserved escapes decoded, dot-segments removed, duplicate slashes
    // merged) is what legal orders matched and what the origin gets (POLICY-SPEC). `*`
    // (OPTIONS) is not a path and goes as it is.
    let path = match portcullis_policy::path::normalize_path(path.as_str()) {
        Ok(std::borrow::Cow::Owned(normal)) => http::uri::PathAndQuery::from_maybe_shared(normal)
            .map_err(|e| ProxyError::Internal(e.into()))?,
        _ => path,
    };
    if h2_origin {
        // HTTP/2 carries the host as :authority, taken from the URI.
        req.headers_mut().remove(header::HOST);
        *req.uri_mut() = Uri::builder()
            .scheme("http")
            .authority(info.host.as_bytes())
            .path_and_query(path)
            .build()
            .map_err(ProxyError::Internal)?;
        *req.version_mut() = Version::HTTP_2;
    } else {
        // The origin keeps seeing the client's Host (an HTTP/2 client sent none).
        req.headers_mut().insert(header::HOST, info.host.clone());
        *req.uri_mut() = Uri::from(path);
        *req.version_mut() = Version::HTTP_11;
    }
    Ok(())
}

/// Every line of a list-valued header, joined with ", " (RFC 9110 §5.3).
fn joined(headers: &HeaderMap, name: &HeaderName) -> String {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    values.join(", ")
}

/// An IP address as a header value. The last one formatted is kept per thread: a connection's
/// requests (many at once on HTTP/2) come from one address, and a clone of the value costs a
/// reference count where formatting costs an allocation and a validation pass.
fn ip_value(ip: IpAddr) -> Result<HeaderValue, ProxyError> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    let cached = LAST.with(|last| match &*last.borrow() {
        Some((addr, value)) if *addr == ip => Some(value.clone()),
        _ => None,
    });
    if let Some(value) = cached {
        return Ok(value);
    }
    let value = format_ip(ip)?;
    LAST.with(|last| *last.borrow_mut() = Some((ip, value.clone())));
    Ok(value)
}

/// An IP address as a header value, formatted on the stack (one allocation, not two; IPv4
/// without `fmt`, whose per-octet padding logic showed up in profiles).
fn format_ip(ip: IpAddr) -> Result<HeaderValue, ProxyError> {
    use std::io::Write as _;
    // The longest IPv6 text form is 45 bytes.
    let mut buf = [0u8; 48];
    let n = match ip {
        IpAddr::V4(v4) => {
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                let mut digits = itoa::Buffer::new();
                let d = digits.format(octet).as_bytes();
                buf[n..n + d.len()].copy_from_slice(d);
                n += d.len();
            }
            n
        }
        IpAddr::V6(_) => {
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            if write!(cursor, "{ip}").is_err() {
                return header_value(&ip.to_string());
            }
            cursor.position() as usize
        }
    };
    HeaderValue::from_bytes(&buf[..n]).map_err(|e| ProxyError::Internal(e.into()))
}

fn header_value(s: &str) -> Result<HeaderValue, ProxyError> {
    HeaderValue::from_str(s).map_err(|e| ProxyError::Internal(e.into()))
}

/// Sends the request to one of the site's origins.
///
/// A request that could not be handed to any connection was never sent, so it is retried once
/// on another origin after a connect failure (the failed origin is marked down), and once on a
/// fresh connection when a pooled keep-alive connection turns out to be dead.
pub async fn forward(
    site: &Site,
    req: Request<RequestBody>,
    upgrade: bool,
) -> Result<(Response<ResponseBody>, http::uri::Authority), ProxyError> {
    // Upgrades need HTTP/1.1 end to end.
    if site.h2 && !upgrade {
        // Boxed: the rarer path keeps its (large) state out of every request's future.
        return Box::pin(h2::forward_h2(site, req)).await;
    }
    let (parts, body) = req.into_parts();
    let framing = request_framing(&body);
    let mut head = Vec::with_capacity(512);
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    encode_request_head(
        &mut head,
        &parts.method,
        target,
        &parts.headers,
        framing,
        upgrade,
    );
    // The head is encoded: only the method is still needed (for the response's framing).
    let http::request::Parts {
        method, headers, ..
    } = parts;
    crate::h1::maps::give(headers);
    let mut body = (framing != Framing::None).then_some(body);
    let mut origin = site.pick().clone();
    let mut connect_retry = true;
    let mut stale_retry = true;
    loop {
        let mut conn = checkout_h1(site, &mut origin, &mut connect_retry, body.is_some()).await?;
        let sent = Instant::now();
        let exchange = exchange(&mut conn.0, &head, body.take(), framing, &method);
        let result = match tokio::time::timeout(site.response_timeout, exchange).await {
            Ok(r) => r,
            Err(_) => {
                site.metrics
                    .count_upstream_error(UpstreamErrorKind::Timeout);
                return Err(ProxyError::UpstreamTimeout {
                    origin: origin.url.clone(),
                });
            }
        };
        let ex = match result {
            Ok(ex) => ex,
            Err(ExchangeError::Unused(_)) if conn.1 && stale_retry => {
                // A pooled connection the origin had closed: one more try on a fresh one.
                stale_retry = false;
                continue;
            }
            Err(e) => {
                let err = classify_h1(e, &origin);
                if let Some(kind) = err.upstream_kind() {
                    site.metrics.count_upstream_error(kind);
                }
                return Err(err);
            }
        };
        site.metrics
            .upstream_duration
            .observe(sent.elapsed().as_secs_f64());
        let authority = origin.authority.clone();
        let Exchanged {
            mut parts,
            decoder,
            reusable,
        } = ex;
        let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS && upgrade;
        remove_hop_by_hop(&mut parts.headers, switching);
        let body = if switching {
            // The origin connection now belongs to the tunnel; it never returns to the pool.
            parts
                .extensions
                .insert(OriginUpgrade(Arc::new(std::sync::Mutex::new(Some(conn.0)))));
            ResponseBody::empty()
        } else {
            ResponseBody::h1(OriginBody::new(conn.0, decoder, reusable.then_some(origin)))
        };
        return Ok((Response::from_parts(parts, body), authority));
    }
}

/// A connection for `origin`, moving to another origin after a connect failure (see
/// [`after_connect_failure`]).
async fn checkout_h1(
    site: &Site,
    origin: &mut Arc<Origin>,
    connect_retry: &mut bool,
    probe: bool,
) -> Result<(H1Conn, bool), ProxyError> {
    loop {
        match origin.checkout_h1(probe, site.connect_timeout).await {
            Ok(c) => return Ok(c),
            Err(source) => after_connect_failure(site, origin, connect_retry, source)?,
        }
    }
}

/// Counts a connect failure and marks the origin down; then moves to another origin once
/// (`Ok`: try again), or gives up with 502.
pub(crate) fn after_connect_failure(
    site: &Site,
    origin: &mut Arc<Origin>,
    connect_retry: &mut bool,
    source: ConnectError,
) -> Result<(), ProxyError> {
    site.metrics
        .count_upstream_error(UpstreamErrorKind::Connect);
    origin.mark_down(site.origin_down_for);
    tracing::warn!(site = %site.name, origin = %origin.url, error = %Chain(&source), "origin connect failed; marked down");
    if *connect_retry {
        if let Some(next) = site.pick_other(origin) {
            *connect_retry = false;
            *origin = next.clone();
            return Ok(());
        }
    }
    Err(ProxyError::UpstreamConnect {
        origin: origin.url.clone(),
        source,
    })
}

fn classify_h1(e: ExchangeError, origin: &Origin) -> ProxyError {
    let url = origin.url.clone();
    match e {
        ExchangeError::Body(source) => {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
            while let Some(c) = cause {
                if c.is::<BodyTooLarge>() {
                    return ProxyError::BodyTooLarge;
                }
                if c.is::<SlowBody>() {
                    return ProxyError::SlowBody;
                }
                cause = c.source();
            }
            ProxyError::ClientBody(source)
        }
        ExchangeError::Protocol(source) => ProxyError::UpstreamProtocol {
            origin: url,
            source: source.into(),
        },
        ExchangeError::Unused(source) | ExchangeError::Io(source) => ProxyError::UpstreamReset {
            origin: url,
            source: source.into(),
        },
    }
}

/// The origin side of an accepted protocol upgrade, handed to the client connection's loop in
/// the 101 response's extensions; the loop joins the two connections.
#[derive(Debug, Clone)]
pub struct OriginUpgrade(Arc<std::sync::Mutex<Option<H1Conn>>>);

impl OriginUpgrade {
    /// The origin's connection, once.
    pub fn take(&self) -> Option<H1Conn> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_named_headers_go() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive, x-secret, host"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("trailer", "x"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("proxy-foo", "1"),
            ("host", "a.example"),
            ("x-kept", "1"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        remove_hop_by_hop(&mut h, false);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["host", "x-kept"]);
    }

    #[test]
    fn ip_values_format_like_display() {
        for ip in [
            "0.0.0.0",
            "192.0.2.7",
            "255.255.255.255",
            "10.20.3.100",
            "::1",
            "2001:db8::7",
        ] {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_value(parsed).unwrap(), ip);
            // Again, from the per-thread cache.
            assert_eq!(ip_value(parsed).unwrap(), ip);
        }
    }

    #[test]
    fn prepare_sets_forwarding_headers() {
        let id = HeaderValue::from_static("id1");
        let mut req = Request::builder()
            .uri("http://a.example:8080/p?q=1")
            .header("x-forwarded-for", "10.0.0.1")
            .header("x-forwarded-host", "evil.example")
            .header("x-original-url", "/admin")
            .header("forwarded", "host=evil.example")
            .header("via", "1.1 cdn")
            .body(())
            .unwrap();
        let host = HeaderValue::from_static("a.example:8080");
        let info = ForwardInfo {
            client_ip: "192.0.2.7".parse().unwrap(),
            host: &host,
            request_id: &id,
            https: false,
            trusted_peer: true,
        };
        prepare_request(&mut req, &info, false, false).unwrap();
        let h = req.headers();
        assert_eq!(req.uri(), "/p?q=1");
        assert_eq!(h["host"], "a.example:8080");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 192.0.2.7");
        assert_eq!(h["x-forwarded-host"], "a.example:8080");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["via"], "1.1 cdn, 1.1 portcullis");
        assert_eq!(h["x-request-id"], "id1");
        assert!(!h.contains_key("x-original-url"));
        assert!(!h.contains_key("forwarded"));
        let mut req = Request::builder().uri("/").body(()).unwrap();
        let info = ForwardInfo {
            https: true,
            ..info
        };
        prepare_request(&mut req, &info, false, false).unwrap();
        assert_eq!(req.headers()["x-forwarded-proto"], "https");
    }

    fn forwarded_for(client_xff: &[&'static str], trusted_peer: bool) -> Vec<String> {
        let (id, host) = (
            HeaderValue::from_static("id"),
            HeaderValue::from_static("a"),
        );
        let mut req = Request::builder().uri("/").body(()).unwrap();
        for v in client_xff {
            req.headers_mut()
                .append("x-forwarded-for", HeaderValue::from_static(v));
        }
        let info = ForwardInfo {
            client_ip: "192.0.2.7".parse().unwrap(),
            host: &host,
            request_id: &id,
            https: false,
            trusted_peer,
        };
        prepare_request(&mut req, &info, false, false).unwrap();
        req.headers()
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn a_trusted_peer_s_forwarded_for_is_kept_and_appended_to() {
        assert_eq!(
            forwarded_for(&["203.0.113.9, 10.0.0.1", "10.0.0.2"], true),
            ["203.0.113.9, 10.0.0.1, 10.0.0.2, 192.0.2.7"]
        );
        assert_eq!(forwarded_for(&[], true), ["192.0.2.7"]);
    }

    #[test]
    fn an_untrusted_peer_s_forwarded_for_is_replaced_by_the_peer() {
        assert_eq!(
            forwarded_for(&["203.0.113.9, 10.0.0.1", "10.0.0.2"], false),
            ["192.0.2.7"]
        );
        assert_eq!(forwarded_for(&[], false), ["192.0.2.7"]);
    }
}
