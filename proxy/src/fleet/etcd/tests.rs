//! The gateway codec against answers captured from etcd 3.4.23, and the stream framing.

use super::*;

const HEADER: &str = r#""header":{"cluster_id":"324952591200643719","member_id":"3319814642761637952","revision":"4","raft_term":"2"}"#;

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn range_answers_decode_with_and_without_keys() {
    let empty = parse(&format!("{{{HEADER}}}"));
    assert_eq!(
        decode_range(&empty).unwrap(),
        Range {
            revision: 4,
            kvs: vec![]
        }
    );
    let found = parse(&format!(
        r#"{{{HEADER},"kvs":[{{"key":"L3AvcG9saWN5","create_revision":"2","mod_revision":"3","version":"2","value":"aGVsbG8="}}],"count":"1"}}"#
    ));
    let r = decode_range(&found).unwrap();
    assert_eq!(r.revision, 4);
    assert_eq!(
        r.kvs,
        vec![Kv {
            key: b"/p/policy".to_vec(),
            value: b"hello".to_vec(),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            lease: 0,
        }]
    );
}

#[test]
fn int64_fields_are_strings_numbers_or_absent() {
    assert_eq!(int64(None), Ok(0));
    assert_eq!(int64(Some(&json!("7587"))), Ok(7587));
    assert_eq!(int64(Some(&json!(12))), Ok(12));
    assert!(int64(Some(&json!("x"))).is_err());
    assert!(int64(Some(&json!(true))).is_err());
}

#[test]
fn bad_base64_is_an_error_not_a_panic() {
    let v = parse(&format!(r#"{{{HEADER},"kvs":[{{"key":"***"}}]}}"#));
    assert!(decode_range(&v).unwrap_err().contains("base64"));
}

#[test]
fn requests_encode_keys_values_and_revisions_as_the_gateway_wants() {
    assert_eq!(
        range_request(b"/p/policy", false),
        json!({ "key": "L3AvcG9saWN5" })
    );
    // "/p/nodes/" → range end "/p/nodes0".
    assert_eq!(
        range_request(b"/p/nodes/", true),
        json!({ "key": b64(b"/p/nodes/"), "range_end": b64(b"/p/nodes0") })
    );
    assert_eq!(
        put_request(b"k", b"v", Some(42)),
        json!({ "key": "aw==", "value": "dg==", "lease": "42" })
    );
    assert_eq!(
        put_request(b"k", b"v", None),
        json!({ "key": "aw==", "value": "dg==" })
    );
    let t = txn_put_request(b"k", b"v", Expect::ModRevision(9));
    assert_eq!(t["compare"][0]["target"], "MOD");
    assert_eq!(t["compare"][0]["mod_revision"], "9");
    assert_eq!(t["success"][0]["request_put"]["value"], "dg==");
    let t = txn_put_request(b"k", b"v", Expect::Absent);
    assert_eq!(t["compare"][0]["target"], "CREATE");
    assert_eq!(t["compare"][0]["create_revision"], "0");
    assert_eq!(
        watch_request(b"k", 5),
        json!({ "create_request": { "key": "aw==", "start_revision": "5" } })
    );
}

#[test]
fn prefix_ends() {
    assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
    assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
    assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
}

#[test]
fn watch_messages_decode() {
    let created = parse(&format!(r#"{{"result":{{{HEADER},"created":true}}}}"#));
    assert_eq!(
        decode_watch(&created).unwrap(),
        WatchMessage::Created { revision: 4 }
    );
    let events = parse(&format!(
        r#"{{"result":{{{HEADER},"events":[{{"kv":{{"key":"aw==","mod_revision":"3","value":"dg=="}}}},{{"type":"DELETE","kv":{{"key":"aw==","mod_revision":"4"}}}}]}}}}"#
    ));
    match decode_watch(&events).unwrap() {
        WatchMessage::Events { revision, events } => {
            assert_eq!(revision, 4);
            assert!(
                matches!(&events[0], Event::Put(kv) if kv.value == b"v" && kv.mod_revision == 3)
            );
            assert!(matches!(&events[1], Event::Delete(kv) if kv.mod_revision == 4));
        }
        other => panic!("{other:?}"),
    }
    let canceled = parse(
        r#"{"result":{"header":{"cluster_id":"1","raft_term":"2"},"canceled":true,"compact_revision":"4"}}"#,
    );
    assert_eq!(
        decode_watch(&canceled).unwrap(),
        WatchMessage::Canceled {
            compact_revision: 4,
            reason: String::new()
        }
    );
    let error = parse(r#"{"error":{"grpc_code":14,"message":"unavailable"}}"#);
    assert!(decode_watch(&error).unwrap_err().contains("unavailable"));
}

#[test]
fn the_framer_splits_objects_across_any_chunking() {
    let stream = format!(
        "{{\"result\":{{{HEADER},\"created\":true}}}}\n{{\"result\":{{{HEADER},\"events\":[{{\"kv\":{{\"key\":\"aw==\",\"value\":\"e30=\"}}}}]}}}}\n"
    );
    let bytes = stream.as_bytes();
    for size in [1, 2, 7, 64, bytes.len()] {
        let mut framer = Framer::default();
        let mut got = Vec::new();
        for chunk in bytes.chunks(size) {
            got.extend(framer.push(chunk).unwrap());
        }
        assert_eq!(got.len(), 2, "chunks of {size}");
        assert!(matches!(
            decode_watch(&got[1]).unwrap(),
            WatchMessage::Events { .. }
        ));
    }
    // Braces inside strings do not confuse it.
    let mut framer = Framer::default();
    let got = framer.push(br#"{"a":"}{"}{"b":"{"}"#).unwrap();
    assert_eq!(got, vec![json!({"a": "}{"}), json!({"b": "{"})]);
    assert!(Framer::default().push(b"{]").is_err());
}

#[test]
fn endpoints_must_be_plain_http() {
    assert_eq!(
        endpoint_authority("http://etcd-1.internal:2379").unwrap(),
        "etcd-1.internal:2379"
    );
    assert_eq!(endpoint_authority("http://etcd-1/").unwrap(), "etcd-1:80");
    assert!(
        endpoint_authority("https://etcd-1.internal:2379")
            .unwrap_err()
            .contains("not supported yet")
    );
    assert!(endpoint_authority("etcd-1.internal:2379").is_err());
    assert!(endpoint_authority("http://etcd-1.internal:2379/v3").is_err());
    assert!(endpoint_authority("http://u:p@etcd-1.internal:2379").is_err());
    assert!(Client::new(&[]).is_err());
}
