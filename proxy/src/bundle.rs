//! Signed policy bundles: ed25519 keys, signing a policy file, and verifying a bundle against
//! the trusted keys before anything inside it is parsed.
//!
//! A bundle is one JSON object (`portcullis policy sign` writes it):
//!
//! ```json
//! {"portcullis_bundle": 1, "key_id": "<16 hex digits>", "signature": "<base64>",
//!  "policy": "<base64 of the policy file's bytes>"}
//! ```
//!
//! The signature is a detached ed25519 signature over exactly the decoded `policy` bytes. The
//! key id is the first 16 hex digits of the sha256 of the signer's raw 32-byte public key; it
//! only picks which trusted key to try, the signature is what proves the bundle.
//!
//! Keys are PEM files: the private key PKCS#8 (`PRIVATE KEY`, mode 0600), the public key
//! SubjectPublicKeyInfo (`PUBLIC KEY`, `.pub`).
//!
//! Not here: parsing the policy (`portcullis-policy`), the serial rule and the reload
//! (`policy.rs`).

use std::path::{Path, PathBuf};

use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `portcullis_bundle` format version this build reads and writes.
pub const FORMAT: u64 = 1;

/// The DER prefix of an ed25519 SubjectPublicKeyInfo (RFC 8410): the 32 key bytes follow.
const SPKI_ED25519_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A public key a bundle may be signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// See [`key_id`].
    pub id: String,
    /// The raw 32-byte ed25519 public key.
    pub public: [u8; 32],
    /// The file it came from, for messages.
    pub path: PathBuf,
}

/// A key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: not a PEM {what}", path.display())]
    Pem { path: PathBuf, what: &'static str },
    #[error("{}: not an ed25519 {what}", path.display())]
    NotEd25519 { path: PathBuf, what: &'static str },
    #[error("{} already exists; refusing to overwrite a key", path.display())]
    Exists { path: PathBuf },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate an ed25519 key")]
    Generate,
}

/// Why a bundle was refused; [`BundleError::reason`] is the metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error(
        "not a signed bundle (trusted_keys is set: only bundles made by `portcullis policy sign` are accepted)"
    )]
    Unsigned,
    #[error("malformed bundle: {0}")]
    Malformed(String),
    #[error("bundle signed by key {key_id}, which is not among the trusted keys")]
    UntrustedKey { key_id: String },
    #[error(
        "bundle signature does not verify against trusted key {key_id} (tampered policy or signature)"
    )]
    BadSignature { key_id: String },
}

impl BundleError {
    /// The `reason` label of `portcullis_policy_bundles_refused_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            BundleError::Unsigned => "unsigned",
            BundleError::Malformed(_) => "malformed",
            BundleError::UntrustedKey { .. } => "untrusted_key",
            BundleError::BadSignature { .. } => "bad_signature",
        }
    }

    /// The key id the bundle names, when it names one.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            BundleError::UntrustedKey { key_id } | BundleError::BadSignature { key_id } => {
                Some(key_id)
            }
            BundleError::Unsigned | BundleError::Malformed(_) => None,
        }
    }
}

/// Every `reason` label, exported at zero.
pub const REFUSAL_REASONS: [&str; 5] = [
    "unsigned",
    "bad_signature",
    "untrusted_key",
    "malformed",
    "serial",
];

/// The bundle as written on disk.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBundle {
    portcullis_bundle: u64,
    key_id: String,
    signature: String,
    policy: String,
}

/// A bundle whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The policy file's bytes, exactly as signed.
    pub policy: Vec<u8>,
    pub key_id: String,
}

/// First 16 hex digits of the sha256 of a raw 32-byte public key.
pub fn key_id(public: &[u8]) -> String {
    let mut id = hex::encode(Sha256::digest(public));
    id.truncate(16);
    id
}

/// A bundle's contents, NOT verified: the key id it names and the policy bytes it carries.
/// For tools that only read it (`policy publish` without `--trusted-key`: every node verifies
/// what it receives); a node never uses this.
pub fn unverified(bytes: &[u8]) -> Result<Verified, BundleError> {
    decode(bytes).map(|(raw, policy, _)| Verified {
        policy,
        key_id: raw.key_id,
    })
}

