//! Validation of an order's `scope`: host names (IDNA, no IPs, no public suffixes), path prefixes
//! and countries.

use std::net::IpAddr;

use crate::error::PolicyErrorKind as K;
use crate::model::{Coverage, HostRule, PathPrefix, Scope, UnknownCountry};
use crate::parse::{Node, Value};
use crate::validate::Checker;

pub(crate) const SCOPE_KEYS: &[&str] = &["hosts", "paths", "countries", "on_unknown_country"];
pub(crate) const HOST_KEYS: &[&str] = &["name", "include_subdomains"];
pub(crate) const PATH_KEYS: &[&str] = &["prefix"];

impl Checker<'_> {
    pub(crate) fn scope(&mut self, node: &Node) -> Option<Scope> {
        let f = self.map(node, "scope", SCOPE_KEYS)?;
        let before = self.errors.len();
        let mut hosts = Vec::new();
        if let Some(list) = self.req(&f, "scope", "hosts") {
            let hint = "hosts must not be empty: an order names at least one host";
            let items = self.list(list, "scope.hosts", hint);
            hosts.reserve(items.len());
            for (i, item) in items.iter().enumerate() {
                crate::pause::point();
                // Well-formed entries take the fast path; anything else is checked again
                // with key paths for its errors.
                if let Some(rule) = host_entry_fast(item) {
                    hosts.push(rule);
                    continue;
                }
                let key = format!("scope.hosts[{i}]");
                if let Some(rule) = self.host_entry(item, &key) {
                    hosts.push(rule);
                }
            }
        }
        let mut paths = Vec::new();
        if let Some(list) = f.get("paths") {
            let hint = "an empty paths list would block nothing: omit paths to cover whole hosts";
            for (i, item) in self.list(list, "scope.paths", hint).iter().enumerate() {
                let key = format!("scope.paths[{i}]");
                if let Some(prefix) = self.path_entry(item, &key) {
                    paths.push(prefix);
                }
            }
        }
        let mut countries = Vec::new();
        if let Some(list) = f.get("countries") {
            let hint = "an empty countries list would make the order global: omit countries for \
                        a global order";
            for (i, item) in self.list(list, "scope.countries", hint).iter().enumerate() {
                if let Some(c) = self.country(item, &format!("scope.countries[{i}]")) {
                    countries.push(c);
                }
            }
        }
        let on_unknown_country = match f.get("on_unknown_country") {
            Some(n) => {
                let choices = [
                    ("block", UnknownCountry::Block),
                    ("allow", UnknownCountry::Allow),
                ];
                let key = "scope.on_unknown_country";
                let v = self.one_of(n, key, &choices, "block, allow");
                if f.get("countries").is_none() {
                    self.err(n.line, key, K::UnknownCountryUnused);
                }
                v
            }
            None => {
                if let Some(list) = f.get("countries") {
                    self.err(
                        list.line,
                        "scope.on_unknown_country",
                        K::UnknownCountryMissing,
                    );
                }
                None
            }
        };
        (self.errors.len() == before).then_some(Scope {
            hosts,
            paths,
            countries,
            on_unknown_country,
        })
    }

    /// `"name"` or `{ name, include_subdomains }`.
    fn host_entry(&mut self, node: &Node, key: &str) -> Option<HostRule> {
        let (name_node, subdomains) = match &node.value {
            Value::Str(_) => (node, false),
            Value::Map(_) => {
                let f = self.map(node, key, HOST_KEYS)?;
                let name = self.req(&f, key, "name")?;
                let subdomains = match f.get("include_subdomains") {
                    Some(n) => self.boolean(n, &format!("{key}.include_subdomains"))?,
                    None => false,
                };
                (name, subdomains)
            }
            _ => {
                let found = node.value.kind();
                let expected = "a host name or { name, include_subdomains }";
                self.err(node.line, key, K::WrongType { expected, found });
                return None;
            }
        };
        let name_key = if std::ptr::eq(name_node, node) {
            key.to_owned()
        } else {
            format!("{key}.name")
        };
        let name = self.string(name_node, &name_key)?;
        match host_rule(name, subdomains) {
            Ok(rule) => Some(rule),
            Err(kind) => {
                self.err(name_node.line, &name_key, kind);
                None
            }
        }
    }

    /// `"/prefix"` or `{ prefix }`.
    fn path_entry(&mut self, node: &Node, key: &str) -> Option<PathPrefix> {
        let (prefix_node, prefix_key) = match &node.value {
            Value::Map(_) => {
                let f = self.map(node, key, PATH_KEYS)?;
                (self.req(&f, key, "prefix")?, format!("{key}.prefix"))
            }
            _ => (node, key.to_owned()),
        };
        let prefix = self.string(prefix_node, &prefix_key)?;
        let bad = |reason| K::BadPath {
            value: prefix.to_owned(),
            reason,
        };
        let result = if !prefix.starts_with('/') {
            Err(bad("it must start with '/'"))
        } else if prefix.contains(['?', '#']) {
            Err(bad("queries and fragments are never matched"))
        } else if prefix.chars().any(|c| c.is_control() || c.is_whitespace()) {
            Err(bad(
                "whitespace and control characters must be percent-encoded",
            ))
        } else {
            crate::path::prefix_match_form(prefix)
                .ok_or_else(|| bad("it is encoded more than three times"))
        };
        match result {
            Ok(matched) => Some(PathPrefix {
                prefix: prefix.to_owned(),
                matched,
            }),
            Err(kind) => {
                self.err(prefix_node.line, &prefix_key, kind);
                None
            }
        }
    }
}

