//! Legal-order policy for Portcullis.
//!
//! This crate is pure: it takes `&str`/bytes and returns decisions, with no async runtime, no
//! HTTP stack and no file I/O, so every rule in it can be tested exhaustively and property-tested
//! against a naive reference.
//!
//! Layout:
//! - [`authority`]: the one canonicalisation of a request's host, shared by routing, policy, the
//!   cache key and the access log.
//!
//! The legal-order schema, its validation and the compiled lookup table arrive with the policy
//! issue; until then this crate holds only what the forwarding core needs.

pub mod authority;

pub use authority::{HostError, canonical_host};
