//! Attack protection: per-client rate limits, per-client connection caps, a static deny list,
//! load shedding, and the HTTP/2 stream-reset accounting. Under a flood from a few abusive
//! clients, everyone else is still served.
//!
//! Where each check runs (the pipeline chart in `pipeline.rs` shows the order):
//! - at accept (`server.rs`), before the TLS handshake or a byte is parsed: the TCP peer on the
//!   deny list, or over `per_client.max_connections`, is closed (counted with site `-`). Peers in
//!   the trusted proxies are not checked here: they carry many clients.
//! - per request (`pipeline.rs`), right after the Host → site lookup and before the legal-order
//!   decision, the cache and the origin: shedding (503), the deny list on the client a trusted
//!   proxy names (403), the client's token bucket (429 with `Retry-After`). Each answer is a
//!   static body.
//! - the request body (`body.rs`): `limits.min_body_rate` after `limits.min_body_rate_grace`.
//! - HTTP/2 connections (`server/connection.rs`): hyper's stream and header-list caps, and
//!   [`H2Resets`] closing a connection whose client keeps cancelling streams.
//!
//! Who the client is: [`ClientKey`] — an IPv4 address, or the /64 of an IPv6 address (one
//! subscriber's usual allocation; rotating addresses inside it changes nothing). When the TCP
//! peer is a trusted proxy, the right-most X-Forwarded-For address that is not itself trusted.
//!
//! Layout: [`bucket`] (token bucket math), [`table`] (the bounded, sharded client table),
//! [`reload`] (re-reading the config file on SIGHUP or `POST /admin/config/reload`).

pub mod bucket;
pub mod reload;
pub mod table;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use crate::body::ResponseBody;
use crate::clock::now_ms;
use crate::config::{Cidr, Config, RateLimit};
use crate::metrics::{ProtectionMetrics, Rejected};
use bucket::Bucket;
use table::{Key, Table};

/// Who a request or connection is accounted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An IPv4 address (IPv4-mapped IPv6 addresses count as IPv4).
    V4([u8; 4]),
    /// The /64 prefix of an IPv6 address.
    V6([u8; 8]),
}

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4.octets()),
                None => {
                    let o = v6.octets();
                    ClientKey::V6([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
                }
            },
        }
    }
}

/// The client behind `peer`: the peer itself, unless it is a trusted proxy; then the right-most
/// X-Forwarded-For address that is not trusted (what lies left of it is anyone's claim). A
/// trusted peer that names no usable address is its own client.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    for line in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(line) = line.to_str() else {
            return peer;
        };
        for entry in line.rsplit(',') {
            let entry = entry.trim();
            let ip = entry
                .parse::<IpAddr>()
                .ok()
                .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()));
            match ip {
                Some(ip) if !is_trusted(ip) => return ip,
                Some(_) => {}
                None => return peer,
            }
        }
    }
    peer
}

/// The settings that change with a reload, swapped as one unit.
#[derive(Debug)]
pub struct Live {
    trusted: Vec<Cidr>,
    deny: Vec<Cidr>,
    per_client: RateLimit,
    max_connections: u32,
    /// Site name → (table slot, rate).
    per_site: HashMap<Box<str>, (u16, RateLimit)>,
    /// `shed.max_inflight_requests`; 0 = off.
    pub shed_max_inflight: usize,
    /// `limits.min_body_rate` in bytes per second, with its grace period.
    pub min_body_rate: Option<(u64, Duration)>,
    /// Whether any per-request check is on (else the request path skips this module).
    request_checks: bool,
    max_tracked_clients: usize,
}

