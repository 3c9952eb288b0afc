//! Legal orders end to end (POLICY-SPEC.md, issue #5): real origins and clients against a proxy
//! enforcing a policy file, one module per topic (country scope with a test GeoIP database in
//! `geo`).
//!
//! Every blocked request is also checked against the origin's request counter: a blocked
//! request must never reach it.

mod actions;
mod bypass;
mod clock;
mod cut;
mod fleet;
mod geo;
mod reload;
mod signed;
mod startup;
mod tls;

use portcullis_tests::policy::{Order, PolicyFile};
use portcullis_tests::{OriginHandle, Scrape, Site, TestProxy};

/// The admin token of every policy test proxy.
const TOKEN: &str = "policy-test-token";

/// The suspended host of most tests, and its site.
const PIRATE: &str = "pirate.example";

/// Every host the tests send to, all served by one site so an allowed request reaches the
/// origin whatever its host (a blocked one never does).
const HOSTS: &[&str] = &[
    "shop.example",
    "pirate.example",
    "www.pirate.example",
    "a.b.pirate.example",
    "notpirate.example",
    "pirate.example.evil",
    "files.example",
    "wild.example",
    "x.wild.example",
    "forbidden.example",
    "missing.example",
    "moved.example",
    "dropped.example",
    "watched.example",
    "strict.example",
    "future.example",
    "expired.example",
    "lifted.example",
    "current.example",
];

/// A proxy with one site for [`HOSTS`] on `origin`, the admin token [`TOKEN`] and `policy` as
/// its policy file.
fn proxy_with(origin: &OriginHandle, policy: &PolicyFile) -> TestProxy {
    let mut site = Site::new("all", HOSTS[0]).origin(&origin.url());
    for h in &HOSTS[1..] {
        site = site.host(h);
    }
    TestProxy::new()
        .site(site)
        .admin_token(TOKEN)
        .policy(&policy.render())
}

/// The 451 order of most tests: `pirate.example` and its subdomains.
fn pirate_order() -> Order {
    Order::new("PIRATE-451", PIRATE)
        .include_subdomains()
        .authority("Court <of> \"Tests\" & Co", "court", "US")
        .legal_basis("17 U.S.C. 512(j) <script>alert(1)</script>")
        .reference("1:26-cv-00142 & <b>")
        .notice_url("https://notices.example/o?a=1&b=2")
}

/// `portcullis_policy_blocked_requests_total{order, action}`, 0 when not yet created.
fn blocked_count(s: &Scrape, order: &str, action: &str) -> anyhow::Result<f64> {
    s.get_or_zero(
        "portcullis_policy_blocked_requests_total",
        &[("order", order), ("action", action)],
    )
}
