use http::HeaderName;

use super::{headers, req, resp};
use crate::cache::rfc::{Delta, Directives};

fn cc(lines: &[&str]) -> Directives {
    let pairs: Vec<(&str, &str)> = lines.iter().map(|l| ("cache-control", *l)).collect();
    Directives::parse(headers(&pairs).get_all("cache-control"))
}

fn max_age(lines: &[&str]) -> Option<Delta> {
    cc(lines).max_age
}

#[test]
fn delta_seconds_rfc9111_1_2_2() {
    assert_eq!(Delta::parse(b"0"), Delta::Seconds(0));
    assert_eq!(Delta::parse(b"003600"), Delta::Seconds(3600)); // freshness-max-age-leading-zero
    assert_eq!(Delta::parse(b"2147483647"), Delta::Seconds(2_147_483_647));
    // Saturation at 2^31: freshness-max-age-max, -max-plus-1, -max-plus.
    assert_eq!(Delta::parse(b"2147483648"), Delta::Seconds(1 << 31));
    assert_eq!(Delta::parse(b"2147483649"), Delta::Seconds(1 << 31));
    assert_eq!(
        Delta::parse(b"99999999999999999999999999"),
        Delta::Seconds(1 << 31)
    );
    for bad in [
        &b""[..],
        b"-3600",
        b"3600.0",
        b"3600a",
        b"a3600",
        b" 1",
        b"+1",
    ] {
        assert_eq!(Delta::parse(bad), Delta::Invalid);
    }
    assert_eq!(Delta::Invalid.duration(), std::time::Duration::ZERO);
}

#[test]
fn names_are_case_insensitive_and_spacing_free_rfc9111_5_2() {
    // freshness-max-age-case-insenstive, cc-resp-no-store-case-insensitive
    assert_eq!(max_age(&["MaX-aGe=3600"]), Some(Delta::Seconds(3600)));
    assert!(cc(&["No-StOrE"]).no_store);
    let d = cc(&["public,max-age=5,,  ,must-revalidate"]);
    assert!(d.public && d.must_revalidate);
    assert_eq!(d.max_age, Some(Delta::Seconds(5)));
}

#[test]
fn duplicates_keep_the_first_occurrence_rfc9111_4_2_1() {
    // freshness-max-age-two-{fresh-stale,stale-fresh}-{sameline,sepline}
    assert_eq!(
        max_age(&["max-age=1800, max-age=1"]),
        Some(Delta::Seconds(1800))
    );
    assert_eq!(
        max_age(&["max-age=1800", "max-age=1"]),
        Some(Delta::Seconds(1800))
    );
    assert_eq!(
        max_age(&["max-age=1, max-age=1800"]),
        Some(Delta::Seconds(1))
    );
    assert_eq!(
        max_age(&["max-age=1", "max-age=1800"]),
        Some(Delta::Seconds(1))
    );
    // An invalid first occurrence still wins: the response is stale.
    assert_eq!(max_age(&["max-age=x, max-age=60"]), Some(Delta::Invalid));
}

#[test]
fn quoted_strings_do_not_split_and_are_accepted_rfc9111_5_2() {
    // freshness-max-age-ignore-quoted(-rev), freshness-max-age-quoted
    assert_eq!(
        max_age(&["extension=\"max-age=3600\", max-age=1"]),
        Some(Delta::Seconds(1))
    );
    assert_eq!(
        max_age(&["max-age=1, extension=\"max-age=3600\""]),
        Some(Delta::Seconds(1))
    );
    assert_eq!(max_age(&["ext=\"a, max-age=9\\\", b\""]), None);
    assert_eq!(max_age(&["max-age=\"3600\""]), Some(Delta::Seconds(3600)));
}

