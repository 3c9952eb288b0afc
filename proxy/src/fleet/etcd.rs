//! A small etcd v3 client over etcd's JSON gRPC gateway (HTTP/1.1), for the fleet policy
//! source and the `policy publish` / `fleet status` commands.
//!
//! Why not the `etcd-client` crate: it generates its gRPC code with `protoc` at build time, so a
//! fresh machine without `protobuf-compiler` could no longer run `cargo run --release -- demo`.
//! Every etcd since 3.4 serves the same API as JSON over plain HTTP (the gRPC gateway), and the
//! handful of calls the fleet needs (range, put, txn, watch, lease grant/keepalive/revoke,
//! compaction) are a few lines each on the hyper client already in the workspace.
//!
//! The gateway's conventions, as etcd 3.4 speaks them: every call is a `POST /v3/...` with a
//! JSON body; keys and values are base64; int64 fields are JSON strings; fields at their default
//! (zero, empty, false, the first enum value) are left out. Streaming calls (`/v3/watch`,
//! `/v3/lease/keepalive`) answer with a chunked body of JSON objects `{"result": {...}}` (one per
//! message, each followed by a newline), or `{"error": {...}}`.
//!
//! Only `http://` endpoints: TLS to etcd is not supported yet (config validation says so).
//! Several endpoints are tried in order, starting with the last one that answered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

mod codec;

pub use codec::{
    Event, Expect, Framer, Kv, Range, Txn, WatchMessage, b64, decode_kv, decode_range,
    decode_watch, header_revision, int64, prefix_end, put_request, range_request, txn_put_request,
    watch_request,
};

/// What went wrong talking to etcd; every variant names the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("{endpoint}: cannot connect: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{endpoint}: HTTP exchange failed: {source}")]
    Http {
        endpoint: String,
        #[source]
        source: hyper::Error,
    },
    #[error("{endpoint}: no answer within {timeout:?}")]
    Timeout { endpoint: String, timeout: Duration },
    #[error("{endpoint}{path}: etcd answered {status}: {message}")]
    Status {
        endpoint: String,
        path: &'static str,
        status: u16,
        message: String,
    },
    #[error("{endpoint}{path}: unexpected answer: {detail}")]
    Decode {
        endpoint: String,
        path: &'static str,
        detail: String,
    },
    #[error("{0}")]
    Endpoint(String),
    #[error("no etcd endpoint answered ({0})")]
    Unreachable(String),
}

/// An etcd cluster, reached through the first of its endpoints that answers.
#[derive(Debug)]
pub struct Client {
    /// `host:port` of each endpoint, in the configured order.
    endpoints: Vec<String>,
    /// The endpoint that answered last; tried first.
    preferred: AtomicUsize,
    timeout: Duration,
}

/// Default limit of one unary call (connect, request, answer).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// `http://host:port[/]` → `host:port` (port 80 when absent); anything else is refused.
pub fn endpoint_authority(url: &str) -> Result<String, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "{url:?}: https to etcd is not supported yet (use http:// on a trusted network or loopback)"
            ));
        }
        _ => return Err(format!("{url:?} must start with http://")),
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{url:?} has no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("{url:?} must not carry credentials"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!("{url:?} must be just scheme, host and port"));
    }
    Ok(format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    ))
}

impl Client {
    /// A client for these `http://` endpoints (checked here too, for the CLI).
    pub fn new(endpoints: &[String]) -> Result<Client, EtcdError> {
        if endpoints.is_empty() {
            return Err(EtcdError::Endpoint("no etcd endpoint given".into()));
        }
        let endpoints = endpoints
            .iter()
            .map(|e| endpoint_authority(e).map_err(EtcdError::Endpoint))
            .collect::<Result<_, _>>()?;
        Ok(Client {
            endpoints,
            preferred: AtomicUsize::new(0),
            timeout: CALL_TIMEOUT,
        })
    }

    /// The same client with another limit per unary call.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The endpoints in the order to try them: the last one that answered first.
    fn order(&self) -> impl Iterator<Item = (usize, &str)> {
        let n = self.endpoints.len();
        let first = self.preferred.load(Ordering::Relaxed) % n;
        (0..n).map(move |i| {
            let at = (first + i) % n;
            (at, self.endpoints[at].as_str())
        })
    }

