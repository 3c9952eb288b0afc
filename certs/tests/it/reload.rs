//! Reload: a good directory replaces the set, a bad one changes nothing; resumption survives.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use portcullis_certs::{CertStore, ReloadSummary, server_config};
use rustls::HandshakeKind;
use rustls::client::{Resumption, Tls12Resumption};
use rustls::server::NoServerSessionStorage;
use rustls::version::{TLS12, TLS13};

use crate::support::{ALPN, Leaf, TestCa, connect, serve, served_serial, write_pair};

#[tokio::test]
async fn reload_replaces_a_certificate_for_the_next_handshake() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let old = ca.leaf(&["api.example"]);
    write_pair(dir.path(), "api", &old);
    let store = CertStore::load(dir.path(), None).unwrap();
    let addr = serve(server_config(&store, ALPN).unwrap()).await;
    let client = ca.client(&[&TLS13, &TLS12], Resumption::disabled());
    assert_eq!(
        connect(client.clone(), addr, "api.example")
            .await
            .unwrap()
            .serial,
        old.serial
    );

    let new = ca.leaf(&["api.example"]);
    write_pair(dir.path(), "api", &new);
    write_pair(dir.path(), "web", &ca.leaf(&["web.example"]));
    let summary = store.reload().unwrap();
    assert_eq!(
        summary,
        ReloadSummary {
            pairs: 2,
            added: vec!["web".into()],
            removed: vec![],
            changed: vec!["api".into()],
        }
    );
    let seen = connect(client.clone(), addr, "api.example").await.unwrap();
    assert_eq!(seen.serial, new.serial);
    assert!(connect(client, addr, "web.example").await.is_ok());

    // Nothing changed: nothing reported.
    assert!(store.reload().unwrap().is_unchanged());
}

#[tokio::test]
async fn a_bad_reload_keeps_the_last_good_set_and_names_the_file() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let good = ca.leaf(&["api.example"]);
    let (cert, key) = write_pair(dir.path(), "api", &good);
    let store = CertStore::load(dir.path(), None).unwrap();
    let addr = serve(server_config(&store, ALPN).unwrap()).await;
    let client = ca.client(&[&TLS13, &TLS12], Resumption::disabled());

    let other = ca.leaf(&["api.example"]);
    let expired = ca.expired_leaf(&["api.example"]);
    let d = dir.path();
    let cases: Vec<(&str, BreakIt)> = vec![
        (
            "corrupt certificate",
            Box::new(|| write(&cert, "-----BEGIN CERTIFICATE-----\n!!!!\n")),
        ),
        (
            "half-written certificate",
            Box::new(|| write(&cert, &other.cert[..other.cert.len() - 40])),
        ),
        (
            "half-written key",
            Box::new(|| write(&key, &good.key[..good.key.len() / 2])),
        ),
        (
            "mismatched key",
            Box::new(|| {
                write(&cert, &other.cert);
                key.clone()
            }),
        ),
        (
            "expired certificate",
            Box::new(|| write_pair(d, "api", &expired).0),
        ),
    ];
    for (what, break_it) in cases {
        let named = break_it();
        let err = store.reload().unwrap_err();
        assert!(err.mentions(&named), "{what}: {err}");
        assert!(
            err.to_string().contains(&named.display().to_string()),
            "{what}: {err}"
        );
        // Still served, by lookup and by a real handshake.
        assert_eq!(
            served_serial(&store, "api.example"),
            Some(good.serial.clone())
        );
        let seen = connect(client.clone(), addr, "api.example").await.unwrap();
        assert_eq!(seen.serial, good.serial, "{what}");
        // Repair for the next case.
        write_pair(dir.path(), "api", &good);
        store.reload().unwrap();
    }

    // Removing every pair is refused too: an empty directory mid-deploy must not wipe TLS.
    std::fs::remove_file(&cert).unwrap();
    std::fs::remove_file(&key).unwrap();
    assert!(store.reload().is_err());
    assert_eq!(served_serial(&store, "api.example"), Some(good.serial));
}

/// How the server may resume in a test.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ServerState {
    /// The config as `server_config` builds it: tickets and a session cache.
    AsBuilt,
    /// The session cache swapped for no storage, so only tickets can resume: proves the
    /// ticketer is really wired in.
    TicketsOnly,
}

/// First connection is a full handshake; after a reload that replaces the certificate, a second
/// connection with the same client config resumes.
async fn resumes_across_reload(
    version: &'static rustls::SupportedProtocolVersion,
    tls12: Tls12Resumption,
    state: ServerState,
) {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), "api", &ca.leaf(&["api.example"]));
    let store = CertStore::load(dir.path(), None).unwrap();
    let mut config = server_config(&store, ALPN).unwrap();
    if state == ServerState::TicketsOnly {
        let mut stateless = (*config).clone();
        stateless.session_storage = Arc::new(NoServerSessionStorage {});
        config = Arc::new(stateless);
    }
    let addr = serve(config).await;
    let resumption = Resumption::in_memory_sessions(16).tls12_resumption(tls12);
    let client = ca.client(&[version], resumption);

    let first = connect(client.clone(), addr, "api.example").await.unwrap();
    assert_eq!(first.kind, Some(HandshakeKind::Full));
    assert_eq!(first.version, Some(version.version));

    let new: Leaf = ca.leaf(&["api.example"]);
    write_pair(dir.path(), "api", &new);
    assert_eq!(store.reload().unwrap().changed, ["api"]);
    assert_eq!(served_serial(&store, "api.example"), Some(new.serial));

    let second = connect(client.clone(), addr, "api.example").await.unwrap();
    assert_eq!(
        second.kind,
        Some(HandshakeKind::Resumed),
        "{version:?} {tls12:?} {state:?}"
    );
    assert_eq!(second.version, Some(version.version));
}

#[tokio::test]
async fn tls13_resumes_across_reload() {
    let v = &TLS13;
    resumes_across_reload(v, Tls12Resumption::Disabled, ServerState::AsBuilt).await;
    resumes_across_reload(v, Tls12Resumption::Disabled, ServerState::TicketsOnly).await;
}

#[tokio::test]
async fn tls12_session_ids_resume_across_reload() {
    let v = &TLS12;
    resumes_across_reload(v, Tls12Resumption::SessionIdOnly, ServerState::AsBuilt).await;
}

#[tokio::test]
async fn tls12_tickets_resume_across_reload() {
    let v = &TLS12;
    let tickets = Tls12Resumption::SessionIdOrTickets;
    resumes_across_reload(v, tickets, ServerState::AsBuilt).await;
    resumes_across_reload(v, tickets, ServerState::TicketsOnly).await;
}

/// Writes `contents` to `path` in place (truncate + write) and returns `path`.
fn write(path: &Path, contents: &str) -> PathBuf {
    std::fs::write(path, contents).unwrap();
    path.to_owned()
}

/// Breaks the pair in one way and returns the file the error must name.
type BreakIt<'a> = Box<dyn Fn() -> PathBuf + 'a>;
