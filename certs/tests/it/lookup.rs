//! Loading a directory and choosing a certificate by name.

use portcullis_certs::{CertStore, LoadErrorKind, check_dir};

use crate::support::{TestCa, write_folder, write_pair};

/// `shop` (exact + wildcard), `api` (folder layout), `other` (exact), plus files to ignore.
fn fixture(ca: &TestCa) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_pair(
        dir.path(),
        "shop",
        &ca.leaf(&["shop.example", "*.shop.example"]),
    );
    write_folder(dir.path(), "api", &ca.leaf(&["api.example"]));
    write_pair(dir.path(), "other", &ca.leaf(&["Other.Example"]));
    ca.write(dir.path(), "ca.pem");
    std::fs::write(dir.path().join("README"), "not a certificate").unwrap();
    std::fs::write(dir.path().join(".shop.crt.swp"), "editor junk").unwrap();
    dir
}

fn label(store: &CertStore, sni: Option<&str>) -> Option<String> {
    store.lookup(sni).map(|e| e.label().to_owned())
}

#[test]
fn exact_then_wildcard_one_label_only_then_nothing() {
    let ca = TestCa::new();
    let dir = fixture(&ca);
    let store = CertStore::load(dir.path(), None).unwrap();

    assert_eq!(label(&store, Some("shop.example")).as_deref(), Some("shop"));
    assert_eq!(label(&store, Some("api.example")).as_deref(), Some("api"));
    assert_eq!(
        label(&store, Some("a.shop.example")).as_deref(),
        Some("shop")
    );
    // Names from SANs are canonical; so is the SNI.
    assert_eq!(
        label(&store, Some("other.example")).as_deref(),
        Some("other")
    );
    assert_eq!(
        label(&store, Some("OTHER.example.")).as_deref(),
        Some("other")
    );
    assert_eq!(
        label(&store, Some("A.Shop.Example.")).as_deref(),
        Some("shop")
    );

    // A wildcard covers exactly one label.
    assert_eq!(label(&store, Some("a.b.shop.example")), None);
    assert_eq!(label(&store, Some(".shop.example")), None);
    // Without a default, unknown and missing SNI get nothing.
    assert_eq!(label(&store, Some("unknown.example")), None);
    assert_eq!(label(&store, None), None);
}

#[test]
fn wildcard_never_covers_the_bare_parent() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), "wild", &ca.leaf(&["*.shop.example"]));
    let store = CertStore::load(dir.path(), None).unwrap();
    assert_eq!(label(&store, Some("shop.example")), None);
    assert_eq!(
        label(&store, Some("x.shop.example")).as_deref(),
        Some("wild")
    );

    let entry = store.lookup(Some("x.shop.example")).unwrap();
    assert!(entry.covers("X.shop.example."));
    assert!(!entry.covers("shop.example"));
    assert!(!entry.covers("a.b.shop.example"));
    assert_eq!(entry.names(), ["*.shop.example"]);
}

#[test]
fn default_by_label_or_by_name_catches_unknown_and_missing_sni() {
    let ca = TestCa::new();
    let dir = fixture(&ca);
    for default in ["api", "api.example", "API.example"] {
        let store = CertStore::load(dir.path(), Some(default)).unwrap();
        assert_eq!(
            label(&store, Some("unknown.example")).as_deref(),
            Some("api")
        );
        assert_eq!(label(&store, None).as_deref(), Some("api"));
        // The default never shadows a real match.
        assert_eq!(label(&store, Some("shop.example")).as_deref(), Some("shop"));
        assert_eq!(
            label(&store, Some("a.b.shop.example")).as_deref(),
            Some("api")
        );
    }
    let store = CertStore::load(dir.path(), Some("*.shop.example")).unwrap();
    assert_eq!(label(&store, None).as_deref(), Some("shop"));
}

