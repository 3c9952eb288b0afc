use super::*;

const POLICY: &[u8] = b"serial: 7\nblocked_by: https://edge.example.net/legal\norders: []\n";

fn pair(dir: &Path, name: &str) -> (SigningKey, TrustedKey) {
    let g = generate(dir, name).unwrap();
    (
        load_private_key(&g.private).unwrap(),
        load_public_key(&g.public).unwrap(),
    )
}

/// Re-encodes a bundle after `edit` changed its fields.
fn edited(bundle: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(bundle).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

#[test]
fn a_signed_bundle_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = pair(dir.path(), "legal");
    assert_eq!(key.id, public.id);
    assert_eq!(key.id.len(), 16);
    assert_eq!(key.id, key_id(key.public()));
    let bundle = key.sign(POLICY);
    let v = open(&bundle, std::slice::from_ref(&public)).unwrap();
    assert_eq!(v.policy, POLICY);
    assert_eq!(v.key_id, public.id);
}

#[test]
fn generated_private_key_is_owner_only_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "legal").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&g.private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&g.public).unwrap();
    assert!(text.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{text}");
    let before = std::fs::read(&g.private).unwrap();
    assert!(matches!(
        generate(dir.path(), "legal"),
        Err(KeyError::Exists { .. })
    ));
    assert_eq!(std::fs::read(&g.private).unwrap(), before);
}

#[test]
fn a_flipped_byte_in_the_policy_or_the_signature_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = pair(dir.path(), "legal");
    let bundle = key.sign(POLICY);
    let trusted = std::slice::from_ref(&public);
    let tampered_policy = edited(&bundle, |v| {
        let mut p = POLICY.to_vec();
        p[8] = b'8'; // serial 7 → 8
        v["policy"] = B64.encode(&p).into();
    });
    assert_eq!(
        open(&tampered_policy, trusted),
        Err(BundleError::BadSignature {
            key_id: public.id.clone()
        })
    );
    let tampered_sig = edited(&bundle, |v| {
        let mut s = B64.decode(v["signature"].as_str().unwrap()).unwrap();
        s[10] ^= 1;
        v["signature"] = B64.encode(&s).into();
    });
    assert_eq!(
        open(&tampered_sig, trusted).map_err(|e| e.reason()),
        Err("bad_signature")
    );
}

#[test]
fn another_keys_signature_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (_, trusted) = pair(dir.path(), "legal");
    let (other, other_public) = pair(dir.path(), "other");
    let bundle = other.sign(POLICY);
    // Signed by a key nobody trusts.
    assert_eq!(
        open(&bundle, std::slice::from_ref(&trusted)),
        Err(BundleError::UntrustedKey {
            key_id: other.id.clone()
        })
    );
    // Another key's signature presented under the trusted key's id.
    let forged = edited(&bundle, |v| v["key_id"] = trusted.id.clone().into());
    assert_eq!(
        open(&forged, &[trusted.clone(), other_public.clone()]).map_err(|e| e.reason()),
        Err("bad_signature")
    );
    // With both trusted, the genuine bundle opens.
    assert!(open(&bundle, &[trusted, other_public]).is_ok());
}

#[test]
fn plain_files_are_unsigned_and_broken_bundles_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = pair(dir.path(), "legal");
    let trusted = std::slice::from_ref(&public);
    assert_eq!(open(POLICY, trusted), Err(BundleError::Unsigned));
    assert_eq!(open(b"", trusted), Err(BundleError::Unsigned));
    assert_eq!(
        open(b"{\"serial\": 1}", trusted),
        Err(BundleError::Unsigned)
    );
    let bundle = key.sign(POLICY);
    let reason = |b: &[u8]| open(b, trusted).map_err(|e| e.reason());
    assert_eq!(reason(&bundle[..bundle.len() / 2]), Err("malformed"));
    assert_eq!(
        reason(&edited(&bundle, |v| v["portcullis_bundle"] = 2.into())),
        Err("malformed")
    );
    assert_eq!(
        reason(&edited(&bundle, |v| v["policy"] = "not base64!".into())),
        Err("malformed")
    );
    assert_eq!(
        reason(&edited(&bundle, |v| v["extra"] = 1.into())),
        Err("malformed")
    );
    assert_eq!(
        reason(&edited(&bundle, |v| {
            v.as_object_mut().unwrap().remove("signature");
        })),
        Err("malformed")
    );
}

#[test]
fn key_files_of_the_wrong_kind_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let g = generate(dir.path(), "legal").unwrap();
    assert!(matches!(
        load_public_key(&g.private),
        Err(KeyError::Pem { .. })
    ));
    assert!(matches!(
        load_private_key(&g.public),
        Err(KeyError::Pem { .. })
    ));
    let missing = dir.path().join("nope.pub");
    assert!(matches!(
        load_public_key(&missing),
        Err(KeyError::Read { .. })
    ));
    // A well-formed SPKI of another algorithm (an EC P-256 key's prefix) is not ed25519.
    let not_ed = pem("PUBLIC KEY", &[0x30, 0x59, 0x30, 0x13, 0x06, 0x07]);
    let p = dir.path().join("ec.pub");
    std::fs::write(&p, not_ed).unwrap();
    assert!(matches!(
        load_public_key(&p),
        Err(KeyError::NotEd25519 { .. })
    ));
}
