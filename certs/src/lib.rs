//! Certificate store and SNI resolution for Portcullis.
//!
//! This crate will hold the certificate store, the rustls SNI resolver with hot reload and dev
//! certificate generation, and it knows nothing about HTTP. It is empty until TLS termination
//! lands (tracked as its own issue): the forwarding core serves plain HTTP/1.1 and h2c only, and
//! nothing here pretends otherwise.
