//! The audit log: `state_dir/audit.jsonl`, an append-only file of JSON lines in which every
//! record carries the hash of the one before it, so anyone holding the file can check that no
//! record was changed, removed, inserted or reordered (POLICY-SPEC.md, "Reload, audit,
//! metrics"). `portcullis audit verify` runs [`verify`].
//!
//! # Record format
//!
//! One JSON object per line (`\n`-terminated, UTF-8, no whitespace between tokens), its members
//! in this order:
//!
//! | member  | value |
//! |---|---|
//! | `seq`   | 1 for the first record, then +1 for each |
//! | `ts`    | when it was written, RFC 3339 UTC with milliseconds (`2026-11-26T10:00:00.123Z`) |
//! | `event` | one of the names below |
//! | …       | the event's fields (sorted by key) |
//! | `prev`  | the previous record's `hash`; 64 zeros for the first record |
//! | `hash`  | lowercase hex SHA-256, see below |
//!
//! # The hash
//!
//! `hash` is the SHA-256 of the record's own line with its `hash` member removed: the exact
//! bytes of the line minus the trailing newline, minus the final `,"hash":"<64 hex>"` (which is
//! always the last member, written with no spaces). Equivalently: take the line, drop its last
//! 75 bytes (`,"hash":"` + 64 hex + `"}`), append `}`, hash that. In Python:
//!
//! ```text
//! import hashlib, json
//! prev, seq = "0" * 64, 0
//! for raw in open("audit.jsonl", "rb"):
//!     line = raw.rstrip(b"\n"); rec = json.loads(line); seq += 1
//!     assert rec["seq"] == seq and rec["prev"] == prev
//!     assert line.endswith(b',"hash":"' + rec["hash"].encode() + b'"}')
//!     assert hashlib.sha256(line[:-75] + b"}").hexdigest() == rec["hash"]
//!     prev = rec["hash"]
//! print(seq, "records, last hash", prev)
//! ```
//!
//! A chain proves order and integrity, not authorship: whoever can write the file can rewrite
//! it from some record on and recompute every later hash. Publishing or copying the last hash
//! elsewhere from time to time (`audit verify` prints it) pins the history up to it.
//!
//! # Events the proxy writes
//!
//! - `policy_loaded` — a policy table went live: `serial`, `sha256` (of the file's bytes),
//!   `source` (`"file"` or `"last_good"`), `orders` (count), `added`, `removed`, `changed`
//!   (lists of order ids, against the table it replaced), `active` and `sealed` (ids; a sealed
//!   order's page is substituted with a generic one), `trigger`.
//! - `policy_reload_failed` — a reload found an invalid file and changed nothing: `trigger`
//!   (`watch`, `sighup`, `admin`, `hash_check`, `startup`), `error` (every error, as text).
//! - `policy_reload_refused` — a valid file that may not replace the running one: `trigger`,
//!   `reason` (e.g. a lower serial: an old file replayed to lift a block).
//! - `order_effective` / `order_ended` — this node started / stopped giving effect to an order
//!   (the DSA's "when effect was given"): `order` (id), `at` (RFC 3339).
//! - `connections_cut` — open exchanges of a newly blocked host were ended: `order`, `count`.
//! - `audit_chain_broken` — written by [`AuditLog::open`] itself when the file's tail could not
//!   be read (a torn write, a damaged disk): `after_seq`, `after_hash` (the last good record it
//!   continues from), `first_bad_line`, `skipped_lines`, `skipped_bytes`, `skipped_sha256`.
//!
//! The skipped lines stay in the file: [`verify`] still reports the break at them, and the
//! `audit_chain_broken` record right after says what happened.
//!
//! One process writes the file (the proxy); records are rare, so each is written, flushed and
//! `fsync`ed before [`AuditLog::append`] returns.

mod verify;

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;

pub use verify::{BreakReason, VerifyError, VerifyReport, verify};

/// The names of the events the proxy writes (see the module docs for their fields).
pub mod event {
    /// A policy table went live.
    pub const POLICY_LOADED: &str = "policy_loaded";
    /// A reload found an invalid file and changed nothing.
    pub const POLICY_RELOAD_FAILED: &str = "policy_reload_failed";
    /// A valid file was refused (e.g. its serial is lower than the running one).
    pub const POLICY_RELOAD_REFUSED: &str = "policy_reload_refused";
    /// A policy bundle was refused (unsigned, bad signature, untrusted key, malformed, or a
    /// serial not higher than the running one), with its reason and key id.
    pub const BUNDLE_REFUSED: &str = "bundle_refused";
    /// This node started giving effect to an order.
    pub const ORDER_EFFECTIVE: &str = "order_effective";
    /// This node stopped giving effect to an order (expired or lifted).
    pub const ORDER_ENDED: &str = "order_ended";
    /// Open exchanges of a newly blocked host were ended.
    pub const CONNECTIONS_CUT: &str = "connections_cut";
    /// Written by [`AuditLog::open`](super::AuditLog::open) when the file's tail was unreadable.
    pub const AUDIT_CHAIN_BROKEN: &str = "audit_chain_broken";
}

