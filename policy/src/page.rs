//! The responses for a blocked request, as pure functions (RFC 7725, RFC 9457, RFC 8288).
//!
//! The proxy calls [`blocked_response`] with the winning order of a
//! [`Verdict::Block`](crate::Verdict::Block) and writes what it returns: status, headers, body.
//! Every interpolated field is escaped for its context (HTML text and attributes, JSON strings).
//! A `sealed` order discloses nothing but the fact of a legal block: no authority, law,
//! reference, jurisdiction, dates or notice link; with `action: status` it is a plain 403/404.

use std::fmt::Write as _;

use crate::model::{Action, Disclosure, Order};
use crate::validate::fmt_time;

/// A response the proxy writes as is. `Close` and `RefuseTls` have none (drop the connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedResponse {
    pub status: u16,
    /// Always includes `Cache-Control: no-store`; a 451 also carries the RFC 7725 `Link`.
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// Which body the client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Html,
    /// `application/problem+json` (RFC 9457).
    ProblemJson,
}

/// The `Link` header value of a 451: `<blocked_by>; rel="blocked-by"` (RFC 7725 §4). The URL
/// is the operator's own (validated: `https://`, nothing that needs escaping in a header).
pub fn link_header(blocked_by: &str) -> String {
    format!("<{blocked_by}>; rel=\"blocked-by\"")
}

/// Whether a client prefers JSON: `application/problem+json` or `application/json` with a
/// higher q-value than `text/html` (ties and wildcards go to HTML).
pub fn wants_json(accept: &str) -> bool {
    let (mut json, mut html) = (0u16, 0u16);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        // An unreadable q-value counts as 0: the range is ignored rather than preferred.
        let q = parts
            .find_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .or_else(|| p.trim().strip_prefix("Q="))
            })
            .map_or(1000, |q| parse_q(q).unwrap_or(0));
        match media.as_str() {
            "application/problem+json" | "application/json" => json = json.max(q),
            "text/html" | "application/xhtml+xml" | "text/*" | "*/*" => html = html.max(q),
            _ => {}
        }
    }
    json > 0 && json > html
}

