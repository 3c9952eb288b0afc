use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::*;

fn log_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("state").join(FILE_NAME)
}

/// A log of `n` `policy_loaded` records (serial 1..=n).
fn write_records(path: &Path, n: u64) -> Vec<AuditRecordInfo> {
    let mut log = AuditLog::open(path).expect("open");
    (1..=n)
        .map(|serial| {
            log.append(
                event::POLICY_LOADED,
                json!({"serial": serial, "source": "file", "added": ["A"], "removed": [], "changed": []}),
            )
            .expect("append")
        })
        .collect()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn rewrite(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).expect("write");
}

/// The break [`verify`] reports, as (line, seq, reason text).
fn broken_at(path: &Path) -> (usize, Option<u64>, String) {
    match verify(path) {
        Err(VerifyError::Broken {
            line, seq, reason, ..
        }) => (line, seq, reason.to_string()),
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

#[test]
fn records_round_trip_and_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_in(&dir);
    let written = write_records(&path, 3);
    assert_eq!(written.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
    let report = verify(&path).expect("intact");
    assert_eq!(report.records, 3);
    assert_eq!(Some(&report.last_hash), written.last().map(|r| &r.hash));
    let ts = report.first_ts.expect("first ts");
    assert_eq!(ts.len(), "2026-11-26T10:00:00.123Z".len(), "{ts}");
    assert!(
        time::OffsetDateTime::parse(&ts, &time::format_description::well_known::Rfc3339).is_ok()
    );
    assert!(
        ts.ends_with('Z') && ts.as_bytes().get(19) == Some(&b'.'),
        "{ts}"
    );

    let lines = lines(&path);
    let first = lines.first().expect("a line");
    assert!(first.starts_with(r#"{"seq":1,"ts":""#), "{first}");
    let order: Vec<usize> = [
        "\"seq\"",
        "\"ts\"",
        "\"event\"",
        "\"serial\"",
        "\"prev\"",
        "\"hash\"",
    ]
    .iter()
    .map(|k| first.find(k).expect(k))
    .collect();
    assert!(order.is_sorted(), "members out of order: {first}");
    assert!(first.contains(&format!(r#""prev":"{GENESIS_HASH}""#)));
    // The documented rule, recomputed independently: drop the last 75 bytes, add `}`.
    for (line, record) in lines.iter().zip(&written) {
        let body = format!("{}}}", &line[..line.len() - 75]);
        assert_eq!(hex::encode(Sha256::digest(body.as_bytes())), record.hash);
        let value: Value = serde_json::from_str(line).expect("json");
        assert_eq!(value["hash"], record.hash.as_str());
    }
}

#[cfg(unix)]
#[test]
fn the_file_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_in(&dir);
    write_records(&path, 1);
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn reopening_continues_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_in(&dir);
    let first = write_records(&path, 2);
    let mut log = AuditLog::open(&path).expect("reopen");
    assert!(log.repaired().is_none());
    assert_eq!(Some(&log.last()), first.last());
    let next = log
        .append(
            event::ORDER_EFFECTIVE,
            json!({"order": "X-1", "at": "2026-11-21T00:00:00Z"}),
        )
        .expect("append");
    assert_eq!(next.seq, 3);
    let lines = lines(&path);
    let third: Value = serde_json::from_str(lines.get(2).expect("3 lines")).expect("json");
    assert_eq!(
        Some(third["prev"].as_str()),
        first.last().map(|r| Some(r.hash.as_str()))
    );
    assert_eq!(verify(&path).expect("intact").records, 3);
}

#[test]
fn awkward_text_stays_on_one_line_and_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_in(&dir);
    let mut log = AuditLog::open(&path).expect("open");
    log.append(
        event::POLICY_RELOAD_FAILED,
        json!({"trigger": "watch", "error": "policy.yaml:3: \"quoted\"\nnext line\t\u{0}é 名"}),
    )
    .expect("append");
    assert_eq!(lines(&path).len(), 1);
    assert_eq!(verify(&path).expect("intact").records, 1);
}

#[test]
fn fields_must_be_an_object_without_reserved_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = AuditLog::open(&log_in(&dir)).expect("open");
    assert!(matches!(
        log.append("x", json!(["a"])),
        Err(AuditError::FieldsNotObject)
    ));
    for key in ["seq", "ts", "event", "prev", "hash"] {
        assert!(matches!(
            log.append("x", json!({ key: 1 })),
            Err(AuditError::ReservedField(k)) if k == key
        ));
    }
    assert_eq!(log.last().seq, 0, "nothing was written");
}

#[test]
fn an_empty_log_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_in(&dir);
    AuditLog::open(&path).expect("open");
    let report = verify(&path).expect("intact");
    assert_eq!((report.records, report.first_ts), (0, None));
    assert_eq!(report.last_hash, GENESIS_HASH);
}

#[test]
fn an_edited_middle_record_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_in(&dir);
    write_records(&path, 4);
    let mut lines = lines(&path);
    lines[1] = lines[1].replace(r#""serial":2"#, r#""serial":9"#);
    rewrite(&path, &lines);
    assert_eq!(
        broken_at(&path),
        (2, Some(2), "hash does not match its content".into())
    );
}

#[test]
fn an_edited_record_with_a_recomputed_hash_breaks_the_next_link() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_in(&dir);
    write_records(&path, 4);
    let mut lines = lines(&path);
    let edited = lines[1].replace(r#""serial":2"#, r#""serial":9"#);
    let body = format!("{}}}", &edited[..edited.len() - 75]);
    let hash = hex::encode(Sha256::digest(body.as_bytes()));
    lines[1] = format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]);
    rewrite(&path, &lines);
    assert_eq!(
        broken_at(&path),
        (3, Some(3), "prev does not match record 2's hash".into())
    );
}

#[test]
fn an_edited_last_record_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_in(&dir);
    write_records(&path, 3);
    let mut lines = lines(&path);
    lines[2] = lines[2].replace(r#""source":"file""#, r#""source":"last_good""#);
    rewrite(&path, &lines);
    assert_eq!(
        broken_at(&path),
        (3, Some(3), "hash does not match its content".into())
    );
}

#[test]
fn a_deleted_record_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_in(&dir);
    write_records(&path, 4);
    let mut lines = lines(&path);
    lines.remove(1);
    rewrite(&path, &lines);
    assert_eq!(broken_at(&path), (2, Some(3), "seq 3 follows 1".into()));
}

