//! Which host a request is for — the one function routing (and later policy, cache and logs)
//! use, per DESIGN.md: `:authority`, else the absolute-form target's authority, else `Host`;
//! canonicalised by [`portcullis_policy::canonical_host`].

use std::borrow::Cow;

use http::{HeaderValue, Request, header};

use crate::error::ProxyError;

/// The canonical host and the authority exactly as the client sent it (for `X-Forwarded-Host`).
#[derive(Debug)]
pub struct RequestHost<'a> {
    pub canonical: Cow<'a, str>,
    pub raw: &'a str,
    /// The `Host` header when the host came from it (a cheap, non-allocating clone).
    header: Option<&'a HeaderValue>,
}

impl RequestHost<'_> {
    /// The authority as sent, as a header value.
    pub fn raw_value(&self) -> Result<HeaderValue, ProxyError> {
        match self.header {
            Some(v) => Ok(v.clone()),
            None => HeaderValue::from_str(self.raw)
                .map_err(|_| ProxyError::BadHost(portcullis_policy::HostError::BadCharacter)),
        }
    }
}

pub fn request_host<B>(req: &Request<B>) -> Result<RequestHost<'_>, ProxyError> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(ProxyError::DuplicateHost);
    }
    let host_header = host;
    let host = host.map(header_str).transpose()?;
    let canon = |s| portcullis_policy::canonical_host(s).map_err(ProxyError::BadHost);
    match (req.uri().authority(), host) {
        (Some(authority), host) => {
            let raw = authority.as_str();
            let canonical = canon(raw)?;
            if let Some(h) = host {
                if canon(h)? != canonical {
                    return Err(ProxyError::HostMismatch);
                }
            }
            Ok(RequestHost {
                canonical,
                raw,
                header: None,
            })
        }
        (None, Some(raw)) => Ok(RequestHost {
            canonical: canon(raw)?,
            raw,
            header: host_header,
        }),
        (None, None) => Err(ProxyError::MissingHost),
    }
}

fn header_str(v: &HeaderValue) -> Result<&str, ProxyError> {
    // Header values may carry obs-text bytes; a host never may.
    v.to_str()
        .map_err(|_| ProxyError::BadHost(portcullis_policy::HostError::NonAscii))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, hosts: &[&[u8]]) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        for h in hosts {
            b = b.header(header::HOST, HeaderValue::from_bytes(h).unwrap());
        }
        b.body(()).unwrap()
    }

    fn host(r: &Request<()>) -> Result<String, String> {
        request_host(r)
            .map(|h| h.canonical.into_owned())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn sources_in_order() {
        assert_eq!(
            host(&req("/", &[b"Shop.Example:8080"])).unwrap(),
            "shop.example"
        );
        assert_eq!(
            host(&req("http://shop.example/x", &[])).unwrap(),
            "shop.example"
        );
        assert_eq!(
            host(&req("http://shop.example/x", &[b"SHOP.example."])).unwrap(),
            "shop.example"
        );
    }

    #[test]
    fn refusals() {
        assert!(matches!(
            request_host(&req("/", &[])),
            Err(ProxyError::MissingHost)
        ));
        assert!(matches!(
            request_host(&req("/", &[b"a.example", b"b.example"])),
            Err(ProxyError::DuplicateHost)
        ));
        assert!(matches!(
            request_host(&req("http://a.example/", &[b"b.example"])),
            Err(ProxyError::HostMismatch)
        ));
        assert!(matches!(
            request_host(&req("/", &[b"a\xffb.example"])),
            Err(ProxyError::BadHost(_))
        ));
        assert!(matches!(
            request_host(&req("http://user@a.example/", &[])),
            Err(ProxyError::BadHost(portcullis_policy::HostError::Userinfo))
        ));
    }
}
