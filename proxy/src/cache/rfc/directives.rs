//! `Cache-Control` (RFC 9111 §5.2), `CDN-Cache-Control` (RFC 9213) and request `Pragma`.

use std::borrow::Cow;

use http::header::{CACHE_CONTROL, PRAGMA};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::sf::{self, Item, is_tchar};
use super::{Delta, Directives, RequestDirectives, ResponseDirectives};

/// The targeted field for CDNs (RFC 9213 §3).
pub const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// A directive's argument as written.
enum Arg<'a> {
    /// `name` alone.
    None,
    /// `name=token` or `name="quoted"` (unescaped).
    Value(Cow<'a, [u8]>),
    /// `name=` followed by something that is neither a token nor a whole quoted-string.
    Invalid,
}

impl Directives {
    /// Parses every line of one field (`get_all`), in order.
    ///
    /// The grammar is `#( token [ "=" ( token / quoted-string ) ] )` (§5.2): commas inside a
    /// quoted-string do not split, so `ext="max-age=3600"` is one unknown directive. A name with
    /// a character outside `tchar` (`max-age =1`) makes the element unknown, hence ignored. Both
    /// argument forms are accepted (§5.2: `max-age="3600"`); `max-age= 1`, `max-age='1'`,
    /// `max-age=1.5`, `max-age=-1` and a bare `max-age` give [`Delta::Invalid`].
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a HeaderValue>) -> Directives {
        let mut d = Directives::default();
        for value in values {
            for element in split_list(value.as_bytes()) {
                if let Some((name, arg)) = directive(element) {
                    d.apply(name, arg);
                }
            }
        }
        d
    }

    fn apply(&mut self, name: &[u8], arg: Arg<'_>) {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        let delta = |arg: &Arg<'_>| match arg {
            Arg::Value(v) => Delta::parse(v),
            Arg::None | Arg::Invalid => Delta::Invalid,
        };
        // §4.2.1: "either the first occurrence should be used or the response should be
        // considered stale": first occurrence, hence `get_or_insert`.
        if is("max-age") {
            self.max_age.get_or_insert(delta(&arg));
        } else if is("s-maxage") {
            self.s_maxage.get_or_insert(delta(&arg));
        } else if is("stale-while-revalidate") {
            self.stale_while_revalidate.get_or_insert(delta(&arg));
        } else if is("stale-if-error") {
            self.stale_if_error.get_or_insert(delta(&arg));
        } else if is("min-fresh") {
            self.min_fresh.get_or_insert(delta(&arg));
        } else if is("max-stale") {
            // §5.2.1.2: the argument is optional.
            self.max_stale.get_or_insert(match arg {
                Arg::None => None,
                _ => Some(delta(&arg)),
            });
        } else if is("no-cache") {
            qualified(arg, &mut self.no_cache, &mut self.no_cache_fields);
        } else if is("private") {
            qualified(arg, &mut self.private, &mut self.private_fields);
        } else if is("no-store") {
            self.no_store = true;
        } else if is("public") {
            self.public = true;
        } else if is("must-revalidate") {
            self.must_revalidate = true;
        } else if is("proxy-revalidate") {
            self.proxy_revalidate = true;
        } else if is("must-understand") {
            self.must_understand = true;
        } else if is("no-transform") {
            self.no_transform = true;
        } else if is("immutable") {
            self.immutable = true;
        } else if is("only-if-cached") {
            self.only_if_cached = true;
        }
    }
}

/// `no-cache` / `private`: unqualified sets the flag; a list of field names (§5.2.2.4,
/// §5.2.2.7) extends `fields`. A list with no valid name is taken as unqualified: the stricter
/// reading of an argument we cannot use.
fn qualified(arg: Arg<'_>, flag: &mut bool, fields: &mut Vec<HeaderName>) {
    let Arg::Value(list) = arg else {
        *flag = true;
        return;
    };
    let mut named = false;
    for name in list.split(|&c| c == b',') {
        if let Ok(name) = HeaderName::from_bytes(trim(name)) {
            named = true;
            if !fields.contains(&name) {
                fields.push(name);
            }
        }
    }
    if !named {
        *flag = true;
    }
}

/// Splits a comma-separated list at commas outside quoted-strings, trimming OWS and dropping
/// empty elements (RFC 9110 §5.6.1).
pub(super) fn split_list(s: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &c) in s.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if quoted && c == b'\\' {
            escaped = true;
        } else if c == b'"' {
            quoted = !quoted;
        } else if c == b',' && !quoted {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    parts.push(&s[start..]);
    parts.into_iter().map(trim).filter(|p| !p.is_empty())
}

pub(super) fn trim(s: &[u8]) -> &[u8] {
    let is_ows = |c: &u8| *c == b' ' || *c == b'\t';
    let start = s.iter().position(|c| !is_ows(c)).unwrap_or(s.len());
    let end = s.iter().rposition(|c| !is_ows(c)).map_or(start, |e| e + 1);
    &s[start..end]
}