/// A host entry with nothing wrong in it, read without building any key path: `"name"`, or a
/// mapping with a string `name`, an optional boolean `include_subdomains` and no other or
/// repeated key. `None` sends the entry through [`Checker::host_entry`], which reports why.
fn host_entry_fast(node: &Node) -> Option<HostRule> {
    let (name, subdomains) = match &node.value {
        Value::Str(name) => (name, false),
        Value::Map(entries) => {
            let (mut name, mut subdomains) = (None, None);
            for (k, v) in entries {
                match (&k.value, &v.value) {
                    (Value::Str(k), Value::Str(n)) if k == "name" && name.is_none() => {
                        name = Some(n)
                    }
                    (Value::Str(k), Value::Bool(b))
                        if k == "include_subdomains" && subdomains.is_none() =>
                    {
                        subdomains = Some(*b)
                    }
                    _ => return None,
                }
            }
            (name?, subdomains.unwrap_or(false))
        }
        _ => return None,
    };
    if plain_name(name) && !is_public_suffix(name) {
        let coverage = if subdomains {
            Coverage::WithSubdomains
        } else {
            Coverage::Exact
        };
        return Some(HostRule {
            name: name.to_string(),
            unicode: None,
            coverage,
        });
    }
    host_rule(name, subdomains).ok()
}

/// Whether `name` is already a canonical, valid host name of the common shape, checked in one
/// pass: lowercase letters, digits and `-` in non-empty labels of at most 63 bytes, at most 253
/// bytes, no trailing dot, no `xn--` label (so UTS #46 maps it to itself and it has no other
/// Unicode form), and a last label that is neither numeric nor `0x` hex (an address). For such a
/// name [`host_rule`] returns it unchanged, unless it is a public suffix (checked apart); any
/// other name goes through [`host_rule`]. A million-name table is mostly such names.
fn plain_name(name: &str) -> bool {
    const MAX_HOST_LEN: usize = 253;
    const MAX_LABEL_LEN: usize = 63;
    let label_ok = |l: &[u8]| !l.is_empty() && l.len() <= MAX_LABEL_LEN && !l.starts_with(b"xn--");
    let b = name.as_bytes();
    if b.len() > MAX_HOST_LEN {
        return false;
    }
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'a'..=b'z' | b'0'..=b'9' | b'-' => {}
            b'.' => {
                if !label_ok(&b[start..i]) {
                    return false;
                }
                start = i + 1;
            }
            _ => return false,
        }
    }
    let last = &b[start..];
    let numeric = last.iter().all(u8::is_ascii_digit);
    let hex = last
        .strip_prefix(b"0x")
        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
    label_ok(last) && !numeric && !hex
}

