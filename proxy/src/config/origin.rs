//! Origin URLs as written in `sites[].origins`.

/// `http://host[:port][/]` → `(host:port, false)`; `https://…` → `(host:port, true)`.
pub(super) fn parse_origin(url: &str) -> Result<(http::uri::Authority, bool), &'static str> {
    let uri: http::Uri = url.parse().map_err(|_| "not a URL")?;
    let (tls, default_port) = match uri.scheme_str() {
        Some("http") => (false, 80),
        Some("https") => (true, 443),
        _ => return Err("the scheme must be http:// or https://"),
    };
    let authority = uri.authority().ok_or("missing host")?;
    if authority.as_str().contains('@') {
        return Err("userinfo is not allowed");
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("an origin is scheme://host:port only, without a path or query");
    }
    if authority.host().is_empty() {
        return Err("missing host");
    }
    let with_port = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(default_port)
    );
    let authority = with_port.parse().map_err(|_| "bad host or port")?;
    Ok((authority, tls))
}