#[test]
fn a_deleted_first_record_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_in(&dir);
    write_records(&path, 2);
    let mut lines = lines(&path);
    lines.remove(0);
    rewrite(&path, &lines);
    assert_eq!(
        broken_at(&path),
        (1, Some(2), "the first record must have seq 1".into())
    );
}

#[test]
fn reordered_records_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_in(&dir);
    write_records(&path, 4);
    let mut lines = lines(&path);
    lines.swap(1, 2);
    rewrite(&path, &lines);
    assert_eq!(broken_at(&path), (2, Some(3), "seq 3 follows 1".into()));
}

#[test]
fn a_line_that_is_not_json_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_in(&dir);
    write_records(&path, 3);
    let mut lines = lines(&path);
    lines[1] = "garbage".into();
    rewrite(&path, &lines);
    let (line, seq, reason) = broken_at(&path);
    assert_eq!((line, seq), (2, None));
    assert!(reason.starts_with("not JSON"), "{reason}");
}

#[test]
fn a_torn_tail_is_recorded_and_the_chain_continues() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_in(&dir);
    let written = write_records(&path, 3);
    // A write cut short: half a record and no newline.
    let mut text = std::fs::read_to_string(&path).expect("read");
    text.push_str(r#"{"seq":4,"ts":"2026-11-2"#);
    std::fs::write(&path, &text).expect("write");

    let mut log = AuditLog::open(&path).expect("a torn tail must not stop the proxy");
    let repair = log.repaired().cloned().expect("the repair is reported");
    assert_eq!(repair.after_seq, Some(3));
    assert_eq!((repair.first_bad_line, repair.skipped_lines), (4, 1));
    assert_eq!(repair.record.seq, 4);
    let next = log
        .append(event::CONNECTIONS_CUT, json!({"order": "X-1", "count": 2}))
        .expect("append");
    assert_eq!(next.seq, 5);

    let lines = lines(&path);
    assert_eq!(lines.len(), 6, "{lines:#?}");
    let note: Value = serde_json::from_str(&lines[4]).expect("the note is JSON");
    assert_eq!(note["event"], event::AUDIT_CHAIN_BROKEN);
    assert_eq!(note["prev"], written[2].hash.as_str());
    assert_eq!(note["after_seq"], 3);
    let (line, _, reason) = broken_at(&path);
    assert_eq!(line, 4, "verify still names the torn line: {reason}");
}

#[test]
fn a_last_record_whose_hash_fails_is_skipped_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_in(&dir);
    let written = write_records(&path, 3);
    let mut lines = lines(&path);
    lines[2] = lines[2].replace(r#""serial":3"#, r#""serial":4"#);
    rewrite(&path, &lines);
    let log = AuditLog::open(&path).expect("open");
    let repair = log.repaired().expect("repaired");
    assert_eq!((repair.after_seq, repair.first_bad_line), (Some(2), 3));
    let note: Value = serde_json::from_str(self::lines(&path).last().expect("note")).expect("json");
    assert_eq!(note["seq"], 3);
    assert_eq!(note["prev"], written[1].hash.as_str());
}

#[test]
fn a_log_of_garbage_starts_a_new_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = log_in(&dir);
    std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    std::fs::write(&path, "not a record\n\nneither\n").expect("write");
    let log = AuditLog::open(&path).expect("open");
    let repair = log.repaired().expect("repaired");
    assert_eq!(repair.after_seq, None);
    assert_eq!((repair.first_bad_line, repair.skipped_lines), (1, 2));
    assert_eq!(log.last().seq, 1);
    let note: Value = serde_json::from_str(lines(&path).last().expect("note")).expect("json");
    assert_eq!(note["prev"], GENESIS_HASH);
}

#[test]
fn timestamps_have_milliseconds() {
    let t =
        time::OffsetDateTime::from_unix_timestamp_nanos(1_795_000_000_123_456_789).expect("time");
    assert_eq!(timestamp(t), "2026-11-18T11:06:40.123Z");
}
