//! End-to-end tests of the proxy running in-process on `127.0.0.1:0`, one module per topic.
//!
//! One test binary rather than one per file: each binary links the whole HTTP stack, and on a
//! 2-core machine linking them one by one costs more than the tests. Tests inside run in
//! parallel; each starts its own origins and proxy, so they share nothing.
//!
//! The real binary is exercised by `streaming.rs` (memory under a 1 GiB transfer) and by
//! `proxy/tests/cli.rs` (check, demo, SIGTERM).

mod admin;
mod bad_requests;
mod cache;
mod connections;
mod drain;
mod faults;
mod forwarding;
mod http1;
mod load_balancing;
mod origin_tls;
mod policy;
mod protection;
mod tls;
mod tls_reload;
mod websocket;

use portcullis_tests::{OriginHandle, Site, TestProxy};

/// The host every single-site test routes on.
const SHOP: &str = "shop.example";

/// A proxy config with one site, `shop`, for [`SHOP`], served by `origin`.
fn shop(origin: &OriginHandle) -> TestProxy {
    TestProxy::new().site(Site::new("shop", SHOP).origin(&origin.url()))
}
