//! Placeholder until the GeoIP module lands (branch `geo`).

use std::net::IpAddr;

#[derive(Debug, Default)]
pub struct Geo {}

impl Geo {
    pub fn disabled() -> Geo {
        Geo {}
    }

    pub fn peer_country(&self, _peer: IpAddr) -> Option<[u8; 2]> {
        None
    }

    pub fn client_country(&self, _peer: IpAddr, _headers: &mut http::HeaderMap) -> Option<[u8; 2]> {
        None
    }

    pub fn is_trusted(&self, _peer: IpAddr) -> bool {
        false
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot open the GeoIP database")]
pub struct GeoError;

impl Geo {
    pub fn new(_cfg: Option<&crate::config::GeoipConfig>) -> Result<Geo, GeoError> {
        Ok(Geo {})
    }
}