impl Live {
    pub fn new(cfg: &Config) -> Live {
        let p = &cfg.protection;
        let trusted = match (&p.trusted_proxies, &cfg.geoip) {
            (Some(t), _) => t.clone(),
            (None, Some(g)) => g.trusted_proxies.clone(),
            (None, None) => Vec::new(),
        };
        let per_site: HashMap<Box<str>, (u16, RateLimit)> = p
            .per_site
            .iter()
            .filter_map(|(name, rate)| {
                let i = cfg.sites.iter().position(|s| &s.name == name)?;
                let slot = u16::try_from(i + 1).ok()?;
                Some((Box::from(name.as_str()), (slot, *rate)))
            })
            .collect();
        Live {
            request_checks: !p.deny.is_empty()
                || p.per_client.requests_per_second > 0
                || per_site.values().any(|(_, r)| r.requests_per_second > 0),
            trusted,
            deny: p.deny.clone(),
            per_client: p.per_client,
            max_connections: p.max_connections,
            per_site,
            shed_max_inflight: p.shed_max_inflight,
            min_body_rate: cfg
                .limits
                .min_body_rate
                .map(|r| (r, cfg.limits.min_body_rate_grace)),
            max_tracked_clients: p.max_tracked_clients,
        }
    }
}

/// A refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client is on the deny list: 403.
    Deny,
    /// Over the rate: 429, retry after this many seconds.
    Rate { retry_after: u32 },
    /// Too many requests in flight: 503, retry after a second.
    Shed,
}

const RATE_BODY: &[u8] = b"429 Too Many Requests: this client is over its request rate; retry after the seconds in Retry-After\n";
const SHED_BODY: &[u8] =
    b"503 Service Unavailable: the proxy is overloaded; retry after the seconds in Retry-After\n";
const DENY_BODY: &[u8] = b"403 Forbidden: this client is refused by the proxy's deny list\n";

impl Refusal {
    pub fn reason(self) -> Rejected {
        match self {
            Refusal::Deny => Rejected::Deny,
            Refusal::Rate { .. } => Rejected::Rate,
            Refusal::Shed => Rejected::Shed,
        }
    }

    /// The answer: a static body, no allocation beyond the response itself.
    pub fn response(self, request_id: &HeaderValue) -> Response<ResponseBody> {
        let (status, body, retry_after) = match self {
            Refusal::Deny => (StatusCode::FORBIDDEN, DENY_BODY, None),
            Refusal::Rate { retry_after } => {
                (StatusCode::TOO_MANY_REQUESTS, RATE_BODY, Some(retry_after))
            }
            Refusal::Shed => (StatusCode::SERVICE_UNAVAILABLE, SHED_BODY, Some(1)),
        };
        let mut resp = Response::new(ResponseBody::full(Bytes::from_static(body)));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match retry_after {
            Some(1) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Some(n) => {
                h.insert(header::RETRY_AFTER, HeaderValue::from(n));
            }
            None => {}
        }
        h.insert("x-request-id", request_id.clone());
        resp
    }
}

/// The protection runtime of one proxy instance.
#[derive(Debug)]
pub struct Protection {
    live: ArcSwap<Live>,
    table: Table,
    /// Requests in flight on every connection (shedding).
    pub inflight: Arc<AtomicUsize>,
    pub metrics: ProtectionMetrics,
}

impl Protection {
    pub fn new(cfg: &Config, metrics: &ProtectionMetrics) -> Protection {
        let live = Live::new(cfg);
        Protection {
            table: Table::new(live.max_tracked_clients, metrics.tracked.clone()),
            live: ArcSwap::from_pointee(live),
            inflight: Arc::new(AtomicUsize::new(0)),
            metrics: metrics.clone(),
        }
    }

    /// This moment's settings; load once per request, never hold across an await.
    pub fn live(&self) -> arc_swap::Guard<Arc<Live>> {
        self.live.load()
    }

    /// Applies reloaded settings. The client table stays: buckets take the new rate and size
    /// the next time they are used.
    pub fn store(&self, live: Live) {
        self.table.set_max(live.max_tracked_clients);
        self.live.store(Arc::new(live));
    }

    /// Entries in the client table.
    pub fn tracked(&self) -> usize {
        self.table.len()
    }