    /// Sends `body` to `path` on one endpoint and returns the response, status checked.
    async fn send(
        endpoint: &str,
        path: &'static str,
        body: &Value,
    ) -> Result<hyper::Response<Incoming>, EtcdError> {
        let tcp = tokio::net::TcpStream::connect(endpoint)
            .await
            .map_err(|source| EtcdError::Connect {
                endpoint: endpoint.to_owned(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let http_err = |source| EtcdError::Http {
            endpoint: endpoint.to_owned(),
            source,
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(http_err)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = hyper::Request::post(path)
            .header(http::header::HOST, endpoint)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| EtcdError::Decode {
                endpoint: endpoint.to_owned(),
                path,
                detail: format!("cannot build the request: {e}"),
            })?;
        let resp = sender.send_request(req).await.map_err(http_err)?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
            .unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or(text);
        Err(EtcdError::Status {
            endpoint: endpoint.to_owned(),
            path,
            status,
            message,
        })
    }

    /// One unary call on one endpoint, bounded by the timeout.
    async fn call_one(
        &self,
        endpoint: &str,
        path: &'static str,
        body: &Value,
    ) -> Result<Value, EtcdError> {
        let exchange = async {
            let resp = Self::send(endpoint, path, body).await?;
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|source| EtcdError::Http {
                    endpoint: endpoint.to_owned(),
                    source,
                })?
                .to_bytes();
            serde_json::from_slice::<Value>(&bytes).map_err(|e| EtcdError::Decode {
                endpoint: endpoint.to_owned(),
                path,
                detail: e.to_string(),
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(EtcdError::Timeout {
                    endpoint: endpoint.to_owned(),
                    timeout: self.timeout,
                })
            })
    }

    /// A unary call: each endpoint in turn until one answers.
    async fn call(&self, path: &'static str, body: Value) -> Result<(String, Value), EtcdError> {
        let mut errors = Vec::new();
        for (at, endpoint) in self.order() {
            match self.call_one(endpoint, path, &body).await {
                Ok(v) => {
                    self.preferred.store(at, Ordering::Relaxed);
                    return Ok((endpoint.to_owned(), v));
                }
                // etcd answered: another endpoint of the same cluster would answer the same.
                Err(e @ EtcdError::Status { .. }) => return Err(e),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(EtcdError::Unreachable(errors.join("; ")))
    }

    fn decode<T>(
        endpoint: String,
        path: &'static str,
        r: Result<T, String>,
    ) -> Result<T, EtcdError> {
        r.map_err(|detail| EtcdError::Decode {
            endpoint,
            path,
            detail,
        })
    }

    /// Reads one key (or every key under it with `prefix`).
    pub async fn range(&self, key: &[u8], prefix: bool) -> Result<Range, EtcdError> {
        const PATH: &str = "/v3/kv/range";
        let (endpoint, v) = self.call(PATH, range_request(key, prefix)).await?;
        Self::decode(endpoint, PATH, decode_range(&v))
    }

    /// Writes one key, attached to `lease` if given; returns the new revision.
    pub async fn put(
        &self,
        key: &[u8],
        value: &[u8],
        lease: Option<i64>,
    ) -> Result<i64, EtcdError> {
        const PATH: &str = "/v3/kv/put";
        let (endpoint, v) = self.call(PATH, put_request(key, value, lease)).await?;
        Self::decode(endpoint, PATH, header_revision(&v))
    }

    /// Puts `value` only if the key is as `expect` says, in one transaction.
    pub async fn put_if(&self, key: &[u8], value: &[u8], expect: Expect) -> Result<Txn, EtcdError> {
        const PATH: &str = "/v3/kv/txn";
        let (endpoint, v) = self.call(PATH, txn_put_request(key, value, expect)).await?;
        let revision = Self::decode(endpoint, PATH, header_revision(&v))?;
        Ok(Txn {
            succeeded: v.get("succeeded").and_then(Value::as_bool) == Some(true),
            revision,
        })
    }

    /// Grants a lease of `ttl`; returns its id.
    pub async fn lease_grant(&self, ttl: Duration) -> Result<i64, EtcdError> {
        const PATH: &str = "/v3/lease/grant";
        let body = json!({ "TTL": ttl.as_secs().max(1).to_string() });
        let (endpoint, v) = self.call(PATH, body).await?;
        let id = Self::decode(endpoint.clone(), PATH, int64(v.get("ID")))?;
        if id == 0 {
            return Err(EtcdError::Decode {
                endpoint,
                path: PATH,
                detail: format!("no lease id in {v}"),
            });
        }
        Ok(id)
    }

    /// Refreshes a lease once; returns its remaining TTL in seconds (0: the lease is gone).
    pub async fn lease_keepalive(&self, id: i64) -> Result<i64, EtcdError> {
        const PATH: &str = "/v3/lease/keepalive";
        // A bidirectional stream in gRPC; one request body is one keepalive, and its single
        // answer arrives as `{"result": {...}}`.
        let (endpoint, v) = self.call(PATH, json!({ "ID": id.to_string() })).await?;
        let result = v.get("result").unwrap_or(&v);
        Self::decode(endpoint, PATH, int64(result.get("TTL")))
    }

    /// Revokes a lease (its keys go at once).
    pub async fn lease_revoke(&self, id: i64) -> Result<(), EtcdError> {
        self.call("/v3/lease/revoke", json!({ "ID": id.to_string() }))
            .await
            .map(|_| ())
    }

    /// Compacts the store's history up to `revision`.
    pub async fn compact(&self, revision: i64) -> Result<(), EtcdError> {
        let body = json!({ "revision": revision.to_string(), "physical": true });
        self.call("/v3/kv/compaction", body).await.map(|_| ())
    }

    /// Opens a watch of `key` from `start_revision`; the first message is read before this
    /// returns, so an established watch is known to be one.
    pub async fn watch(&self, key: &[u8], start_revision: i64) -> Result<Watch, EtcdError> {
        const PATH: &str = "/v3/watch";
        let body = watch_request(key, start_revision);
        let mut errors = Vec::new();
        for (at, endpoint) in self.order() {
            let open = tokio::time::timeout(self.timeout, Self::send(endpoint, PATH, &body)).await;
            match open {
                Ok(Ok(resp)) => {
                    self.preferred.store(at, Ordering::Relaxed);
                    return Ok(Watch {
                        endpoint: endpoint.to_owned(),
                        body: resp.into_body(),
                        framer: Framer::default(),
                        pending: std::collections::VecDeque::new(),
                    });
                }
                Ok(Err(e @ EtcdError::Status { .. })) => return Err(e),
                Ok(Err(e)) => errors.push(e.to_string()),
                Err(_) => errors.push(
                    EtcdError::Timeout {
                        endpoint: endpoint.to_owned(),
                        timeout: self.timeout,
                    }
                    .to_string(),
                ),
            }
        }
        Err(EtcdError::Unreachable(errors.join("; ")))
    }
}

/// An open watch stream.
#[derive(Debug)]
pub struct Watch {
    endpoint: String,
    body: Incoming,
    framer: Framer,
    pending: std::collections::VecDeque<Value>,
}

impl Watch {
    /// The next message; `None` when etcd closed the stream.
    pub async fn next(&mut self) -> Result<Option<WatchMessage>, EtcdError> {
        const PATH: &str = "/v3/watch";
        loop {
            if let Some(v) = self.pending.pop_front() {
                return Client::decode(self.endpoint.clone(), PATH, decode_watch(&v)).map(Some);
            }
            let Some(frame) = self.body.frame().await else {
                return Ok(None);
            };
            let frame = frame.map_err(|source| EtcdError::Http {
                endpoint: self.endpoint.clone(),
                source,
            })?;
            if let Ok(data) = frame.into_data() {
                let values = Client::decode(self.endpoint.clone(), PATH, self.framer.push(&data))?;
                self.pending.extend(values);
            }
        }
    }
}

#[cfg(test)]
mod tests;
