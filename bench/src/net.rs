//! Loopback-only networking: the target check, free ports, a minimal
//! HTTP/1.1 client for correctness checks, and the idle-connection holder.
//!
//! The harness must never load anything but this machine, so every address
//! it sends to goes through [`ensure_loopback`] or is built by [`loopback`].

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The Host every request carries; all three proxies route it to the origin.
pub const BENCH_HOST: &str = "bench.example";

/// Accepts only a literal loopback IP (127.0.0.0/8 or ::1). Names are refused
/// too: a name can resolve anywhere, and "localhost" needs no special case.
pub fn ensure_loopback(host: &str) -> Result<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = bare
        .parse()
        .with_context(|| format!("refusing target {host:?}: not a literal loopback IP"))?;
    if !ip.is_loopback() {
        bail!("refusing target {host:?}: not a loopback address");
    }
    Ok(ip)
}

/// Checks the host part of an `http://HOST:PORT/path` or `https://…` URL, as
/// handed to wrk, h2load or nghttp.
pub fn ensure_loopback_url(url: &str) -> Result<()> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .with_context(|| {
            format!("refusing target {url:?}: only http:// and https:// URLs are used")
        })?;
    let authority = rest.split('/').next().unwrap_or_default();
    // Bracketed IPv6 keeps its colons inside the brackets.
    let host = match authority.rfind(']') {
        Some(end) => &authority[..=end],
        None => authority.split(':').next().unwrap_or_default(),
    };
    ensure_loopback(host).map(|_| ())
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

/// A port that was free a moment ago. Another process could take it before
/// the server binds; the server then fails to start with a clear error.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(loopback(0)).context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr().context("local_addr")?.port())
}