/// `prev` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Members the log writes itself; an event's fields may not use them.
const RESERVED: [&str; 5] = ["seq", "ts", "event", "prev", "hash"];

/// Length of the `,"hash":"<64 hex>"}` ending of every line.
const HASH_SUFFIX_LEN: usize = 75;

/// The file name inside `state_dir`.
pub const FILE_NAME: &str = "audit.jsonl";

/// An open audit log, positioned after its last record.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    seq: u64,
    last_hash: String,
    repaired: Option<ChainRepair>,
    /// A write failed part-way: the file's tail is unknown until it is read again.
    dirty: bool,
}

/// Where a record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecordInfo {
    /// Its `seq` (1-based).
    pub seq: u64,
    /// Its `hash` (lowercase hex).
    pub hash: String,
}

/// What [`AuditLog::open`] found and did when the file's tail was unreadable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainRepair {
    /// The last readable record the chain continues from (`None`: none was readable).
    pub after_seq: Option<u64>,
    /// 1-based line number of the first unreadable line.
    pub first_bad_line: usize,
    /// Unreadable lines after the last good record (left in the file).
    pub skipped_lines: usize,
    /// Their size in bytes.
    pub skipped_bytes: usize,
    /// The `audit_chain_broken` record written to say so.
    pub record: AuditRecordInfo,
}

/// Why the audit log could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Creating, reading or writing the file (or its folder) failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// [`AuditLog::append`] was given fields that are not a JSON object.
    #[error("audit fields must be a JSON object")]
    FieldsNotObject,
    /// A field named like a member the log writes itself.
    #[error("audit field {0:?} is reserved for the log itself")]
    ReservedField(String),
}

impl AuditLog {
    /// Opens `path` for appending, creating its folder and the file (mode 0600) if missing,
    /// and continues the chain from the last record.
    ///
    /// A tail that cannot be read (not JSON, a torn line, a record whose hash does not
    /// recompute) does not stop the proxy: the chain continues from the last good record, an
    /// `audit_chain_broken` record is appended, a warning is logged, and [`AuditLog::repaired`]
    /// says what was found. Only I/O errors fail.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let io_err = |source| AuditError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err)?;
        }
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path).map_err(io_err)?;
        let content = std::fs::read(path).map_err(io_err)?;
        let tail = scan_tail(&content);
        let mut log = AuditLog {
            path: path.to_owned(),
            file,
            seq: tail.last.as_ref().map_or(0, |r| r.seq),
            last_hash: tail
                .last
                .as_ref()
                .map_or_else(|| GENESIS_HASH.to_owned(), |r| r.hash.clone()),
            repaired: None,
            dirty: false,
        };
        if !content.is_empty() && !content.ends_with(b"\n") {
            // A torn last line: start the next record on a line of its own.
            log.write_bytes(b"\n")?;
        }
        if let Some(bad) = tail.bad {
            let fields = serde_json::json!({
                "after_seq": tail.last.as_ref().map(|r| r.seq),
                "after_hash": log.last_hash,
                "first_bad_line": bad.first_line,
                "skipped_lines": bad.lines,
                "skipped_bytes": bad.bytes,
                "skipped_sha256": bad.sha256,
            });
            let record = log.append(event::AUDIT_CHAIN_BROKEN, fields)?;
            tracing::warn!(
                path = %path.display(),
                first_bad_line = bad.first_line,
                skipped_lines = bad.lines,
                seq = record.seq,
                "audit log tail unreadable; the chain continues from the last good record"
            );
            log.repaired = Some(ChainRepair {
                after_seq: tail.last.map(|r| r.seq),
                first_bad_line: bad.first_line,
                skipped_lines: bad.lines,
                skipped_bytes: bad.bytes,
                record,
            });
        }
        Ok(log)
    }

    /// What [`AuditLog::open`] repaired, if the file's tail was unreadable.
    pub fn repaired(&self) -> Option<&ChainRepair> {
        self.repaired.as_ref()
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last record written or found (`seq` 0 and [`GENESIS_HASH`] for an empty log).
    pub fn last(&self) -> AuditRecordInfo {
        AuditRecordInfo {
            seq: self.seq,
            hash: self.last_hash.clone(),
        }
    }

    /// Appends one record for `event` with `fields` (a JSON object whose keys are not `seq`,
    /// `ts`, `event`, `prev` or `hash`), and returns once it is on disk.
    pub fn append(&mut self, event: &str, fields: Value) -> Result<AuditRecordInfo, AuditError> {
        let Value::Object(fields) = fields else {
            return Err(AuditError::FieldsNotObject);
        };
        if let Some(key) = fields.keys().find(|k| RESERVED.contains(&k.as_str())) {
            return Err(AuditError::ReservedField(key.clone()));
        }
        if self.dirty {
            // A failed write may have left half a line; reopening finds it and records it.
            let reopened = AuditLog::open(&self.path)?;
            let repaired = reopened.repaired.clone().or(self.repaired.take());
            *self = reopened;
            self.repaired = repaired;
        }
        let seq = self.seq + 1;
        let unhashed = unhashed_line(
            seq,
            &timestamp(OffsetDateTime::now_utc()),
            event,
            &fields,
            &self.last_hash,
        );
        let hash = hex::encode(Sha256::digest(unhashed.as_bytes()));
        let mut line = unhashed;
        line.pop(); // the closing brace
        line.push_str(",\"hash\":\"");
        line.push_str(&hash);
        line.push_str("\"}\n");
        self.write_bytes(line.as_bytes())?;
        self.seq = seq;
        self.last_hash.clone_from(&hash);
        Ok(AuditRecordInfo { seq, hash })
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), AuditError> {
        let result = self
            .file
            .write_all(bytes)
            .and_then(|()| self.file.flush())
            .and_then(|()| self.file.sync_data());
        result.map_err(|source| {
            self.dirty = true;
            AuditError::Io {
                path: self.path.clone(),
                source,
            }
        })
    }
}

