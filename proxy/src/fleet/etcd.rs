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

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

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

/// One key-value pair as etcd stores it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

/// A range answer: the store's revision when it was read, and the pairs found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub revision: i64,
    pub kvs: Vec<Kv>,
}

/// What a compare-and-put expects of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The key does not exist (`create_revision == 0`).
    Absent,
    /// The key was last modified at this revision.
    ModRevision(i64),
}

/// A transaction's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Txn {
    pub succeeded: bool,
    pub revision: i64,
}

/// One change a watch reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Put(Kv),
    Delete(Kv),
}

/// One message of a watch stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchMessage {
    /// The watch is established.
    Created { revision: i64 },
    /// Changes, in revision order (`revision` is the store's at the time).
    Events { revision: i64, events: Vec<Event> },
    /// etcd ended the watch; `compact_revision > 0` means the start revision was compacted
    /// away (read the key afresh and watch from there).
    Canceled {
        compact_revision: i64,
        reason: String,
    },
}

/// base64 of `bytes`, as the gateway wants keys and values.
pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// The end of the range of every key starting with `prefix` (etcd's `range_end` convention).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): every key from `prefix` on.
    vec![0]
}

/// An int64 field: a JSON string (the gateway's way), a number, or absent (zero).
pub fn int64(v: Option<&Value>) -> Result<i64, String> {
    match v {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) => s.parse().map_err(|_| format!("{s:?} is not an int64")),
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| format!("{n} is not an int64")),
        Some(other) => Err(format!("{other} is not an int64")),
    }
}

fn bytes_field(v: Option<&Value>) -> Result<Vec<u8>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => B64
            .decode(s.as_bytes())
            .map_err(|e| format!("not base64: {e}")),
        Some(other) => Err(format!("{other} is not a base64 string")),
    }
}

/// Decodes one `kv` object.
pub fn decode_kv(v: &Value) -> Result<Kv, String> {
    Ok(Kv {
        key: bytes_field(v.get("key"))?,
        value: bytes_field(v.get("value"))?,
        create_revision: int64(v.get("create_revision"))?,
        mod_revision: int64(v.get("mod_revision"))?,
        version: int64(v.get("version"))?,
        lease: int64(v.get("lease"))?,
    })
}

fn header_revision(v: &Value) -> Result<i64, String> {
    int64(v.get("header").and_then(|h| h.get("revision")))
}

/// Decodes a `/v3/kv/range` answer.
pub fn decode_range(v: &Value) -> Result<Range, String> {
    let kvs = match v.get("kvs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(decode_kv).collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("kvs is {other}, not a list")),
    };
    Ok(Range {
        revision: header_revision(v)?,
        kvs,
    })
}

/// Decodes one message of a watch stream (`{"result": {...}}` or `{"error": {...}}`).
pub fn decode_watch(v: &Value) -> Result<WatchMessage, String> {
    if let Some(e) = v.get("error") {
        return Err(format!("watch error: {e}"));
    }
    let r = v.get("result").ok_or_else(|| format!("no result in {v}"))?;
    let revision = header_revision(r)?;
    if r.get("canceled").and_then(Value::as_bool) == Some(true) {
        return Ok(WatchMessage::Canceled {
            compact_revision: int64(r.get("compact_revision"))?,
            reason: r
                .get("cancel_reason")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        });
    }
    if r.get("created").and_then(Value::as_bool) == Some(true) {
        return Ok(WatchMessage::Created { revision });
    }
    let mut events = Vec::new();
    if let Some(list) = r.get("events") {
        let list = list
            .as_array()
            .ok_or_else(|| format!("events is {list}, not a list"))?;
        for e in list {
            let kv = decode_kv(e.get("kv").unwrap_or(&Value::Null))?;
            // PUT is the enum's first value, so the gateway leaves it out.
            events.push(match e.get("type").and_then(Value::as_str) {
                None | Some("PUT") => Event::Put(kv),
                Some("DELETE") => Event::Delete(kv),
                Some(other) => return Err(format!("unknown event type {other:?}")),
            });
        }
    }
    Ok(WatchMessage::Events { revision, events })
}

/// The body of a `/v3/kv/range` for one key, or for every key under `prefix` with `prefix`.
pub fn range_request(key: &[u8], prefix: bool) -> Value {
    let mut body = json!({ "key": b64(key) });
    if prefix {
        body["range_end"] = b64(&prefix_end(key)).into();
    }
    body
}

/// The body of a `/v3/kv/put`.
pub fn put_request(key: &[u8], value: &[u8], lease: Option<i64>) -> Value {
    let mut body = json!({ "key": b64(key), "value": b64(value) });
    if let Some(id) = lease {
        body["lease"] = id.to_string().into();
    }
    body
}

/// The body of a `/v3/kv/txn` that puts `value` only if the key is as `expect` says.
pub fn txn_put_request(key: &[u8], value: &[u8], expect: Expect) -> Value {
    let compare = match expect {
        Expect::Absent => json!({
            "key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0",
        }),
        Expect::ModRevision(rev) => json!({
            "key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": rev.to_string(),
        }),
    };
    json!({
        "compare": [compare],
        "success": [{ "request_put": { "key": b64(key), "value": b64(value) } }],
    })
}

/// The body of a `/v3/watch` that watches one key from `start_revision` on.
pub fn watch_request(key: &[u8], start_revision: i64) -> Value {
    json!({ "create_request": {
        "key": b64(key),
        "start_revision": start_revision.to_string(),
    }})
}

/// Splits a streaming answer into its JSON objects, whatever the chunk boundaries.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

/// A streamed object may not grow past this (a policy bundle of a million hosts is ~30 MB,
/// base64 makes it 40).
const MAX_FRAME: usize = 128 << 20;

impl Framer {
    /// Adds `chunk` and returns every object now complete.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Value>, String> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut consumed = 0;
        {
            let mut stream = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
            loop {
                match stream.next() {
                    Some(Ok(v)) => {
                        consumed = stream.byte_offset();
                        out.push(v);
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(e)) => return Err(format!("not a JSON stream: {e}")),
                    None => {
                        consumed = self.buf.len();
                        break;
                    }
                }
            }
        }
        self.buf.drain(..consumed);
        if self.buf.len() > MAX_FRAME {
            return Err(format!("a streamed message exceeds {MAX_FRAME} bytes"));
        }
        Ok(out)
    }
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
