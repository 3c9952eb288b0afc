//! The watcher picks up the ways certificates really get replaced. Assertions poll with a bounded
//! deadline; nothing relies on a fixed sleep.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::{Arc, Mutex};

use portcullis_certs::{CertStore, WatchGuard};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};

use crate::support::{
    Leaf, TestCa, eventually, replace_atomically, served_serial, write_folder, write_pair,
};

/// Outcomes seen by the callback: `Ok(changed labels)` or `Err(display)`.
type Outcomes = Arc<Mutex<Vec<Result<Vec<String>, String>>>>;

fn watch(store: &CertStore) -> (WatchGuard, Outcomes) {
    let outcomes: Outcomes = Arc::default();
    let sink = Arc::clone(&outcomes);
    let guard = store
        .watch(move |result| {
            let outcome = match result {
                Ok(summary) => Ok(summary.changed.clone()),
                Err(errors) => Err(errors.to_string()),
            };
            sink.lock().unwrap().push(outcome);
        })
        .unwrap();
    (guard, outcomes)
}

/// Two leaves for `name` sharing one key, so swapping only the certificate file is consistent.
fn same_key_leaves(ca: &TestCa, name: &str) -> (Leaf, Leaf) {
    let pem = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem();
    let a = ca.leaf_with(&[name], KeyPair::from_pem(&pem).unwrap(), |_| {});
    let b = ca.leaf_with(&[name], KeyPair::from_pem(&pem).unwrap(), |_| {});
    (a, b)
}

#[test]
fn atomic_rename_of_a_certificate_is_picked_up() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = same_key_leaves(&ca, "api.example");
    let (cert, _) = write_pair(dir.path(), "api", &old);
    let store = CertStore::load(dir.path(), None).unwrap();
    let (_guard, outcomes) = watch(&store);

    replace_atomically(&cert, &new.cert);
    eventually("the renamed certificate is served", || {
        served_serial(&store, "api.example") == Some(new.serial.clone())
    });
    eventually("the callback saw the change", || {
        outcomes
            .lock()
            .unwrap()
            .iter()
            .any(|o| o.as_ref().is_ok_and(|c| c == &["api"]))
    });
}

#[test]
fn symlink_swap_of_a_file_is_picked_up() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let versions = tempfile::tempdir().unwrap();
    let (old, new) = same_key_leaves(&ca, "api.example");
    let v1 = write_pair(versions.path(), "v1", &old);
    let v2 = write_pair(versions.path(), "v2", &new);
    let (cert, key) = (dir.path().join("api.crt"), dir.path().join("api.key"));
    symlink(&v1.0, &cert).unwrap();
    symlink(&v1.1, &key).unwrap();
    let store = CertStore::load(dir.path(), None).unwrap();
    assert_eq!(served_serial(&store, "api.example"), Some(old.serial));
    let (_guard, _outcomes) = watch(&store);

    swap_symlink(&cert, &v2.0);
    eventually("the certificate behind the new link is served", || {
        served_serial(&store, "api.example") == Some(new.serial.clone())
    });
}

#[test]
fn symlink_swap_of_a_folder_is_picked_up() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let versions = tempfile::tempdir().unwrap();
    let old = ca.leaf(&["api.example"]);
    let new = ca.leaf(&["api.example"]);
    let v1 = write_folder(versions.path(), "v1", &old);
    let v2 = write_folder(versions.path(), "v2", &new);
    let link = dir.path().join("api");
    symlink(&v1, &link).unwrap();
    let store = CertStore::load(dir.path(), None).unwrap();
    assert_eq!(store.lookup(Some("api.example")).unwrap().label(), "api");
    let (_guard, _outcomes) = watch(&store);

    // Like a Kubernetes secret update: certificate and key change together, in one rename.
    swap_symlink(&link, &v2);
    eventually("the folder behind the new link is served", || {
        served_serial(&store, "api.example") == Some(new.serial.clone())
    });
}

#[test]
fn a_bad_write_is_reported_and_the_old_set_kept_until_it_is_fixed() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let good = ca.leaf(&["api.example"]);
    let (cert, _) = write_pair(dir.path(), "api", &good);
    let store = CertStore::load(dir.path(), None).unwrap();
    let (guard, outcomes) = watch(&store);

    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nMIIB").unwrap();
    let cert_name = cert.display().to_string();
    eventually("the callback saw the error naming the file", || {
        outcomes
            .lock()
            .unwrap()
            .iter()
            .any(|o| o.as_ref().is_err_and(|e| e.contains(&cert_name)))
    });
    assert_eq!(served_serial(&store, "api.example"), Some(good.serial));

    let fixed = ca.leaf(&["api.example"]);
    write_pair(dir.path(), "api", &fixed);
    eventually("the fixed pair is served", || {
        served_serial(&store, "api.example") == Some(fixed.serial.clone())
    });

    // Dropping the guard ends the watch thread (the drop waits for it), and with it the
    // callback: nothing can report again.
    drop(guard);
    assert_eq!(Arc::strong_count(&outcomes), 1);
}

/// Points `link` at `target` atomically: a new link under a hidden name, renamed over.
fn swap_symlink(link: &Path, target: &Path) {
    let name = link.file_name().unwrap().to_string_lossy();
    let tmp = link.with_file_name(format!(".{name}.new"));
    symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, link).unwrap();
}
