//! Invalidation after unsafe requests (RFC 9111 §4.4).

use http::header::{CONTENT_LOCATION, LOCATION};
use http::{HeaderMap, Method, StatusCode};

use super::is_unsafe;

/// What an unsafe request invalidates besides its own target (RFC 9111 §4.4): the targets of
/// `Location` and `Content-Location` when they have the same origin (`authority`, the canonical
/// host), as origin-form paths (`/p?q`), for a non-error response (2xx or 3xx). Relative
/// references resolve against `target`.
///
/// References resolve as RFC 3986 §5.2 says (dot segments removed, fragment dropped). An
/// absolute or network-path reference counts as same-origin when its scheme is http or https
/// and its host, lowercased, without port, userinfo or one trailing dot, equals `authority`
/// (the cache key holds the host alone). Duplicates are listed once; values that are not
/// visible ASCII are ignored.
pub fn invalidations(
    method: &Method,
    status: StatusCode,
    authority: &str,
    target: &str,
    resp: &HeaderMap,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if !is_unsafe(method) || !(status.is_success() || status.is_redirection()) {
        return out;
    }
    for name in [LOCATION, CONTENT_LOCATION] {
        let Some(reference) = resp.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        if let Some(path) = resolve(authority, target, reference.trim()) {
            if !out.contains(&path) {
                out.push(path);
            }
        }
    }
    out
}

fn resolve(authority: &str, base: &str, reference: &str) -> Option<String> {
    let reference = reference.split('#').next().unwrap_or_default();
    if reference.is_empty() {
        return None; // the target itself
    }
    if let Some((scheme, rest)) = split_scheme(reference) {
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return None;
        }
        return same_origin(authority, rest.strip_prefix("//")?);
    }
    if let Some(rest) = reference.strip_prefix("//") {
        return same_origin(authority, rest);
    }
    let (path, query) = split_query(reference);
    let (base_path, base_query) = split_query(base);
    let path = if path.starts_with('/') {
        path.to_owned()
    } else if path.is_empty() {
        // "?q" keeps the base path; the base query goes unless a new one is given.
        let query = if query.is_empty() { base_query } else { query };
        return Some(remove_dot_segments(base_path) + query);
    } else {
        let dir = base_path.rfind('/').map_or("/", |i| &base_path[..=i]);
        format!("{dir}{path}")
    };
    Some(remove_dot_segments(&path) + query)
}

/// `scheme ":" rest` when the reference starts with a scheme (RFC 3986 §3.1).
fn split_scheme(reference: &str) -> Option<(&str, &str)> {
    let colon = reference.find(':')?;
    let scheme = &reference[..colon];
    let mut chars = scheme.chars();
    let first_alpha = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    (first_alpha && rest_ok).then(|| (scheme, &reference[colon + 1..]))
}

/// `(path, "?query")`, the query with its `?` (empty when absent).
fn split_query(s: &str) -> (&str, &str) {
    match s.find('?') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

/// `authority path-abempty [? query]` → the origin-form, when the host is `authority`.
fn same_origin(authority: &str, rest: &str) -> Option<String> {
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (host_port, path_query) = rest.split_at(end);
    let host_port = host_port.rsplit('@').next().unwrap_or_default();
    let host = if host_port.starts_with('[') {
        &host_port[..=host_port.find(']')?]
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            Some(_) => return None,
            None => host_port,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if !host.eq_ignore_ascii_case(authority) {
        return None;
    }
    let (path, query) = split_query(path_query);
    let path = if path.is_empty() { "/" } else { path };
    Some(remove_dot_segments(path) + query)
}

/// RFC 3986 §5.2.4, for a path starting with "/".
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => {
                out.push(s);
                continue;
            }
        }
        if i == last {
            out.push(""); // "/a/.." is "/a/", not "/a"
        }
    }
    format!("/{}", out.join("/"))
}
