//! Portcullis: an edge reverse proxy that terminates client connections, forwards them to
//! customers' origin servers, and enforces legal orders per request.
//!
//! What this crate does: listeners and connection handling ([`server`], `conn`), the request
//! pipeline ([`pipeline`] — read its chart first), forwarding and origin pools ([`forward`],
//! [`upstream`]), configuration ([`config`]), the legal-order runtime ([`policy`]: loading,
//! reloads, cuts; signed policy bundles in [`bundle`]; the etcd fleet source and node reports in
//! [`fleet`]), the client's country ([`geo`]), admin endpoints and metrics ([`admin`],
//! [`metrics`]), the hash-chained audit log ([`audit`]), and the CLI commands ([`cli`], with
//! the self-contained [`demo`]).
//!
//! TLS termination lives in [`tls`] (handshake, SNI, reload); the certificates themselves are
//! loaded and resolved by `portcullis-certs`.
//!
//! What it does not: parse legal orders or canonicalise hosts (`portcullis-policy`, pure), or
//! load certificates (`portcullis-certs`).

pub mod admin;
pub mod audit;
pub mod authority;
pub mod body;
pub mod bundle;
pub mod cache;
pub mod cli;
mod clock;
pub mod complete;
pub mod config;
pub mod conn;
pub mod demo;
pub mod error;
pub mod fleet;
pub mod forward;
pub mod geo;
pub mod h1;
pub mod metrics;
pub mod pipeline;
pub mod policy;
pub mod protection;
pub mod route;
pub mod server;
pub mod tls;
pub mod upstream;

pub use config::Config;
pub use server::{Proxy, ServeError};