/// One list element as `name [= arg]`; `None` when the name is not a token.
fn directive(element: &[u8]) -> Option<(&[u8], Arg<'_>)> {
    let (name, arg) = match element.iter().position(|&c| c == b'=') {
        Some(eq) => (&element[..eq], Some(&element[eq + 1..])),
        None => (element, None),
    };
    if name.is_empty() || !name.iter().all(|&c| is_tchar(c)) {
        return None;
    }
    let arg = match arg {
        None => Arg::None,
        Some(a) if a.first() == Some(&b'"') => unquote(a).map_or(Arg::Invalid, Arg::Value),
        Some(a) if !a.is_empty() && a.iter().all(|&c| is_tchar(c)) => Arg::Value(Cow::Borrowed(a)),
        Some(_) => Arg::Invalid,
    };
    Some((name, arg))
}

/// A whole quoted-string (RFC 9110 §5.6.4) without its quotes and escapes.
fn unquote(s: &[u8]) -> Option<Cow<'_, [u8]>> {
    let inner = s.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if !inner.contains(&b'\\') {
        return (!inner.contains(&b'"')).then_some(Cow::Borrowed(inner));
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut it = inner.iter();
    while let Some(&c) = it.next() {
        match c {
            b'\\' => out.push(*it.next()?),
            b'"' => return None,
            _ => out.push(c),
        }
    }
    Some(Cow::Owned(out))
}

/// `CDN-Cache-Control` when present (RFC 9213 §2.1), else `Cache-Control`.
///
/// RFC 9213 §2.2: the targeted field is used when it is present, valid and non-empty, and then
/// `Cache-Control` (and `Expires`) are ignored. It is a Structured Field Dictionary: a syntax
/// error (`max-age =1`, `MaX-AgE=1`, `&&&`) or a known directive with a value of the wrong type
/// (`max-age="10"`, `max-age=1.5`; §2.1 "SHOULD NOT consume values that violate these inferred
/// constraints") makes the whole field ignored. A negative integer `max-age` is used, as an
/// invalid delta (stale).
pub fn response_directives(headers: &HeaderMap) -> ResponseDirectives {
    match targeted(headers) {
        Some(dirs) => ResponseDirectives {
            dirs,
            targeted: true,
        },
        None => ResponseDirectives {
            dirs: Directives::parse(headers.get_all(CACHE_CONTROL)),
            targeted: false,
        },
    }
}

fn targeted(headers: &HeaderMap) -> Option<Directives> {
    let mut combined = String::new();
    for line in headers.get_all(CDN_CACHE_CONTROL) {
        if !combined.is_empty() {
            combined.push_str(", ");
        }
        combined.push_str(line.to_str().ok()?);
    }
    if combined.trim().is_empty() {
        return None;
    }
    let mut d = Directives::default();
    for (key, item) in sf::parse_dictionary(&combined).ok()? {
        let delta = |item: &Item| match *item {
            Item::Integer(n) => u64::try_from(n).ok().map_or(Some(Delta::Invalid), |n| {
                Some(Delta::Seconds(n.min(Delta::MAX)))
            }),
            _ => None,
        };
        let flag = |item: &Item| match *item {
            Item::Boolean(b) => Some(b),
            _ => None,
        };
        match key.as_str() {
            "max-age" => d.max_age = Some(delta(&item)?),
            "s-maxage" => d.s_maxage = Some(delta(&item)?),
            "stale-while-revalidate" => d.stale_while_revalidate = Some(delta(&item)?),
            "stale-if-error" => d.stale_if_error = Some(delta(&item)?),
            "no-cache" | "private" => {
                let (set, fields) = if key == "no-cache" {
                    (&mut d.no_cache, &mut d.no_cache_fields)
                } else {
                    (&mut d.private, &mut d.private_fields)
                };
                match item {
                    Item::Boolean(b) => *set = b,
                    Item::String(s) => {
                        qualified(Arg::Value(Cow::Borrowed(s.as_bytes())), set, fields)
                    }
                    _ => return None,
                }
            }
            "no-store" => d.no_store = flag(&item)?,
            "public" => d.public = flag(&item)?,
            "must-revalidate" => d.must_revalidate = flag(&item)?,
            "proxy-revalidate" => d.proxy_revalidate = flag(&item)?,
            "must-understand" => d.must_understand = flag(&item)?,
            "no-transform" => d.no_transform = flag(&item)?,
            "immutable" => d.immutable = flag(&item)?,
            _ => {}
        }
    }
    Some(d)
}

/// The directives of a request: `Cache-Control`, and `Pragma: no-cache` when the request has no
/// `Cache-Control` at all (RFC 7234 §5.4; RFC 9111 §5.4 deprecates Pragma but a shared cache in
/// front of old clients still honours it).
pub fn request_directives(headers: &HeaderMap) -> RequestDirectives {
    let has_cc = headers.contains_key(CACHE_CONTROL);
    let pragma_no_cache = !has_cc
        && headers
            .get_all(PRAGMA)
            .iter()
            .any(|v| split_list(v.as_bytes()).any(|p| p.eq_ignore_ascii_case(b"no-cache")));
    RequestDirectives {
        dirs: Directives::parse(headers.get_all(CACHE_CONTROL)),
        pragma_no_cache,
    }
}