/// An HTTP qvalue in thousandths.
fn parse_q(q: &str) -> Option<u16> {
    let (int, frac) = q.split_once('.').unwrap_or((q, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u16 = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let mut thousandths = 0u16;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    Some((whole + thousandths).min(1000))
}

/// The response for a request blocked by `order`. `host` is the canonical host (shown to say
/// what is blocked), `request_id` the proxy's id for the request (for support queries).
pub fn blocked_response(
    order: &Order,
    blocked_by: &str,
    host: &str,
    request_id: &str,
    format: Format,
) -> Option<BlockedResponse> {
    let no_store = ("Cache-Control", "no-store".to_owned());
    let sealed = order.disclosure == Disclosure::Sealed;
    match order.action {
        Action::Close | Action::RefuseTls => None,
        Action::Redirect => Some(BlockedResponse {
            status: 307,
            headers: vec![("Location", order.notice_url.clone()), no_store],
            body: String::new(),
        }),
        Action::Status(code) => {
            let (title, detail) = match code.code() {
                403 => ("Forbidden", "Access to this resource is forbidden."),
                _ => ("Not Found", "The requested resource was not found."),
            };
            Some(plain(
                code.code(),
                title,
                detail,
                request_id,
                format,
                vec![no_store],
            ))
        }
        Action::Unavailable451 => {
            let link = ("Link", link_header(blocked_by));
            let headers = vec![link, no_store];
            if sealed {
                let detail = "Access to this resource is blocked in response to a legal demand.";
                let title = "Unavailable For Legal Reasons";
                return Some(plain(451, title, detail, request_id, format, headers));
            }
            let body = match format {
                Format::Html => html_451(order, host, request_id),
                Format::ProblemJson => json_451(order, host, request_id),
            };
            Some(with_type(451, headers, body, format))
        }
    }
}

fn with_type(
    status: u16,
    mut headers: Vec<(&'static str, String)>,
    body: String,
    format: Format,
) -> BlockedResponse {
    let ct = match format {
        Format::Html => "text/html; charset=utf-8",
        Format::ProblemJson => "application/problem+json",
    };
    headers.insert(0, ("Content-Type", ct.to_owned()));
    BlockedResponse {
        status,
        headers,
        body,
    }
}

/// A body that names no order: sealed 451s and `status` actions.
fn plain(
    status: u16,
    title: &str,
    detail: &str,
    request_id: &str,
    format: Format,
    headers: Vec<(&'static str, String)>,
) -> BlockedResponse {
    let body = match format {
        Format::Html => format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{status} {t}</title></head>\
             <body><h1>{t}</h1><p>{d}</p><p>Request id: <code>{r}</code></p></body></html>\n",
            t = html(title),
            d = html(detail),
            r = html(request_id),
        ),
        Format::ProblemJson => format!(
            "{{\"type\":\"about:blank\",\"title\":{},\"status\":{status},\"detail\":{},\"request_id\":{}}}\n",
            json(title),
            json(detail),
            json(request_id)
        ),
    };
    with_type(status, headers, body, format)
}

/// "Worldwide" or the list of countries the order applies in.
fn territory(order: &Order) -> String {
    if order.scope.countries.is_empty() {
        "worldwide".to_owned()
    } else {
        let codes: Vec<&str> = order.scope.countries.iter().map(|c| c.as_str()).collect();
        codes.join(", ")
    }
}

fn html_451(order: &Order, host: &str, request_id: &str) -> String {
    let mut rows = String::new();
    let fields = [
        ("Blocked host", host.to_owned()),
        ("Demanded by", order.authority.name.clone()),
        ("Authority type", order.authority.kind.as_str().to_owned()),
        (
            "Jurisdiction",
            order.authority.jurisdiction.as_str().to_owned(),
        ),
        ("Legal basis", order.legal_basis.clone()),
        ("Reference", order.reference.clone()),
        ("Territorial scope", territory(order)),
        ("In effect since", fmt_time(order.effective_from)),
        ("Request id", request_id.to_owned()),
    ];
    for (k, v) in fields {
        let _ = write!(rows, "<tr><th>{}</th><td>{}</td></tr>", html(k), html(&v));
    }
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
         <title>451 Unavailable For Legal Reasons</title></head><body>\
         <h1>Unavailable For Legal Reasons</h1>\
         <p>Access to this resource has been blocked in response to a legal demand.</p>\
         <table>{rows}</table>\
         <p>The order is published at <a href=\"{u}\" rel=\"nofollow\">{u}</a>.</p>\
         </body></html>\n",
        u = html(&order.notice_url),
    )
}

fn json_451(order: &Order, host: &str, request_id: &str) -> String {
    format!(
        "{{\"type\":\"about:blank\",\"title\":\"Unavailable For Legal Reasons\",\"status\":451,\
         \"detail\":{},\"host\":{},\"authority\":{},\"authority_type\":{},\"jurisdiction\":{},\
         \"legal_basis\":{},\"reference\":{},\"territorial_scope\":{},\"effective_from\":{},\
         \"notice_url\":{},\"order_id\":{},\"request_id\":{}}}\n",
        json("Access to this resource has been blocked in response to a legal demand."),
        json(host),
        json(&order.authority.name),
        json(order.authority.kind.as_str()),
        json(order.authority.jurisdiction.as_str()),
        json(&order.legal_basis),
        json(&order.reference),
        json(&territory(order)),
        json(&fmt_time(order.effective_from)),
        json(&order.notice_url),
        json(&order.id),
        json(request_id),
    )
}

/// Escapes text for HTML element content and double-quoted attributes.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON string literal, quotes included (RFC 8259 §7; `<`, `>` and `&` escaped too so the
/// body is inert if a browser sniffs it as HTML).
pub fn json(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
