//! Dev certificates load into a store and verify against their CA.

use std::os::unix::fs::PermissionsExt;

use portcullis_certs::{CertStore, GenerateError, client_config, generate, server_config};

use crate::support::{ALPN, connect, serve};

#[tokio::test]
async fn generated_certificates_load_and_verify_against_the_ca() {
    let out = tempfile::tempdir().unwrap();
    let hosts = vec!["localhost".to_owned(), "*.dev.example".to_owned()];
    let made = generate(&hosts, out.path()).unwrap();
    assert!(!made.ca_reused);
    assert_eq!(made.cert, out.path().join("localhost.crt"));
    assert_eq!(made.key, out.path().join("localhost.key"));
    for secret in [&made.key, &made.ca_key] {
        let mode = std::fs::metadata(secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", secret.display());
    }

    // The output directory is a valid certificate directory: the CA files are not a pair.
    let store = CertStore::load(out.path(), None).unwrap();
    assert_eq!(
        store.lookup(Some("a.dev.example")).unwrap().label(),
        "localhost"
    );
    let addr = serve(server_config(&store, ALPN).unwrap()).await;
    let client = client_config(Some(&made.ca_cert), false, ALPN).unwrap();
    for sni in ["localhost", "app.dev.example"] {
        connect(client.clone(), addr, sni).await.unwrap();
    }

    // Run again for another host: the same CA, so the user trusts it once.
    let ca_before = std::fs::read(&made.ca_cert).unwrap();
    let again = generate(&["api.test".to_owned()], out.path()).unwrap();
    assert!(again.ca_reused);
    assert_eq!(std::fs::read(&again.ca_cert).unwrap(), ca_before);
    store.reload().unwrap();
    connect(client, addr, "api.test").await.unwrap();
}

#[test]
fn generate_refuses_bad_input_without_touching_the_ca() {
    let out = tempfile::tempdir().unwrap();
    assert!(matches!(
        generate(&[], out.path()),
        Err(GenerateError::NoHosts)
    ));
    let err = generate(&["../escape".to_owned()], out.path()).unwrap_err();
    assert!(matches!(err, GenerateError::BadHost(_)));
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);

    // Only half a CA: refuse rather than replace a CA someone may trust.
    std::fs::write(out.path().join("ca.pem"), "x").unwrap();
    let err = generate(&["localhost".to_owned()], out.path()).unwrap_err();
    assert!(matches!(err, GenerateError::HalfCa { .. }), "{err:?}");
    // A broken CA is an error naming the file.
    std::fs::write(out.path().join("ca-key.pem"), "not a key").unwrap();
    let err = generate(&["localhost".to_owned()], out.path()).unwrap_err();
    assert!(matches!(err, GenerateError::BadCa { .. }), "{err:?}");
    assert!(err.to_string().contains("ca-key.pem"), "{err}");
}
