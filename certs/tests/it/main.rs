//! Integration tests for `portcullis-certs`: one binary, real files in tempdirs, real handshakes
//! on `127.0.0.1:0`.

// clippy.toml allows unwrap in tests, but clippy only sees `#[test]` functions as tests; the
// fixtures in this binary are test code too, and a failed setup is a failed test.
#![allow(clippy::unwrap_used)]

mod formats;
mod generate;
mod lookup;
mod reload;
mod support;
mod tls;
mod watch;