/// The record without its `hash` member: exactly the bytes that are hashed.
fn unhashed_line(
    seq: u64,
    ts: &str,
    event: &str,
    fields: &Map<String, Value>,
    prev: &str,
) -> String {
    // `Value`'s Display is serde_json's compact form, with JSON string escaping.
    let mut line = format!(
        "{{\"seq\":{seq},\"ts\":{},\"event\":{}",
        Value::from(ts),
        Value::from(event)
    );
    for (key, value) in fields {
        line.push(',');
        line.push_str(&Value::from(key.as_str()).to_string());
        line.push(':');
        line.push_str(&value.to_string());
    }
    line.push_str(",\"prev\":");
    line.push_str(&Value::from(prev).to_string());
    line.push('}');
    line
}

/// RFC 3339, UTC, milliseconds: `2026-11-26T10:00:00.123Z`.
pub(crate) fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A record read back: enough to continue the chain.
#[derive(Debug)]
struct Tail {
    seq: u64,
    hash: String,
}

/// Unreadable lines after the last good record.
#[derive(Debug)]
struct BadTail {
    first_line: usize,
    lines: usize,
    bytes: usize,
    sha256: String,
}

#[derive(Debug)]
struct Scan {
    last: Option<Tail>,
    bad: Option<BadTail>,
}

/// Finds the last record that reads as a record and whose hash recomputes, and whatever
/// follows it. Only the tail is judged: the chain before it is [`verify`]'s business.
fn scan_tail(content: &[u8]) -> Scan {
    // (1-based line number, line), empty lines left out; numbers count them, as an editor does.
    let lines: Vec<(usize, &[u8])> = content
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| (i + 1, l))
        .collect();
    let good = lines.iter().rposition(|(_, l)| own_hash(l).is_some());
    let last = good
        .and_then(|i| lines.get(i))
        .and_then(|(_, l)| own_hash(l));
    let rest = lines.get(good.map_or(0, |i| i + 1)..).unwrap_or(&[]);
    let bad = rest.first().map(|&(first_line, _)| {
        let mut digest = Sha256::new();
        let mut bytes = 0;
        for (_, l) in rest {
            digest.update(l);
            digest.update(b"\n");
            bytes += l.len() + 1;
        }
        BadTail {
            first_line,
            lines: rest.len(),
            bytes,
            sha256: hex::encode(digest.finalize()),
        }
    });
    Scan { last, bad }
}

/// `seq` and `hash` of a line whose hash recomputes; `None` for anything else.
fn own_hash(line: &[u8]) -> Option<Tail> {
    let value: Value = serde_json::from_slice(line).ok()?;
    let seq = value.get("seq")?.as_u64()?;
    let hash = value.get("hash")?.as_str()?;
    hash_matches(line, hash).then(|| Tail {
        seq,
        hash: hash.to_owned(),
    })
}

/// Whether `line` ends with `,"hash":"<hash>"}` and `hash` is the SHA-256 of the rest.
fn hash_matches(line: &[u8], hash: &str) -> bool {
    let suffix = format!(",\"hash\":\"{hash}\"}}");
    if hash.len() != 64 || !line.ends_with(suffix.as_bytes()) {
        return false;
    }
    let Some(body) = line.get(..line.len() - HASH_SUFFIX_LEN) else {
        return false;
    };
    let mut digest = Sha256::new();
    digest.update(body);
    digest.update(b"}");
    hex::encode(digest.finalize()) == hash
}

#[cfg(test)]
mod tests;