/// Validates one host name: `*.` wildcard, IDNA (UTS #46 non-transitional, U-labels accepted,
/// A-labels stored), no IP addresses, no public suffixes nor wildcards over them.
pub(crate) fn host_rule(written: &str, include_subdomains: bool) -> Result<HostRule, K> {
    let (rest, coverage) = match written.strip_prefix("*.") {
        Some(rest) => (rest, Coverage::SubdomainsOnly),
        None if include_subdomains => (written, Coverage::WithSubdomains),
        None => (written, Coverage::Exact),
    };
    if rest.contains('*') {
        return Err(K::BadWildcard {
            value: written.to_owned(),
        });
    }
    if rest.contains([':', '/', '@', '?', '#']) && !looks_like_ip(rest) {
        return Err(K::NotBareHost {
            value: written.to_owned(),
        });
    }
    if looks_like_ip(rest) {
        return Err(K::IpHost {
            value: written.to_owned(),
        });
    }
    let trimmed = rest.strip_suffix('.').unwrap_or(rest);
    // Lowercase letters, digits, '-' and '.' without an `xn--` label map to themselves under
    // UTS #46; skipping the mapping for them is what lets a million-host table validate fast.
    let plain = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !has_a_label(s)
    };
    let ascii = if plain(trimmed) {
        std::borrow::Cow::Borrowed(trimmed)
    } else {
        idna::domain_to_ascii_cow(trimmed.as_bytes(), idna::AsciiDenyList::URL).map_err(
            |source| K::Idna {
                value: written.to_owned(),
                source,
            },
        )?
    };
    // Full-width digits and dots fold to ASCII: check again after mapping.
    if matches!(ascii, std::borrow::Cow::Owned(_)) && looks_like_ip(&ascii) {
        return Err(K::IpHost {
            value: written.to_owned(),
        });
    }
    let name = crate::authority::check_reg_name(&ascii).map_err(|source| K::BadHost {
        value: written.to_owned(),
        source,
    })?;
    if name.ends_with('.') || name.is_empty() {
        return Err(K::BadHost {
            value: written.to_owned(),
            source: crate::HostError::EmptyLabel,
        });
    }
    if is_public_suffix(name) {
        return Err(match coverage {
            Coverage::SubdomainsOnly => K::WildcardOverPublicSuffix {
                value: written.to_owned(),
            },
            _ => K::PublicSuffix {
                value: written.to_owned(),
            },
        });
    }
    // Only names with an A-label have a different Unicode form.
    let unicode = if has_a_label(name) {
        let (unicode, ok) = idna::domain_to_unicode(name);
        (ok.is_ok() && unicode != name).then_some(unicode)
    } else {
        None
    };
    Ok(HostRule {
        name: name.to_owned(),
        unicode,
        coverage,
    })
}

/// Whether any label is an A-label (`xn--…`, any case).
fn has_a_label(name: &str) -> bool {
    name.split('.')
        .any(|l| l.len() >= 4 && l.as_bytes()[..4].eq_ignore_ascii_case(b"xn--"))
}

/// Whether a name is a public suffix (`com`, `co.uk`, `github.io`), including single labels
/// the list does not know (the list's default `*` rule).
fn is_public_suffix(name: &str) -> bool {
    psl::suffix(name.as_bytes()).is_some_and(|s| s.as_bytes() == name.as_bytes())
}

