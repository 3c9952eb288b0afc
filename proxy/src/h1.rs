//! Our own HTTP/1.1 engine for client connections: head parsing (httparse), body framing,
//! response writing and the per-connection loop.
//!
//! Why not hyper's server here: an idle hyper HTTP/1 connection holds an 8 KiB read buffer and an
//! 8 KiB write buffer that cannot be configured away, and its request framing accepts
//! Content-Length together with Transfer-Encoding, which a proxy must refuse. This engine keeps no
//! buffer on an idle connection, refuses every smuggling shape, and writes the response head and
//! the first body bytes in one `writev`. HTTP/2 (h2c) still goes to hyper (see `server.rs`).

pub mod client;
pub mod decode;
pub mod io;
pub mod maps;
pub mod parse;
pub mod serve;
pub mod write;
