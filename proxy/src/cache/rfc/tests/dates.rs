use http::HeaderValue;

use super::at;
use crate::cache::rfc::http_date;

fn parse(s: &str) -> Option<std::time::SystemTime> {
    http_date(&HeaderValue::from_str(s).unwrap())
}

#[test]
fn the_three_forms_of_rfc9110_5_6_7_are_the_same_instant() {
    let imf = parse("Sun, 06 Nov 1994 08:49:37 GMT");
    assert!(imf.is_some());
    assert_eq!(parse("Sunday, 06-Nov-94 08:49:37 GMT"), imf);
    assert_eq!(parse("Sun Nov  6 08:49:37 1994"), imf);
}

#[test]
fn names_match_case_insensitively_rfc9111_4_2() {
    // cache-tests: freshness-expires-wrong-case-{weekday,month,tz}
    let expected = parse("Thu, 18 Aug 2050 02:01:18 GMT");
    assert!(expected.is_some());
    assert_eq!(parse("THU, 18 Aug 2050 02:01:18 GMT"), expected);
    assert_eq!(parse("Thu, 18 AUG 2050 02:01:18 GMT"), expected);
    assert_eq!(parse("Thu, 18 Aug 2050 02:01:18 gMT"), expected);
    assert_eq!(parse("thursday, 18-aug-50 02:01:18 gmt"), expected);
}

#[test]
fn malformed_dates_are_invalid() {
    // cache-tests: freshness-expires-invalid-* ; RFC 9111 §5.3 "0" is invalid.
    for bad in [
        "0",
        "-1",
        "",
        "Thu, 18 Aug 2050 02:01:18 UTC",
        "Thu, 18 Aug 50 02:01:18 GMT",
        "Thu 18 Aug 2050 02:01:18 GMT",
        "Thu, 18  Aug  2050 02:01:18 GMT",
        "Thu, 18-Aug-2050 02:01:18 GMT",
        "Thu, 18 Aug 2050 02.01.18 GMT",
        "Thu, 18 Aug 2050 2:01:18 GMT",
        "Fri, 18 Aug 2050 02:01:18 GMT", // wrong weekday
        "Thu, 18 Aug 2050 02:01:18 GMT and then a great deal of trailing garbage",
    ] {
        assert_eq!(parse(bad), None, "{bad:?}");
    }
}

#[test]
fn round_trips_our_own_formatting() {
    assert_eq!(parse(&super::date(42)), Some(at(42)));
}
