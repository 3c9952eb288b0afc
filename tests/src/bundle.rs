//! Signed policy bundles for tests: a [`Signer`] with its own ed25519 key pair (made by the
//! proxy's own `keys generate` code) that turns policy files into bundles, and the forgeries a
//! node must refuse.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use portcullis::bundle::{self, SigningKey};

use crate::policy::PolicyFile;

/// A key pair in a temp dir of its own, and the bundles it signs.
#[derive(Debug)]
pub struct Signer {
    _dir: tempfile::TempDir,
    key: SigningKey,
    public: PathBuf,
}

impl Signer {
    pub fn new() -> anyhow::Result<Signer> {
        let dir = tempfile::tempdir()?;
        let g = bundle::generate(dir.path(), "legal-team")?;
        Ok(Signer {
            key: bundle::load_private_key(&g.private)?,
            public: g.public,
            _dir: dir,
        })
    }

    /// The public key file, for `policy.trusted_keys` (an absolute path).
    pub fn public_key(&self) -> &Path {
        &self.public
    }

    pub fn key_id(&self) -> &str {
        &self.key.id
    }

    /// The bundle of `file` as `portcullis policy sign` writes it.
    pub fn sign(&self, file: &PolicyFile) -> String {
        self.sign_text(&file.render())
    }

    pub fn sign_text(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.key.sign(text.as_bytes())).into_owned()
    }
}

/// `bundle` with its policy replaced by `policy` and the signature kept: the tampered bundle.
pub fn tampered(bundle: &str, policy: &PolicyFile) -> anyhow::Result<String> {
    let mut v: serde_json::Value = serde_json::from_str(bundle)?;
    v["policy"] = B64.encode(policy.render()).into();
    Ok(serde_json::to_string(&v)?)
}
