//! `portcullis keys generate` and `portcullis policy sign`: the ed25519 key pair of whoever
//! signs legal-order policies, and the signed bundle a node with `policy.trusted_keys` accepts
//! (format in [`crate::bundle`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use portcullis_policy::{Policy, PolicyErrors};
use sha2::{Digest, Sha256};

use crate::bundle::{self, KeyError};

/// Why `keys generate` or `policy sign` failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("{}: cannot read the policy file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The policy does not validate: nothing is signed.
    #[error("refusing to sign an invalid policy:\n{0}")]
    Invalid(#[source] PolicyErrors),
    #[error("{}: refusing to sign: not UTF-8 text", path.display())]
    NotText { path: PathBuf },
    #[error("{}: refusing to sign a file that is already a bundle", path.display())]
    AlreadyBundle { path: PathBuf },
    #[error("cannot write the bundle {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `portcullis keys generate`: writes `OUT/NAME.key` and `OUT/NAME.pub`.
pub fn keys_generate(out: &Path, name: &str) -> Result<String, SignError> {
    let g = bundle::generate(out, name)?;
    let mut text = String::new();
    let _ = writeln!(text, "private key {} (keep it secret)", g.private.display());
    let _ = writeln!(
        text,
        "public key  {} (list it in policy.trusted_keys)",
        g.public.display()
    );
    let _ = writeln!(text, "key id      {}", g.key_id);
    Ok(text)
}

/// `portcullis policy sign`: validates `file` with the proxy's parser, then writes its bundle
/// to `out` (default `FILE.bundle`).
pub fn policy_sign(key: &Path, file: &Path, out: Option<&Path>) -> Result<String, SignError> {
    let signer = bundle::load_private_key(key)?;
    let bytes = std::fs::read(file).map_err(|source| SignError::Read {
        path: file.to_owned(),
        source,
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| SignError::NotText {
        path: file.to_owned(),
    })?;
    // A bundle of a bundle would verify and then fail to parse on every node.
    if bundle::open(&bytes, &[]) != Err(bundle::BundleError::Unsigned) {
        return Err(SignError::AlreadyBundle {
            path: file.to_owned(),
        });
    }
    let policy = Policy::parse(text, &file.display().to_string()).map_err(SignError::Invalid)?;
    let signed = signer.sign(&bytes);
    let out = out.map_or_else(
        || {
            let mut p = file.as_os_str().to_owned();
            p.push(".bundle");
            PathBuf::from(p)
        },
        Path::to_owned,
    );
    write_replacing(&out, &signed).map_err(|source| SignError::Write {
        path: out.clone(),
        source,
    })?;
    let mut text = String::new();
    let _ = writeln!(text, "bundle  {}", out.display());
    let _ = writeln!(text, "serial  {}", policy.serial);
    let _ = writeln!(
        text,
        "sha256  {} (bundle)",
        hex::encode(Sha256::digest(&signed))
    );
    let _ = writeln!(
        text,
        "        {} (policy)",
        hex::encode(Sha256::digest(&bytes))
    );
    let _ = writeln!(text, "key id  {}", signer.id);
    Ok(text)
}

/// Writes through a temporary file and a rename, so a watching proxy never reads half a bundle.
fn write_replacing(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
