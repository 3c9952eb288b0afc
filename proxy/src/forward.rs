//! Forwarding one request to a site's origins: header rewriting, the exchange with retries,
//! error classification and HTTP/1.1 upgrade tunnels.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use crate::body::{BodyTooLarge, RequestBody, ResponseBody};
use crate::error::ProxyError;
use crate::metrics::UpstreamErrorKind;
use crate::route::Site;
use crate::upstream::{Conn, Origin, PooledBody, Return};

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

/// Removes hop-by-hop headers (RFC 9110 §7.6.1): the fixed set and every header the
/// `Connection` header names. `Upgrade` survives when `upgrade` is set.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            // Framing and routing headers are ours to manage, whatever Connection says.
            .filter(|n| {
                n != header::HOST
                    && n != header::CONTENT_LENGTH
                    && !(upgrade && n == header::UPGRADE)
            })
            .collect();
        for name in named {
            headers.remove(name);
        }
        headers.remove(header::CONNECTION);
    }
    headers.remove(KEEP_ALIVE);
    headers.remove(header::TE);
    headers.remove(header::TRAILER);
    headers.remove(header::TRANSFER_ENCODING);
    if !upgrade {
        headers.remove(header::UPGRADE);
    }
    if headers.keys().any(|k| k.as_str().starts_with("proxy-")) {
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
    for name in SPOOFABLE {
        headers.remove(name);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let xff = if headers.contains_key(X_FORWARDED_FOR) {
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
    if headers.contains_key(header::VIA) {
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

/// An IP address as a header value, formatted on the stack (one allocation, not two).
fn ip_value(ip: IpAddr) -> Result<HeaderValue, ProxyError> {
    use std::io::Write as _;
    // The longest IPv6 text form is 45 bytes.
    let mut buf = [0u8; 48];
    let mut cursor = std::io::Cursor::new(&mut buf[..]);
    match write!(cursor, "{ip}") {
        Ok(()) => {
            let n = cursor.position() as usize;
            HeaderValue::from_bytes(&buf[..n]).map_err(|e| ProxyError::Internal(e.into()))
        }
        Err(_) => header_value(&ip.to_string()),
    }
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
    mut req: Request<RequestBody>,
    client_upgrade: bool,
) -> Result<(Response<ResponseBody>, http::uri::Authority), ProxyError> {
    let mut origin = site.pick().clone();
    let mut connect_retry = true;
    let mut stale_retry = true;
    // Upgrades need HTTP/1.1 end to end.
    let h2 = site.h2 && !client_upgrade;
    loop {
        let (conn, reused) = match origin.checkout(h2, site.connect_timeout).await {
            Ok(c) => c,
            Err(source) => {
                site.metrics
                    .count_upstream_error(UpstreamErrorKind::Connect);
                origin.mark_down(site.origin_down_for);
                tracing::warn!(site = %site.name, origin = %origin.url, error = %source, "origin connect failed; marked down");
                if connect_retry {
                    if let Some(next) = site.pick_other(&origin) {
                        connect_retry = false;
                        origin = next.clone();
                        continue;
                    }
                }
                return Err(ProxyError::UpstreamConnect {
                    origin: origin.url.clone(),
                    source,
                });
            }
        };
        let sent = Instant::now();
        let exchange = async {
            match conn {
                Conn::H1(mut s) => s.try_send_request(req).await.map(|r| (r, Some(s))),
                Conn::H2(mut s) => s.try_send_request(req).await.map(|r| (r, None)),
            }
        };
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
        match result {
            Ok((resp, sender)) => {
                site.metrics
                    .upstream_duration
                    .observe(sent.elapsed().as_secs_f64());
                let authority = origin.authority.clone();
                let resp = finish_response(resp, sender, origin, client_upgrade);
                return Ok((resp, authority));
            }
            Err(mut e) => {
                if let Some(back) = e.take_message() {
                    if reused && stale_retry {
                        stale_retry = false;
                        req = back;
                        continue;
                    }
                }
                let err = classify(e.into_error(), &origin);
                if let Some(kind) = err.upstream_kind() {
                    site.metrics.count_upstream_error(kind);
                }
                return Err(err);
            }
        }
    }
}

fn classify(e: hyper::Error, origin: &Origin) -> ProxyError {
    if e.is_user() {
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            if c.is::<BodyTooLarge>() {
                return ProxyError::BodyTooLarge;
            }
            cause = c.source();
        }
        return ProxyError::ClientBody(e);
    }
    let origin = origin.url.clone();
    if e.is_parse() || e.is_parse_status() {
        ProxyError::UpstreamProtocol { origin, source: e }
    } else {
        ProxyError::UpstreamReset { origin, source: e }
    }
}

/// The origin side of an accepted protocol upgrade, handed to the client connection's loop in
/// the 101 response's extensions; the loop joins the two connections.
#[derive(Debug, Clone)]
pub struct OriginUpgrade(Arc<std::sync::Mutex<Option<OnUpgrade>>>);

impl OriginUpgrade {
    /// The origin's upgraded connection, once.
    pub fn take(&self) -> Option<OnUpgrade> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

fn finish_response(
    mut resp: Response<Incoming>,
    sender: Option<hyper::client::conn::http1::SendRequest<RequestBody>>,
    origin: Arc<Origin>,
    client_upgrade: bool,
) -> Response<ResponseBody> {
    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    match (switching, client_upgrade) {
        (true, true) => {
            let origin_side = hyper::upgrade::on(&mut resp);
            let (mut parts, body) = resp.into_parts();
            remove_hop_by_hop(&mut parts.headers, true);
            parts
                .extensions
                .insert(OriginUpgrade(Arc::new(std::sync::Mutex::new(Some(
                    origin_side,
                )))));
            // The origin connection now belongs to the tunnel; it never returns to the pool.
            Response::from_parts(parts, ResponseBody::upstream(PooledBody::new(body, None)))
        }
        (_, _) => {
            let (mut parts, body) = resp.into_parts();
            remove_hop_by_hop(&mut parts.headers, false);
            let ret = sender.map(|s| Return::new(s, origin));
            Response::from_parts(parts, ResponseBody::upstream(PooledBody::new(body, ret)))
        }
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
}
