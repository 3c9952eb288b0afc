use http::HeaderName;

use super::headers;
use crate::cache::rfc::{Vary, secondary_key, vary};

fn names(v: &[&'static str]) -> Vec<HeaderName> {
    v.iter().map(|n| HeaderName::from_static(n)).collect()
}

#[test]
fn vary_parsing_rfc9110_12_5_5() {
    assert_eq!(vary(&headers(&[])), Vary::None);
    assert_eq!(vary(&headers(&[("vary", "")])), Vary::None);
    assert_eq!(vary(&headers(&[("vary", " , ")])), Vary::None);
    assert_eq!(
        vary(&headers(&[("vary", "Foo,  BAR"), ("vary", "foo, Baz")])),
        Vary::Names(names(&["foo", "bar", "baz"]))
    );
    for star in [
        &["*"][..],
        &["*, *"],
        &["*", "*"],
        &[", *"],
        &["", "*"],
        &["*, Foo"],
        &["Foo, *"],
    ] {
        let pairs: Vec<(&str, &str)> = star.iter().map(|l| ("vary", *l)).collect();
        assert_eq!(vary(&headers(&pairs)), Vary::Star, "{star:?}");
    }
    // An element that is no field name cannot be matched: like `*`.
    assert_eq!(vary(&headers(&[("vary", "Foo, a b")])), Vary::Star);
}

fn key(vary_names: &[&'static str], request: &[(&str, &str)]) -> Vec<Option<Box<[u8]>>> {
    secondary_key(&names(vary_names), &headers(request))
}

#[test]
fn secondary_key_matches_and_mismatches_rfc9111_4_1() {
    let stored = key(
        &["foo", "bar"],
        &[("Foo", "1"), ("Bar", "abc"), ("Other", "2")],
    );
    // vary-match, vary-cache-key, vary-2-match
    assert_eq!(
        stored,
        key(
            &["foo", "bar"],
            &[("Foo", "1"), ("Bar", "abc"), ("Other", "3")]
        )
    );
    // vary-no-match, vary-2-no-match
    assert_ne!(
        stored,
        key(&["foo", "bar"], &[("Foo", "2"), ("Bar", "abc")])
    );
    // vary-omit, vary-2-match-omit: absent differs from present, even when empty.
    assert_ne!(stored, key(&["foo", "bar"], &[("Foo", "1")]));
    assert_eq!(key(&["foo"], &[]), vec![None]);
    assert_ne!(key(&["foo"], &[]), key(&["foo"], &[("foo", "")]));
    // vary-3-omit: both lack the same header.
    assert_eq!(
        key(&["foo", "bar", "baz"], &[("Foo", "1"), ("Baz", "789")]),
        key(&["foo", "bar", "baz"], &[("Foo", "1"), ("Baz", "789")])
    );
    // Values are case-sensitive in general.
    assert_ne!(
        key(&["foo"], &[("foo", "A")]),
        key(&["foo"], &[("foo", "a")])
    );
}

#[test]
fn secondary_key_normalisation_rfc9111_4_1() {
    // vary-normalise-space
    assert_eq!(
        key(&["foo"], &[("foo", "1,2")]),
        key(&["foo"], &[("foo", " 1, 2 ")])
    );
    // vary-normalise-combine
    assert_eq!(
        key(&["foo"], &[("foo", "1, 2")]),
        key(&["foo"], &[("foo", "1"), ("foo", "2")])
    );
    assert_eq!(
        key(&["foo"], &[("foo", "1, 2")]),
        vec![Some(b"1,2".to_vec().into_boxed_slice())]
    );
    // Commas inside quoted strings are kept.
    assert_ne!(
        key(&["foo"], &[("foo", "\"a, b\"")]),
        key(&["foo"], &[("foo", "\"a,b\"")])
    );
    // Order is meaningful (vary-normalise-lang-order is not followed: preference order).
    assert_ne!(
        key(&["accept-language"], &[("accept-language", "en, de")]),
        key(&["accept-language"], &[("accept-language", "de, en")])
    );
    // Accept* fields: case and parameter whitespace folded.
    assert_eq!(
        key(
            &["accept-encoding"],
            &[("accept-encoding", "GZIP ; q=0.5, br")]
        ),
        key(
            &["accept-encoding"],
            &[("accept-encoding", "gzip;q = 0.5,BR")]
        )
    );
    assert_eq!(
        key(&["accept"], &[("accept", "Text/HTML;  Level=1")]),
        vec![Some(b"text/html;level=1".to_vec().into_boxed_slice())]
    );
}