    /// The accept-time checks on a new connection from `peer`. `Ok(Some(slot))` holds one of
    /// the client's connections until dropped.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Option<ConnSlot>, Rejected> {
        let live = self.live.load();
        if live.deny.is_empty() && live.max_connections == 0 {
            return Ok(None);
        }
        if live.trusted.iter().any(|c| c.contains(peer)) {
            return Ok(None);
        }
        if live.deny.iter().any(|c| c.contains(peer)) {
            return Err(Rejected::Deny);
        }
        if live.max_connections == 0 {
            return Ok(None);
        }
        let key = Key {
            client: ClientKey::of(peer),
            slot: 0,
        };
        let burst = live.per_client.burst as f32;
        match self
            .table
            .open(key, live.max_connections, now_ms() as u32, burst)
        {
            Ok(generation) => Ok(Some(ConnSlot {
                protection: self.clone(),
                key,
                generation,
            })),
            Err(table::AtCap) => Err(Rejected::Connections),
        }
    }

    /// The per-request checks after shedding: the deny list on the client a trusted proxy
    /// names, then the client's bucket for `site` (its `per_site` override, else the default).
    pub fn check_request(
        &self,
        live: &Live,
        peer: IpAddr,
        headers: &HeaderMap,
        site: Option<&str>,
    ) -> Result<(), Refusal> {
        if !live.request_checks {
            return Ok(());
        }
        let client = client_ip(peer, headers, &live.trusted);
        if live.deny.iter().any(|c| c.contains(client)) {
            return Err(Refusal::Deny);
        }
        let (slot, rate) = site
            .and_then(|s| live.per_site.get(s))
            .copied()
            .unwrap_or((0, live.per_client));
        if rate.requests_per_second == 0 {
            return Ok(());
        }
        let key = Key {
            client: ClientKey::of(client),
            slot,
        };
        self.table
            .take(
                key,
                now_ms() as u32,
                rate.requests_per_second as f32,
                rate.burst as f32,
            )
            .map_err(|retry_after| Refusal::Rate { retry_after })
    }

    /// Bytes per tracked client in the table right now (see `table.rs`).
    pub fn bytes_per_client(&self) -> Option<f64> {
        self.table.bytes_per_entry()
    }
}

/// One connection counted against its client's `max_connections`, given back on drop.
#[derive(Debug)]
pub struct ConnSlot {
    protection: Arc<Protection>,
    key: Key,
    generation: u32,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.protection.table.close(self.key, self.generation);
    }
}

/// Streams an HTTP/2 client may cancel (reset) in a burst before its connection is closed...
pub const H2_RESET_BURST: f32 = 100.0;
/// ...and how fast that allowance comes back: 100 a minute.
pub const H2_RESET_PER_SECOND: f32 = 100.0 / 60.0;

/// One HTTP/2 connection's count of streams the client cancelled before their response: a
/// token bucket of [`H2_RESET_BURST`] refilled at [`H2_RESET_PER_SECOND`]. When it runs dry,
/// [`H2Resets::tripped`] fires and the connection is closed (rapid reset, CVE-2023-44487).
#[derive(Debug)]
pub struct H2Resets {
    bucket: Mutex<Bucket>,
    done: AtomicBool,
    pub tripped: tokio::sync::Notify,
}

impl Default for H2Resets {
    fn default() -> Self {
        H2Resets {
            bucket: Mutex::new(Bucket::full(H2_RESET_BURST, now_ms() as u32)),
            done: AtomicBool::new(false),
            tripped: tokio::sync::Notify::new(),
        }
    }
}

impl H2Resets {
    /// A stream ended before its response: one token.
    pub fn reset(&self) {
        let over = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(now_ms() as u32, H2_RESET_PER_SECOND, H2_RESET_BURST)
            .is_err();
        if over && !self.done.swap(true, std::sync::atomic::Ordering::Relaxed) {
            self.tripped.notify_one();
        }
    }
}

/// Held by an HTTP/2 request's handler: dropped before [`StreamWatch::answered`], the stream
/// was cancelled (the client reset it, or the connection broke) and counts in [`H2Resets`].
#[derive(Debug)]
pub struct StreamWatch(Option<Arc<H2Resets>>);

impl StreamWatch {
    pub fn new(resets: Arc<H2Resets>) -> StreamWatch {
        StreamWatch(Some(resets))
    }

    pub fn answered(mut self) {
        self.0 = None;
    }
}

impl Drop for StreamWatch {
    fn drop(&mut self) {
        if let Some(r) = self.0.take() {
            r.reset();
        }
    }
}

#[cfg(test)]
mod tests;