#[test]
fn malformed_arguments_rfc9111_5_2_2_1() {
    // freshness-max-age-space-before-equals: the name is not a token, the directive is unknown.
    assert_eq!(max_age(&["max-age =3600"]), None);
    // freshness-max-age-space-after-equals, -single-quoted, -decimal-*, -a100, -100a, -negative
    for bad in [
        "max-age= 3600",
        "max-age='3600'",
        "max-age=3600.0",
        "max-age=3600.5",
        "max-age=a3600",
        "max-age=3600a",
        "max-age=-3600",
        "max-age",
        "max-age=\"3600",
        "max-age=\"36\"00",
    ] {
        assert_eq!(max_age(&[bad]), Some(Delta::Invalid), "{bad}");
    }
}

#[test]
fn every_directive_is_read_rfc9111_5_2_and_rfc5861() {
    let d = cc(&[
        "s-maxage=7, no-store, public, must-revalidate, proxy-revalidate, must-understand",
        "no-transform, immutable, stale-while-revalidate=30, stale-if-error=60",
        "max-stale=5, min-fresh=6, only-if-cached, unknown-ext=1",
    ]);
    assert_eq!(d.s_maxage, Some(Delta::Seconds(7)));
    assert!(d.no_store && d.public && d.must_revalidate && d.proxy_revalidate);
    assert!(d.must_understand && d.no_transform && d.immutable && d.only_if_cached);
    assert_eq!(d.stale_while_revalidate, Some(Delta::Seconds(30)));
    assert_eq!(d.stale_if_error, Some(Delta::Seconds(60)));
    assert_eq!(d.max_stale, Some(Some(Delta::Seconds(5))));
    assert_eq!(d.min_fresh, Some(Delta::Seconds(6)));
    assert!(!d.no_cache && !d.private);
    // §5.2.1.2: max-stale without a value.
    assert_eq!(cc(&["max-stale"]).max_stale, Some(None));
    assert_eq!(cc(&["max-stale=x"]).max_stale, Some(Some(Delta::Invalid)));
}

#[test]
fn qualified_no_cache_and_private_name_fields_rfc9111_5_2_2_4_and_5_2_2_7() {
    let d = cc(&["no-cache=\"Set-Cookie, x-a\", private=\"X-B\", no-cache=x-c"]);
    assert!(!d.no_cache && !d.private);
    let names = |v: &[&'static str]| -> Vec<HeaderName> {
        v.iter().map(|n| HeaderName::from_static(n)).collect()
    };
    assert_eq!(d.no_cache_fields, names(&["set-cookie", "x-a", "x-c"]));
    assert_eq!(d.private_fields, names(&["x-b"]));
    // Unqualified anywhere wins, whatever the order.
    let d = cc(&["no-cache=\"a\"", "no-cache"]);
    assert!(d.no_cache);
    assert_eq!(d.no_cache_fields, names(&["a"]));
    // A qualified form naming no valid field is taken as the unqualified one (stricter).
    assert!(cc(&["no-cache=\"\""]).no_cache);
    assert!(cc(&["private=\"bad name\""]).private);
    assert!(cc(&["no-cache= x"]).no_cache);
}

#[test]
fn cdn_cache_control_takes_precedence_rfc9213_2_2() {
    // cdn-max-age-long-cc-max-age, cdn-fresh-cc-nostore
    let r = resp(&[
        ("cache-control", "no-store, max-age=1"),
        ("cdn-cache-control", "max-age=3600"),
    ]);
    assert!(r.targeted);
    assert_eq!(r.dirs.max_age, Some(Delta::Seconds(3600)));
    assert!(!r.dirs.no_store);
    // Absent: Cache-Control.
    let r = resp(&[("cache-control", "max-age=1")]);
    assert!(!r.targeted);
    assert_eq!(r.dirs.max_age, Some(Delta::Seconds(1)));
    // An unknown directive alone is a valid, non-empty field: Cache-Control is still ignored.
    let r = resp(&[("cache-control", "no-store"), ("cdn-cache-control", "none")]);
    assert!(r.targeted && !r.dirs.no_store);
}