/// The raw bundle, its decoded policy and signature.
fn decode(bytes: &[u8]) -> Result<(RawBundle, Vec<u8>, Vec<u8>), BundleError> {
    let raw: RawBundle = match serde_json::from_slice(bytes) {
        Ok(raw) => raw,
        Err(e) => {
            // Anything that does not even claim to be a bundle is a plain (unsigned) file.
            let claims = serde_json::from_slice::<serde_json::Value>(bytes)
                .ok()
                .is_some_and(|v| v.get("portcullis_bundle").is_some())
                || bytes.windows(17).any(|w| w == b"portcullis_bundle");
            return Err(if claims {
                BundleError::Malformed(e.to_string())
            } else {
                BundleError::Unsigned
            });
        }
    };
    if raw.portcullis_bundle != FORMAT {
        return Err(BundleError::Malformed(format!(
            "format {} (this build reads {FORMAT})",
            raw.portcullis_bundle
        )));
    }
    let policy = B64
        .decode(raw.policy.as_bytes())
        .map_err(|e| BundleError::Malformed(format!("policy is not base64: {e}")))?;
    let signature = B64
        .decode(raw.signature.as_bytes())
        .map_err(|e| BundleError::Malformed(format!("signature is not base64: {e}")))?;
    Ok((raw, policy, signature))
}

/// Verifies `bytes` as a bundle against `trusted`, before anything inside is parsed.
pub fn open(bytes: &[u8], trusted: &[TrustedKey]) -> Result<Verified, BundleError> {
    let (raw, policy, signature) = decode(bytes)?;
    let key =
        trusted
            .iter()
            .find(|k| k.id == raw.key_id)
            .ok_or_else(|| BundleError::UntrustedKey {
                key_id: raw.key_id.clone(),
            })?;
    UnparsedPublicKey::new(&ED25519, &key.public)
        .verify(&policy, &signature)
        .map_err(|_| BundleError::BadSignature {
            key_id: raw.key_id.clone(),
        })?;
    Ok(Verified {
        policy,
        key_id: raw.key_id,
    })
}

/// A private key loaded for signing.
#[derive(Debug)]
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pub id: String,
}

impl SigningKey {
    /// Builds the bundle of `policy` (the file's bytes, signed as they are).
    pub fn sign(&self, policy: &[u8]) -> Vec<u8> {
        let signature = self.pair.sign(policy);
        let raw = RawBundle {
            portcullis_bundle: FORMAT,
            key_id: self.id.clone(),
            signature: B64.encode(signature.as_ref()),
            policy: B64.encode(policy),
        };
        let mut out = serde_json::to_vec(&raw).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// The raw 32-byte public key.
    pub fn public(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }
}

/// Loads a PKCS#8 PEM ed25519 private key.
pub fn load_private_key(path: &Path) -> Result<SigningKey, KeyError> {
    let pem = read(path)?;
    let der = PrivatePkcs8KeyDer::from_pem_slice(&pem).map_err(|_| KeyError::Pem {
        path: path.to_owned(),
        what: "PKCS#8 private key (PRIVATE KEY)",
    })?;
    let pair =
        Ed25519KeyPair::from_pkcs8(der.secret_pkcs8_der()).map_err(|_| KeyError::NotEd25519 {
            path: path.to_owned(),
            what: "PKCS#8 private key",
        })?;
    let id = key_id(pair.public_key().as_ref());
    Ok(SigningKey { pair, id })
}

/// Loads a PEM SubjectPublicKeyInfo ed25519 public key.
pub fn load_public_key(path: &Path) -> Result<TrustedKey, KeyError> {
    let pem = read(path)?;
    let der = SubjectPublicKeyInfoDer::from_pem_slice(&pem).map_err(|_| KeyError::Pem {
        path: path.to_owned(),
        what: "public key (PUBLIC KEY)",
    })?;
    let public = der
        .as_ref()
        .strip_prefix(&SPKI_ED25519_PREFIX[..])
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| KeyError::NotEd25519 {
            path: path.to_owned(),
            what: "public key",
        })?;
    Ok(TrustedKey {
        id: key_id(&public),
        public,
        path: path.to_owned(),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })
}

/// What `portcullis keys generate` wrote.
#[derive(Debug, Clone)]
pub struct Generated {
    pub private: PathBuf,
    pub public: PathBuf,
    pub key_id: String,
}

/// Writes `DIR/NAME.key` (PKCS#8 PEM, mode 0600) and `DIR/NAME.pub` (SPKI PEM); refuses to
/// overwrite either.
pub fn generate(dir: &Path, name: &str) -> Result<Generated, KeyError> {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    for p in [&private, &public] {
        if p.exists() {
            return Err(KeyError::Exists { path: p.clone() });
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| KeyError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Generate)?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| KeyError::Generate)?;
    let mut spki = SPKI_ED25519_PREFIX.to_vec();
    spki.extend_from_slice(pair.public_key().as_ref());
    write_new(
        &private,
        pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes(),
        0o600,
    )?;
    write_new(&public, pem("PUBLIC KEY", &spki).as_bytes(), 0o644)?;
    Ok(Generated {
        private,
        public,
        key_id: key_id(pair.public_key().as_ref()),
    })
}

/// Creates `path` (never replacing a file) with `mode`, and writes `bytes`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let err = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_all().map_err(err)
}

/// PEM armour, 64 characters a line.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests;
