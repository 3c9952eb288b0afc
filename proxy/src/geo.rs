//! The client's country, for geo-scoped legal orders (POLICY-SPEC.md, Matching: Countries).
//!
//! The country comes from a MaxMind-format database looked up on the peer address. Only a peer
//! inside `geoip.trusted_proxies` may say otherwise: its country header (e.g. `CF-IPCountry`)
//! wins, else the right-most X-Forwarded-For entry that is not itself a trusted proxy is looked
//! up. From any other peer the country header is removed, so it cannot reach the origin either
//! (forward.rs drops such a peer's X-Forwarded-For).
//!
//! Lookups run per request and per TLS handshake: they borrow the code from the database (no
//! allocation) and return it as two uppercase ASCII letters. The database is read into memory
//! once; there is no hot reload.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderName};
use maxminddb::{PathElement, Reader};

use crate::config::{Cidr, GeoipConfig};

/// Not a country: what a trusted proxy sends when it does not know (Cloudflare's `XX`).
const UNKNOWN: [u8; 2] = *b"XX";

const COUNTRY: [PathElement<'static>; 2] =
    [PathElement::Key("country"), PathElement::Key("iso_code")];
const REGISTERED_COUNTRY: [PathElement<'static>; 2] = [
    PathElement::Key("registered_country"),
    PathElement::Key("iso_code"),
];

/// `geoip.country_header`'s default (config/policy.rs), which a disabled [`Geo`] strips too.
const DEFAULT_COUNTRY_HEADER: HeaderName = HeaderName::from_static("cf-ipcountry");

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Why the country database cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file cannot be read (missing, permissions, ...).
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a MaxMind DB (no metadata marker, bad metadata, bad layout).
    #[error("{} is not a MaxMind DB (.mmdb) file", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: maxminddb::MaxMindDbError,
    },
}

/// Opens a MaxMind DB file, read into memory. The config check and [`Geo::new`] both use it,
/// so `portcullis check` refuses exactly what the proxy would.
pub fn open_mmdb(path: &Path) -> Result<Reader<Vec<u8>>, GeoError> {
    let bytes = std::fs::read(path).map_err(|source| GeoError::Read {
        path: path.to_owned(),
        source,
    })?;
    Reader::from_source(bytes).map_err(|source| GeoError::Invalid {
        path: path.to_owned(),
        source,
    })
}

/// Where a request's country comes from: the database, the trusted proxies and their header.
pub struct Geo {
    reader: Option<Reader<Vec<u8>>>,
    trusted: Vec<Cidr>,
    header: HeaderName,
}

impl std::fmt::Debug for Geo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Geo")
            .field(
                "database_type",
                &self.reader.as_ref().map(|r| &r.metadata().database_type),
            )
            .field("trusted", &self.trusted)
            .field("header", &self.header)
            .finish()
    }
}

impl Geo {
    /// From the `geoip:` section; `None` gives [`Geo::disabled`]. Opens the database, if any.
    pub fn new(cfg: Option<&GeoipConfig>) -> Result<Geo, GeoError> {
        let Some(cfg) = cfg else {
            return Ok(Geo::disabled());
        };
        let GeoipConfig {
            mmdb,
            trusted_proxies,
            country_header,
        } = cfg;
        Ok(Geo {
            reader: mmdb.as_deref().map(open_mmdb).transpose()?,
            trusted: trusted_proxies.clone(),
            header: country_header.clone(),
        })
    }

    /// No database and no trusted proxies: every country is unknown. A client-sent default
    /// country header (`CF-IPCountry`) is still removed, as from any untrusted peer.
    pub fn disabled() -> Geo {
        Geo {
            reader: None,
            trusted: Vec::new(),
            header: DEFAULT_COUNTRY_HEADER,
        }
    }

    /// Whether `peer` is one of `geoip.trusted_proxies` (its country header and
    /// X-Forwarded-For are believed).
    pub fn is_trusted(&self, peer: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(peer))
    }

    /// The database's country for an address: `country.iso_code`, else
    /// `registered_country.iso_code`; `None` without a database, on a miss, or when the code is
    /// not two ASCII letters. IPv4-mapped IPv6 addresses are looked up as IPv4.
    pub fn peer_country(&self, peer: IpAddr) -> Option<[u8; 2]> {
        let reader = self.reader.as_ref()?;
        let ip = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        let found = reader.lookup(ip).ok()?;
        if !found.has_data() {
            return None;
        }
        let code = match found.decode_path::<&str>(&COUNTRY) {
            Ok(Some(code)) => code,
            _ => found.decode_path::<&str>(&REGISTERED_COUNTRY).ok()??,
        };
        alpha2(code.as_bytes()).filter(|c| *c != UNKNOWN)
    }

    /// The country of the client behind `peer`, per the rules at the top of this module.
    /// Removes the country header from `headers` when `peer` is not trusted.
    pub fn client_country(&self, peer: IpAddr, headers: &mut HeaderMap) -> Option<[u8; 2]> {
        self.strip_untrusted(peer, headers);
        self.country_of(peer, headers)
    }

    /// Removes the country header when `peer` is not trusted (cheap: no database lookup), so
    /// it can run first and [`Geo::country_of`] later, when the country is needed.
    pub fn strip_untrusted(&self, peer: IpAddr, headers: &mut HeaderMap) {
        if !self.is_trusted(peer) {
            headers.remove(&self.header);
        }
    }

    /// [`Geo::client_country`] without touching the headers: an untrusted peer's header is
    /// ignored (and should have been removed by [`Geo::strip_untrusted`]).
    pub fn country_of(&self, peer: IpAddr, headers: &HeaderMap) -> Option<[u8; 2]> {
        if !self.is_trusted(peer) {
            return self.peer_country(peer);
        }
        let mut values = headers.get_all(&self.header).iter();
        if let (Some(value), None) = (values.next(), values.next()) {
            if let Some(code) = alpha2(value.as_bytes().trim_ascii()) {
                // The proxy's word is final, "unknown" included.
                return (code != UNKNOWN).then_some(code);
            }
        }
        match self.forwarded_client(headers) {
            Some(client) => self.peer_country(client),
            None => self.peer_country(peer),
        }
    }

    /// The right-most X-Forwarded-For address that is not a trusted proxy: the first hop we
    /// cannot vouch for. `None` when there is none, or when that entry is not an address
    /// (what lies left of it is anyone's claim).
    fn forwarded_client(&self, headers: &HeaderMap) -> Option<IpAddr> {
        for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
            for entry in line.to_str().ok()?.rsplit(',') {
                let ip = parse_forwarded(entry.trim())?;
                if !self.is_trusted(ip) {
                    return Some(ip);
                }
            }
        }
        None
    }
}

/// An X-Forwarded-For entry: an address, or an address with a port (`192.0.2.1:5000`,
/// `[2001:db8::1]:5000`) as some proxies write it.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

/// Two ASCII letters, uppercased.
fn alpha2(code: &[u8]) -> Option<[u8; 2]> {
    match code {
        [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
            Some([a.to_ascii_uppercase(), b.to_ascii_uppercase()])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