#[test]
fn unknown_default_is_an_error() {
    let ca = TestCa::new();
    let dir = fixture(&ca);
    let err = CertStore::load(dir.path(), Some("nope")).unwrap_err();
    assert_eq!(err.errors.len(), 1);
    assert!(matches!(
        &err.errors[0].kind,
        LoadErrorKind::UnknownDefault(name) if name == "nope"
    ));
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn expiries_and_check_report_each_pair_by_label() {
    let ca = TestCa::new();
    let dir = fixture(&ca);
    let store = CertStore::load(dir.path(), None).unwrap();
    let expiries = store.expiries();
    let labels: Vec<&str> = expiries.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(labels, ["api", "other", "shop"]);
    assert!(expiries.iter().all(|(_, t)| *t > 1_700_000_000));

    let pairs = check_dir(dir.path(), Some("shop")).unwrap();
    assert_eq!(pairs.len(), 3);
    assert_eq!(pairs[0].cert, dir.path().join("api/cert.pem"));
    assert_eq!(pairs[2].names, ["shop.example", "*.shop.example"]);
}

#[test]
fn every_problem_is_reported_at_once_naming_its_file() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = ca.leaf(&["good.example"]);
    write_pair(d, "good", &good);
    // Half pairs.
    std::fs::write(d.join("lonely.crt"), &good.cert).unwrap();
    std::fs::write(d.join("orphan.key"), &good.key).unwrap();
    // Same name as `good`.
    let (dup, _) = write_pair(d, "dup", &ca.leaf(&["good.example"]));
    // Key from another certificate.
    let (_, mismatched) = write_pair(d, "mismatch", &ca.leaf(&["m.example"]));
    std::fs::write(&mismatched, ca.leaf(&["m.example"]).key).unwrap();
    // Expired.
    let (expired, _) = write_pair(d, "expired", &ca.expired_leaf(&["old.example"]));
    // Half-written certificate (cut inside the base64) and an empty key.
    let half = &good.cert[..good.cert.len() / 2];
    let (half_cert, _) = write_pair(d, "half", &ca.leaf(&["half.example"]));
    std::fs::write(&half_cert, half).unwrap();
    let (_, empty_key) = write_pair(d, "emptykey", &ca.leaf(&["e.example"]));
    std::fs::write(&empty_key, "").unwrap();
    // A key file in the certificate's place.
    let (swapped, _) = write_pair(d, "nocert", &ca.leaf(&["n.example"]));
    std::fs::write(&swapped, &good.key).unwrap();
    // No DNS name at all.
    let (ip_only, _) = write_pair(d, "iponly", &ca.leaf(&["127.0.0.1"]));
    // Folder with only a certificate.
    let folder = d.join("halffolder");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("cert.pem"), &good.cert).unwrap();

    let err = CertStore::load(d, None).unwrap_err();
    let text = err.to_string();
    let expect = [
        (d.join("lonely.crt"), "missing its pair"),
        (d.join("orphan.key"), "missing its pair"),
        (d.join("good.crt"), "is also served by"),
        (mismatched.clone(), "does not match"),
        (expired.clone(), "expired"),
        (half_cert.clone(), "invalid PEM"),
        (empty_key.clone(), "no private key"),
        (swapped.clone(), "no certificate"),
        (ip_only.clone(), "no DNS subject alternative name"),
        (folder.join("cert.pem"), "missing its pair"),
    ];
    for (path, msg) in &expect {
        let line = format!("{}: ", path.display());
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&line) && l.contains(msg)),
            "no {msg:?} for {}:\n{text}",
            path.display()
        );
    }
    assert_eq!(err.errors.len(), expect.len(), "{text}");
    // The duplicate names both files: pairs go in label order, so `good` finds `dup` first.
    assert!(text.contains(&format!("is also served by {}", dup.display())));
    // check_dir sees the same.
    assert_eq!(check_dir(d, None).unwrap_err().errors.len(), expect.len());
}

#[test]
fn empty_or_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = CertStore::load(dir.path(), None).unwrap_err();
    assert!(matches!(err.errors[0].kind, LoadErrorKind::Empty));
    let gone = dir.path().join("gone");
    let err = CertStore::load(&gone, None).unwrap_err();
    assert!(matches!(err.errors[0].kind, LoadErrorKind::ReadDir(_)));
    assert_eq!(err.errors[0].path, gone);
}

#[test]
fn a_label_used_by_a_file_pair_and_a_folder_is_an_error() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), "site", &ca.leaf(&["a.example"]));
    write_folder(dir.path(), "site", &ca.leaf(&["b.example"]));
    let err = CertStore::load(dir.path(), None).unwrap_err();
    assert!(matches!(
        err.errors[0].kind,
        LoadErrorKind::DuplicateLabel { .. }
    ));
}
