//! `portcullis audit verify`: reads an audit log from its first line and checks the chain,
//! stopping at the first record that breaks it.

use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{GENESIS_HASH, hash_matches};

/// An intact log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// How many records (also the last `seq`).
    pub records: u64,
    /// The last record's hash ([`GENESIS_HASH`] for an empty log): publish it to pin the
    /// history up to here.
    pub last_hash: String,
    /// `ts` of the first and last records (`None` for an empty log).
    pub first_ts: Option<String>,
    pub last_ts: Option<String>,
}

/// Why [`verify`] failed: the file could not be read, or the first record that breaks the
/// chain.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Every record before `line` is intact.
    #[error(
        "{}: line {line}{}: {reason}",
        path.display(),
        seq.map(|s| format!(" (seq {s})")).unwrap_or_default()
    )]
    Broken {
        path: PathBuf,
        /// 1-based line number in the file.
        line: usize,
        /// The record's `seq`, if it could be read.
        seq: Option<u64>,
        reason: BreakReason,
    },
}

/// What is wrong with the first broken record.
#[derive(Debug, thiserror::Error)]
pub enum BreakReason {
    #[error("empty line")]
    EmptyLine,
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("not a JSON object")]
    NotObject,
    #[error("no {0} member of the right type")]
    Missing(&'static str),
    #[error("hash does not match its content")]
    HashMismatch,
    #[error("seq {found} follows {previous}")]
    SeqGap { found: u64, previous: u64 },
    #[error("the first record must have seq 1")]
    FirstSeq,
    #[error("prev is not 64 zeros, as the first record's must be")]
    FirstPrev,
    #[error("prev does not match record {0}'s hash")]
    PrevMismatch(u64),
    #[error("the file does not end with a newline (a torn last write)")]
    NoFinalNewline,
}

/// Checks every line of the log at `path`: valid JSON, `seq` 1, 2, 3…, `prev` equal to the
/// previous record's `hash`, and `hash` recomputing over the line (see the module docs).
pub fn verify(path: &Path) -> Result<VerifyReport, VerifyError> {
    let content = std::fs::read(path).map_err(|source| VerifyError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut report = VerifyReport {
        records: 0,
        last_hash: GENESIS_HASH.to_owned(),
        first_ts: None,
        last_ts: None,
    };
    let body = content.strip_suffix(b"\n").unwrap_or(&content);
    if body.is_empty() {
        return Ok(report);
    }
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let broken = |seq, reason| VerifyError::Broken {
            path: path.to_owned(),
            line: i + 1,
            seq,
            reason,
        };
        let (seq, ts, hash) = check_record(line, &report).map_err(|(seq, r)| broken(seq, r))?;
        report.records = seq;
        report.first_ts.get_or_insert_with(|| ts.clone());
        report.last_ts = Some(ts);
        report.last_hash = hash;
    }
    if !content.ends_with(b"\n") {
        return Err(VerifyError::Broken {
            path: path.to_owned(),
            line: body.split(|&b| b == b'\n').count(),
            seq: Some(report.records),
            reason: BreakReason::NoFinalNewline,
        });
    }
    Ok(report)
}

/// One line against the chain so far: its `seq`, `ts` and `hash`, or the record's seq (if readable)
/// and what is wrong.
fn check_record(
    line: &[u8],
    so_far: &VerifyReport,
) -> Result<(u64, String, String), (Option<u64>, BreakReason)> {
    if line.is_empty() {
        return Err((None, BreakReason::EmptyLine));
    }
    let value: Value = serde_json::from_slice(line).map_err(|e| (None, BreakReason::NotJson(e)))?;
    let Value::Object(record) = value else {
        return Err((None, BreakReason::NotObject));
    };
    let seq = record.get("seq").and_then(Value::as_u64);
    let field = |name: &'static str| {
        record
            .get(name)
            .and_then(Value::as_str)
            .ok_or((seq, BreakReason::Missing(name)))
    };
    let seq_value = seq.ok_or((None, BreakReason::Missing("seq")))?;
    let hash = field("hash")?;
    let prev = field("prev")?;
    let ts = field("ts")?;
    field("event")?;
    if !hash_matches(line, hash) {
        return Err((seq, BreakReason::HashMismatch));
    }
    let previous = so_far.records;
    if seq_value != previous + 1 {
        return Err((
            seq,
            if previous == 0 {
                BreakReason::FirstSeq
            } else {
                BreakReason::SeqGap {
                    found: seq_value,
                    previous,
                }
            },
        ));
    }
    if prev != so_far.last_hash {
        return Err((
            seq,
            if previous == 0 {
                BreakReason::FirstPrev
            } else {
                BreakReason::PrevMismatch(previous)
            },
        ));
    }
    Ok((seq_value, ts.to_owned(), hash.to_owned()))
}