/// IPv4 (also the WHATWG shorthands `127.1`, `0x7f.1`: a numeric last label), IPv6, bracketed.
fn looks_like_ip(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    // Only hex digits, '.' and ':' make an address: skip the parse for ordinary names.
    let could_be_address = unbracketed
        .bytes()
        .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':');
    if could_be_address && unbracketed.parse::<IpAddr>().is_ok() {
        return true;
    }
    let last = host.rsplit('.').next().unwrap_or(host);
    let hex = last
        .strip_prefix("0x")
        .or_else(|| last.strip_prefix("0X"))
        .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
    (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())) || hex
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The one-pass check never accepts a name the full check would change or refuse.
        #[test]
        fn plain_names_are_what_the_full_check_keeps(
            name in "((xn--|0x)?[a-z0-9\\-]{0,5}\\.?){1,5}",
            subdomains: bool,
        ) {
            if plain_name(&name) && !is_public_suffix(&name) {
                let rule = host_rule(&name, subdomains);
                prop_assert!(rule.is_ok(), "{name:?}: {rule:?}");
                if let Ok(rule) = rule {
                    prop_assert_eq!(&rule.name, &name);
                    prop_assert_eq!(rule.unicode, None);
                }
            }
        }
    }

    #[test]
    fn plain_names() {
        for yes in ["shop.example", "a-b.c0.example", "h1.example"] {
            assert!(plain_name(yes), "{yes}");
        }
        for no in [
            "",
            "Shop.example",
            "shop.example.",
            "a..example",
            "*.example",
            "xn--bcher-kva.example",
            "1.2.3.4",
            "a.0x1f",
            "a.0x",
            "a.123",
            "bücher.example",
            "a_b.example",
        ] {
            assert!(!plain_name(no), "{no}");
        }
        assert!(!plain_name(&format!("{}.example", "a".repeat(64))));
        assert!(!plain_name(&format!("{}.example", "a.".repeat(124))));
    }

    fn ok(name: &str, sub: bool) -> HostRule {
        match host_rule(name, sub) {
            Ok(r) => r,
            Err(e) => panic!("{name:?}: {e}"),
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(ok("Pirate.Example", false).name, "pirate.example");
        assert_eq!(
            ok("pirate.example.", true).coverage,
            Coverage::WithSubdomains
        );
        let w = ok("*.pirate.example", false);
        assert_eq!(
            (w.name.as_str(), w.coverage),
            ("pirate.example", Coverage::SubdomainsOnly)
        );
        let idn = ok("bücher.example", false);
        assert_eq!(idn.name, "xn--bcher-kva.example");
        assert_eq!(idn.unicode.as_deref(), Some("bücher.example"));
        assert_eq!(
            ok("xn--bcher-kva.example", false).unicode.as_deref(),
            Some("bücher.example")
        );
        // UTS #46 non-transitional: ß stays ß (transitional would make it "ss").
        assert_eq!(ok("faß.example", false).name, "xn--fa-hia.example");
        assert_eq!(ok("shop.co.uk", false).name, "shop.co.uk");
    }

    #[test]
    fn refused_hosts() {
        type Want = fn(&K) -> bool;
        let cases: &[(&str, Want)] = &[
            ("192.0.2.1", |k| matches!(k, K::IpHost { .. })),
            ("[2001:db8::1]", |k| matches!(k, K::IpHost { .. })),
            ("2001:db8::1", |k| matches!(k, K::IpHost { .. })),
            ("127.1", |k| matches!(k, K::IpHost { .. })),
            ("１２７.０.０.１", |k| matches!(k, K::IpHost { .. })),
            ("com", |k| matches!(k, K::PublicSuffix { .. })),
            ("co.uk", |k| matches!(k, K::PublicSuffix { .. })),
            ("github.io", |k| matches!(k, K::PublicSuffix { .. })),
            ("*.com", |k| matches!(k, K::WildcardOverPublicSuffix { .. })),
            ("*.co.uk", |k| {
                matches!(k, K::WildcardOverPublicSuffix { .. })
            }),
            ("a.*.example", |k| matches!(k, K::BadWildcard { .. })),
            ("*", |k| matches!(k, K::BadWildcard { .. })),
            ("shop.example:443", |k| matches!(k, K::NotBareHost { .. })),
            ("https://shop.example", |k| {
                matches!(k, K::NotBareHost { .. })
            }),
            ("xn--a.example", |k| matches!(k, K::Idna { .. })),
            ("a..example", |k| {
                matches!(k, K::Idna { .. } | K::BadHost { .. })
            }),
            ("sh op.example", |k| {
                matches!(k, K::Idna { .. } | K::BadHost { .. })
            }),
        ];
        for (name, want) in cases {
            match host_rule(name, false) {
                Ok(r) => panic!("{name:?} accepted as {r:?}"),
                Err(k) => assert!(want(&k), "{name:?}: {k:?}"),
            }
        }
    }
}
