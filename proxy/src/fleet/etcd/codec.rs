//! The gateway's JSON, both ways: request bodies, answers, watch messages and the framing of
//! a streamed answer. Pure (no IO), so every shape is unit tested against captured answers.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

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

/// `header.revision` of an answer.
pub fn header_revision(v: &Value) -> Result<i64, String> {
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