/// What a correctness check needs from a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, values trimmed, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one HTTP/1.1 response (head, then a body framed by Content-Length,
/// chunked encoding, or end of stream), leaving the stream positioned after
/// it so a keep-alive connection can be reused.
pub fn read_response(r: &mut impl BufRead) -> Result<Response> {
    let mut line = String::new();
    r.read_line(&mut line).context("reading status line")?;
    let mut parts = line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        bail!("not an HTTP/1 status line: {:?}", line.trim_end());
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {:?}", line.trim_end()))?;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line).context("reading header")? == 0 {
            bail!("connection closed inside the response head");
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            bail!("malformed header {header:?}");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(
                value
                    .parse()
                    .with_context(|| format!("bad Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
        headers.push((name.trim().to_ascii_lowercase(), value.to_owned()));
    }
    let mut body = Vec::new();
    if chunked {
        read_chunked(r, &mut body)?;
    } else if let Some(n) = content_length {
        body.resize(n, 0);
        r.read_exact(&mut body)
            .with_context(|| format!("body shorter than Content-Length {n}"))?;
    } else if status != 204 && status != 304 {
        r.read_to_end(&mut body).context("reading body to EOF")?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn read_chunked(r: &mut impl BufRead, body: &mut Vec<u8>) -> Result<()> {
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).context("reading chunk size")?;
        let size_hex = line.trim_end().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_hex.trim(), 16)
            .with_context(|| format!("bad chunk size {:?}", line.trim_end()))?;
        if size == 0 {
            // Trailers, then the empty line.
            loop {
                line.clear();
                if r.read_line(&mut line).context("reading trailer")? == 0
                    || line.trim_end().is_empty()
                {
                    return Ok(());
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..]).context("short chunk")?;
        line.clear();
        r.read_line(&mut line).context("reading chunk end")?;
    }
}

pub fn request(path: &str, keep_alive: bool) -> String {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    format!("GET {path} HTTP/1.1\r\nHost: {BENCH_HOST}\r\nConnection: {connection}\r\n\r\n")
}

/// One GET for the bench host over a fresh connection, bounded by `timeout`
/// per I/O step.
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Result<Response> {
    http_exchange(port, "GET", path, BENCH_HOST, &[], timeout)
}

/// One request with no body (`Connection: close`) over a fresh connection,
/// bounded by `timeout` per I/O step.
pub fn http_exchange(
    port: u16,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Result<Response> {
    let addr = loopback(port);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    stream
        .write_all(req.as_bytes())
        .with_context(|| format!("sending {method} {path} to {addr}"))?;
    read_response(&mut BufReader::new(stream))
        .with_context(|| format!("{method} {path} (Host {host}) from {addr}"))
}

/// Keep-alive connections each carrying one finished request, held open.
#[derive(Debug)]
pub struct IdleConnections {
    conns: Vec<BufReader<TcpStream>>,
    pub failed: usize,
    pub first_error: Option<String>,
}

impl IdleConnections {
    pub fn opened(&self) -> usize {
        self.conns.len()
    }
}

/// Opens up to `n` connections to `port`, sends one keep-alive request on
/// each and reads the whole response, then keeps them open and idle. Stops
/// early at `deadline`, or after many failures, so it is always bounded.
pub fn open_idle(port: u16, path: &str, n: usize, deadline: Instant) -> IdleConnections {
    let addr = loopback(port);
    let req = request(path, true);
    let step = Duration::from_secs(5);
    let mut idle = IdleConnections {
        conns: Vec::with_capacity(n),
        failed: 0,
        first_error: None,
    };
    let one = || -> Result<BufReader<TcpStream>> {
        let mut stream = TcpStream::connect_timeout(&addr, step)?;
        stream.set_read_timeout(Some(step))?;
        stream.set_write_timeout(Some(step))?;
        stream.write_all(req.as_bytes())?;
        let mut reader = BufReader::new(stream);
        let resp = read_response(&mut reader)?;
        if resp.status != 200 {
            bail!("status {}", resp.status);
        }
        Ok(reader)
    };
    for _ in 0..n {
        if Instant::now() >= deadline || idle.failed > n / 10 + 10 {
            break;
        }
        match one() {
            Ok(conn) => idle.conns.push(conn),
            Err(e) => {
                idle.failed += 1;
                idle.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    idle
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_targets_only() {
        for ok in ["127.0.0.1", "127.0.0.2", "::1", "[::1]"] {
            assert!(ensure_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "10.0.0.1",
            "0.0.0.0",
            "192.168.1.1",
            "::",
            "2001:db8::1",
            "localhost",
            "example.com",
            "",
            "[::1",
        ] {
            assert!(ensure_loopback(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_urls_only() {
        assert!(ensure_loopback_url("http://127.0.0.1:8080/1k").is_ok());
        assert!(ensure_loopback_url("http://[::1]:8080/1k").is_ok());
        assert!(ensure_loopback_url("http://127.0.0.1/").is_ok());
        assert!(ensure_loopback_url("http://10.1.2.3:8080/1k").is_err());
        assert!(ensure_loopback_url("http://bench.example:8080/1k").is_err());
        assert!(ensure_loopback_url("https://127.0.0.1:8443/").is_ok());
        assert!(ensure_loopback_url("https://10.1.2.3:8443/").is_err());
        assert!(ensure_loopback_url("https://bench.example:8443/").is_err());
        assert!(ensure_loopback_url("ftp://127.0.0.1/").is_err());
        assert!(ensure_loopback_url("http://[2001:db8::1]:80/").is_err());
    }

    #[test]
    fn content_length_response_leaves_the_next_one() -> Result<()> {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhelloHTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        let mut r = &wire[..];
        let first = read_response(&mut r)?;
        assert_eq!((first.status, first.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(first.header("server"), Some("x"));
        assert_eq!(first.header("content-length"), Some("5"));
        assert_eq!(first.header("link"), None);
        let second = read_response(&mut r)?;
        assert_eq!((second.status, second.body.len()), (404, 0));
        Ok(())
    }

    #[test]
    fn chunked_and_eof_bodies() -> Result<()> {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n";
        let resp = read_response(&mut &wire[..])?;
        assert_eq!(resp.body, b"abcde");
        let wire = b"HTTP/1.0 200 OK\r\n\r\nuntil close";
        assert_eq!(read_response(&mut &wire[..])?.body, b"until close");
        Ok(())
    }

    #[test]
    fn malformed_responses_are_errors() {
        let cases: [&[u8]; 4] = [
            b"SSH-2.0-OpenSSH\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nContent-Length",
        ];
        for wire in cases {
            assert!(read_response(&mut &wire[..]).is_err());
        }
    }
}
