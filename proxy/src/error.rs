//! Request errors and the one place that turns them into responses.
//!
//! Each error knows who is at fault ([`ErrorSource`]): the client (4xx, never retried), the origin
//! (502/504, counted as upstream errors) or us (500). [`ProxyError::status`] is an exhaustive match
//! with no catch-all arm, so a new error cannot ship without choosing its status.

use http::{HeaderValue, Response, StatusCode, header};

use crate::body::ResponseBody;
use crate::metrics::UpstreamErrorKind;
use crate::upstream::ConnectError;

/// An error with its causes, `outer: inner: root`, for log lines (a bare `%err` would hide
/// why, e.g. which certificate check failed).
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// Who caused a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorSource {
    /// The client sent something we refuse.
    Downstream,
    /// The origin could not be reached or misbehaved.
    Upstream,
    /// A fault of this proxy.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("request has no host (no Host header, :authority or absolute URI)")]
    MissingHost,
    #[error("request has more than one Host header")]
    DuplicateHost,
    #[error("Host header disagrees with the request target's authority")]
    HostMismatch,
    #[error("malformed host")]
    BadHost(#[source] portcullis_policy::HostError),
    #[error("no site serves this host")]
    UnknownHost,
    #[error("this connection's TLS certificate does not cover the requested host")]
    MisdirectedForCertificate,
    #[error(
        "this connection's SNI names a host suspended by a legal order; reconnect for this host"
    )]
    MisdirectedForPolicy,
    #[error("method not allowed on a reverse proxy")]
    MethodNotAllowed,
    #[error("malformed request head")]
    MalformedHead(#[source] httparse::Error),
    #[error("request head larger than limits.max_header_size")]
    HeadTooLarge,
    #[error("request uses a transfer coding other than chunked")]
    UnsupportedTransferCoding,
    #[error("request body larger than the limit")]
    BodyTooLarge,
    #[error("request body slower than limits.min_body_rate")]
    SlowBody,
    #[error("request carries both Content-Length and Transfer-Encoding, or conflicting lengths")]
    AmbiguousLength,
    #[error("client request body failed")]
    ClientBody(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot connect to origin {origin}")]
    UpstreamConnect {
        origin: String,
        #[source]
        source: ConnectError,
    },
    #[error("origin {origin} sent no response headers within the response timeout")]
    UpstreamTimeout { origin: String },
    #[error("origin {origin} closed or reset the connection")]
    UpstreamReset {
        origin: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("origin {origin} sent an invalid response")]
    UpstreamProtocol {
        origin: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("building the request to the origin failed")]
    Internal(#[source] http::Error),
}

impl ProxyError {
    pub fn source_side(&self) -> ErrorSource {
        match self {
            ProxyError::MissingHost
            | ProxyError::DuplicateHost
            | ProxyError::HostMismatch
            | ProxyError::BadHost(_)
            | ProxyError::UnknownHost
            | ProxyError::MisdirectedForCertificate
            | ProxyError::MisdirectedForPolicy
            | ProxyError::MethodNotAllowed
            | ProxyError::MalformedHead(_)
            | ProxyError::HeadTooLarge
            | ProxyError::UnsupportedTransferCoding
            | ProxyError::BodyTooLarge
            | ProxyError::SlowBody
            | ProxyError::AmbiguousLength
            | ProxyError::ClientBody(_) => ErrorSource::Downstream,
            ProxyError::UpstreamConnect { .. }
            | ProxyError::UpstreamTimeout { .. }
            | ProxyError::UpstreamReset { .. }
            | ProxyError::UpstreamProtocol { .. } => ErrorSource::Upstream,
            ProxyError::Internal(_) => ErrorSource::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::MissingHost
            | ProxyError::DuplicateHost
            | ProxyError::HostMismatch
            | ProxyError::BadHost(_)
            | ProxyError::MalformedHead(_)
            | ProxyError::AmbiguousLength
            | ProxyError::ClientBody(_) => StatusCode::BAD_REQUEST,
            ProxyError::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            ProxyError::UnknownHost
            | ProxyError::MisdirectedForCertificate
            | ProxyError::MisdirectedForPolicy => StatusCode::MISDIRECTED_REQUEST,
            ProxyError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::SlowBody => StatusCode::REQUEST_TIMEOUT,
            ProxyError::UpstreamConnect { .. }
            | ProxyError::UpstreamReset { .. }
            | ProxyError::UpstreamProtocol { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `kind` label for `portcullis_upstream_errors_total`, for origin faults.
    pub fn upstream_kind(&self) -> Option<UpstreamErrorKind> {
        match self {
            ProxyError::UpstreamConnect { .. } => Some(UpstreamErrorKind::Connect),
            ProxyError::UpstreamTimeout { .. } => Some(UpstreamErrorKind::Timeout),
            ProxyError::UpstreamReset { .. } => Some(UpstreamErrorKind::Reset),
            ProxyError::UpstreamProtocol { .. } => Some(UpstreamErrorKind::Protocol),
            ProxyError::MissingHost
            | ProxyError::DuplicateHost
            | ProxyError::HostMismatch
            | ProxyError::BadHost(_)
            | ProxyError::UnknownHost
            | ProxyError::MisdirectedForCertificate
            | ProxyError::MisdirectedForPolicy
            | ProxyError::MethodNotAllowed
            | ProxyError::MalformedHead(_)
            | ProxyError::HeadTooLarge
            | ProxyError::UnsupportedTransferCoding
            | ProxyError::BodyTooLarge
            | ProxyError::SlowBody
            | ProxyError::AmbiguousLength
            | ProxyError::ClientBody(_)
            | ProxyError::Internal(_) => None,
        }
    }

    /// A short plain-text answer. Origin details stay in the log, not in the page.
    pub fn to_response(&self, request_id: &HeaderValue) -> Response<ResponseBody> {
        let status = self.status();
        let text = match self.source_side() {
            ErrorSource::Downstream => format!("{}: {}\n", status, self),
            ErrorSource::Upstream | ErrorSource::Internal => format!(
                "{}\nrequest id: {}\n",
                status,
                request_id.to_str().unwrap_or("-")
            ),
        };
        let mut resp = Response::new(ResponseBody::full(text));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert("x-request-id", request_id.clone());
        if matches!(
            self,
            ProxyError::BodyTooLarge
                | ProxyError::SlowBody
                | ProxyError::AmbiguousLength
                | ProxyError::ClientBody(_)
                | ProxyError::MalformedHead(_)
                | ProxyError::HeadTooLarge
                | ProxyError::UnsupportedTransferCoding
        ) {
            // The rest of the request body is unread; the connection cannot be reused safely.
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status() {
        let reset = || ProxyError::UpstreamTimeout { origin: "o".into() };
        let cases: Vec<(ProxyError, u16, ErrorSource)> = vec![
            (ProxyError::MissingHost, 400, ErrorSource::Downstream),
            (ProxyError::DuplicateHost, 400, ErrorSource::Downstream),
            (ProxyError::HostMismatch, 400, ErrorSource::Downstream),
            (
                ProxyError::BadHost(portcullis_policy::HostError::Empty),
                400,
                ErrorSource::Downstream,
            ),
            (ProxyError::UnknownHost, 421, ErrorSource::Downstream),
            (
                ProxyError::MisdirectedForCertificate,
                421,
                ErrorSource::Downstream,
            ),
            (ProxyError::MethodNotAllowed, 405, ErrorSource::Downstream),
            (ProxyError::BodyTooLarge, 413, ErrorSource::Downstream),
            (ProxyError::SlowBody, 408, ErrorSource::Downstream),
            (ProxyError::AmbiguousLength, 400, ErrorSource::Downstream),
            (
                ProxyError::MalformedHead(httparse::Error::Token),
                400,
                ErrorSource::Downstream,
            ),
            (ProxyError::HeadTooLarge, 431, ErrorSource::Downstream),
            (
                ProxyError::UnsupportedTransferCoding,
                501,
                ErrorSource::Downstream,
            ),
            (
                ProxyError::UpstreamConnect {
                    origin: "o".into(),
                    source: ConnectError::Timeout(std::time::Duration::from_secs(1)),
                },
                502,
                ErrorSource::Upstream,
            ),
            (reset(), 504, ErrorSource::Upstream),
            (
                ProxyError::Internal(http::Error::from(
                    http::Method::from_bytes(b"").unwrap_err(),
                )),
                500,
                ErrorSource::Internal,
            ),
        ];
        let id = HeaderValue::from_static("abc");
        for (err, status, side) in cases {
            assert_eq!(err.status().as_u16(), status, "{err}");
            assert_eq!(err.source_side(), side, "{err}");
            assert_eq!(err.upstream_kind().is_some(), side == ErrorSource::Upstream);
            let resp = err.to_response(&id);
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(resp.headers()["x-request-id"], "abc");
        }
    }
}
