//! The exchange with an HTTP/2 origin: hyper's client over one shared connection per origin,
//! with the same connect retry and stale-connection retry as the HTTP/1.1 path.

use std::time::Instant;

use http::{Request, Response};

use super::{after_connect_failure, remove_hop_by_hop};
use crate::body::{BodyTooLarge, RequestBody, ResponseBody, SlowBody};
use crate::error::ProxyError;
use crate::metrics::UpstreamErrorKind;
use crate::route::Site;
use crate::upstream::Origin;

/// The exchange with an HTTP/2 origin (hyper's client, one shared connection per origin).
pub(super) async fn forward_h2(
    site: &Site,
    mut req: Request<RequestBody>,
) -> Result<(Response<ResponseBody>, http::uri::Authority), ProxyError> {
    let mut origin = site.pick().clone();
    let mut connect_retry = true;
    let mut stale_retry = true;
    loop {
        let (mut sender, reused) = match origin.checkout_h2(site.connect_timeout).await {
            Ok(c) => c,
            Err(source) => {
                after_connect_failure(site, &mut origin, &mut connect_retry, source)?;
                continue;
            }
        };
        let sent = Instant::now();
        let result =
            match tokio::time::timeout(site.response_timeout, sender.try_send_request(req)).await {
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
            Ok(resp) => {
                site.metrics
                    .upstream_duration
                    .observe(sent.elapsed().as_secs_f64());
                let (mut parts, body) = resp.into_parts();
                remove_hop_by_hop(&mut parts.headers, false);
                let resp = Response::from_parts(parts, ResponseBody::h2(body));
                return Ok((resp, origin.authority.clone()));
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
            if c.is::<SlowBody>() {
                return ProxyError::SlowBody;
            }
            cause = c.source();
        }
        return ProxyError::ClientBody(e.into());
    }
    let origin = origin.url.clone();
    if e.is_parse() || e.is_parse_status() {
        ProxyError::UpstreamProtocol {
            origin,
            source: e.into(),
        }
    } else {
        ProxyError::UpstreamReset {
            origin,
            source: e.into(),
        }
    }
}
