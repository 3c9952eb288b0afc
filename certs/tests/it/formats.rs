//! Key files in each PEM flavour the layout promises: PKCS#8, SEC1 (EC) and PKCS#1 (RSA).

use portcullis_certs::CertStore;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ED25519, PKCS_RSA_SHA256, SignatureAlgorithm};
use x509_parser::der_parser::parse_der;

use crate::support::{TestCa, served_serial};

#[test]
fn pkcs8_sec1_and_pkcs1_keys_all_load() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &'static SignatureAlgorithm, Option<&str>); 4] = [
        ("ec8", &PKCS_ECDSA_P256_SHA256, None),
        ("sec1", &PKCS_ECDSA_P256_SHA256, Some("EC PRIVATE KEY")),
        ("rsa1", &PKCS_RSA_SHA256, Some("RSA PRIVATE KEY")),
        ("ed", &PKCS_ED25519, None),
    ];
    let mut serials = Vec::new();
    for (label, alg, inner) in cases {
        let key = KeyPair::generate_for(alg).unwrap();
        let pkcs8 = key.serialize_der();
        let name = format!("{label}.example");
        let leaf = ca.leaf_with(&[&name], key, |_| {});
        let key_pem = match inner {
            None => leaf.key.clone(),
            Some(pem_label) => pem(pem_label, &pkcs8_inner(&pkcs8)),
        };
        std::fs::write(dir.path().join(format!("{label}.crt")), &leaf.cert).unwrap();
        std::fs::write(dir.path().join(format!("{label}.key")), key_pem).unwrap();
        serials.push((name, leaf.serial));
    }
    let store = CertStore::load(dir.path(), None).unwrap();
    for (name, serial) in serials {
        assert_eq!(served_serial(&store, &name), Some(serial), "{name}");
    }
}

/// The algorithm-specific key inside a PKCS#8 `PrivateKeyInfo`: for EC that is the SEC1
/// `ECPrivateKey`, for RSA the PKCS#1 `RSAPrivateKey`.
fn pkcs8_inner(pkcs8: &[u8]) -> Vec<u8> {
    let (_, info) = parse_der(pkcs8).unwrap();
    let fields = info.as_sequence().unwrap();
    fields[2].as_slice().unwrap().to_vec()
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}