#[test]
fn cdn_cache_control_is_a_structured_dictionary_rfc9213_2_1() {
    let r = resp(&[(
        "cdn-cache-control",
        "max-age=99999999999, s-maxage=5;p=1, private=\"set-cookie\", must-revalidate, \
         no-store=?0, stale-if-error=9",
    )]);
    assert!(r.targeted);
    assert_eq!(r.dirs.max_age, Some(Delta::Seconds(1 << 31))); // cdn-max-age-max-plus
    assert_eq!(r.dirs.s_maxage, Some(Delta::Seconds(5)));
    assert!(!r.dirs.private && r.dirs.must_revalidate && !r.dirs.no_store);
    assert_eq!(r.dirs.private_fields, vec![http::header::SET_COOKIE]);
    assert_eq!(r.dirs.stale_if_error, Some(Delta::Seconds(9)));
    // Dictionary: the last value of a key wins.
    let r = resp(&[
        ("cdn-cache-control", "max-age=1"),
        ("cdn-cache-control", "max-age=2"),
    ]);
    assert_eq!(r.dirs.max_age, Some(Delta::Seconds(2)));
    // A negative integer is the right type but an invalid delta: stale.
    let r = resp(&[("cdn-cache-control", "max-age=-1")]);
    assert!(r.targeted);
    assert_eq!(r.dirs.max_age, Some(Delta::Invalid));
    let r = resp(&[("cdn-cache-control", "no-cache")]);
    assert!(r.dirs.no_cache);
}

#[test]
fn invalid_or_empty_cdn_cache_control_falls_back_rfc9213_2_1() {
    // cdn-cc-invalid-sh-type-unknown, cdn-cc-invalid-sh-type-wrong,
    // cdn-max-age-space-{before,after}-equals, and an uppercase key.
    for bad in [
        "max-age=10000, &&&&&",
        "max-age=\"10000\"",
        "max-age =100",
        "max-age= 100",
        "MaX-aGe=3600",
        "max-age=3600.5",
        "max-age",
        "no-store=1",
        "private=token",
        "max-age=1,",
        "",
        "   ",
    ] {
        let r = resp(&[("cache-control", "no-store"), ("cdn-cache-control", bad)]);
        assert!(!r.targeted, "{bad:?}");
        assert!(r.dirs.no_store, "{bad:?}");
    }
}

#[test]
fn pragma_no_cache_counts_only_without_cache_control_rfc7234_5_4() {
    assert!(req(&[("pragma", "no-cache")]).no_cache());
    assert!(req(&[("pragma", "foo, No-Cache")]).no_cache());
    assert!(!req(&[("pragma", "unrecognised-extension")]).no_cache());
    assert!(!req(&[("pragma", "no-cache"), ("cache-control", "max-stale")]).no_cache());
    assert!(req(&[("cache-control", "no-cache")]).no_cache());
    let r = req(&[("cache-control", "max-age=0, only-if-cached")]);
    assert_eq!(r.dirs.max_age, Some(Delta::Seconds(0)));
    assert!(r.dirs.only_if_cached);
    // Pragma in a response means nothing (RFC 9111 §5.4 defines only the request use).
    assert!(!resp(&[("pragma", "no-cache")]).dirs.no_cache);
}

#[test]
fn cdn_cache_control_unknown_members_may_have_any_type_rfc8941() {
    // Unknown directives are ignored whatever their (valid) type; the field stays in force.
    let r = resp(&[(
        "cdn-cache-control",
        "a=(1 \"x\" tok);p, b=:aGk=:, c=1.5, d=tok/x:y, e=?1, *f=\"q\\\"s\", max-age=7",
    )]);
    assert!(r.targeted);
    assert_eq!(r.dirs.max_age, Some(Delta::Seconds(7)));
    // Structural errors anywhere void it.
    for bad in [
        "a=(1 2",
        "a=:aGk=",
        "a=\"x",
        "a=1.2345",
        "a=1234567890123456",
        "a=?2",
        "a;=1",
    ] {
        let r = resp(&[("cache-control", "max-age=1"), ("cdn-cache-control", bad)]);
        assert!(!r.targeted, "{bad:?}");
    }
}
