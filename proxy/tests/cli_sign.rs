//! `keys generate`, `policy sign` and `check --config` of a config with `policy.trusted_keys`,
//! as an operator runs them.

mod command;

use command::{contract, failure, run_in as run, success};

/// The value after `label` on its line of `text`.
fn field<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(|rest| rest.split_whitespace().next().unwrap_or_default())
        .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"))
}

fn config(policy_file: &str) -> String {
    format!(
        "node_id: \"edge-fra-01\"\nlisteners:\n  - address: \"127.0.0.1:8080\"\npolicy:\n  file: \"{policy_file}\"\n  state_dir: \"state\"\n  source: file\n  trusted_keys: [\"keys/legal-team.pub\"]\nsites:\n  - name: pirate\n    hosts: [\"pirate.example\"]\n    origins: [\"http://127.0.0.1:9000\"]\n"
    )
}

#[test]
fn generate_sign_and_check_a_config_with_trusted_keys() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let out = success(&run(
        d,
        &["keys", "generate", "--out", "keys", "--name", "legal-team"],
    )?);
    let key_id = field(&out, "key id").to_owned();
    assert_eq!(key_id.len(), 16, "{out}");
    assert!(key_id.bytes().all(|b| b.is_ascii_hexdigit()), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(d.join("keys/legal-team.key"))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A second run never replaces the key.
    let again = failure(&run(
        d,
        &["keys", "generate", "--out", "keys", "--name", "legal-team"],
    )?);
    assert!(again.contains("refusing to overwrite"), "{again}");

    std::fs::copy(contract(), d.join("policy.yaml"))?;
    let out = success(&run(
        d,
        &[
            "policy",
            "sign",
            "--key",
            "keys/legal-team.key",
            "policy.yaml",
        ],
    )?);
    assert_eq!(field(&out, "bundle"), "policy.yaml.bundle", "{out}");
    assert_eq!(field(&out, "serial"), "2026112601", "{out}");
    assert_eq!(field(&out, "key id"), key_id, "{out}");
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("policy.yaml.bundle"))?)?;
    assert_eq!(bundle["portcullis_bundle"], 1);
    assert_eq!(bundle["key_id"], key_id.as_str());

    // The policy commands read policy files, and say so when given a bundle.
    let err = failure(&run(d, &["policy", "check", "policy.yaml.bundle"])?);
    assert!(err.contains("a signed bundle"), "{err}");
    assert!(err.contains(&key_id), "{err}");

    std::fs::write(d.join("edge.yaml"), config("policy.yaml.bundle"))?;
    let out = success(&run(d, &["check", "--config", "edge.yaml"])?);
    assert!(out.contains("serial 2026112601"), "{out}");
    assert!(out.contains(&format!("trusted keys {key_id}")), "{out}");

    // The same config over the plain file: refused, since only bundles are trusted.
    std::fs::write(d.join("plain.yaml"), config("policy.yaml"))?;
    let err = failure(&run(d, &["check", "--config", "plain.yaml"])?);
    assert!(err.contains("not a signed bundle"), "{err}");
    assert!(err.contains("[unsigned]"), "{err}");

    // Signed by another key: refused, naming the key.
    success(&run(d, &["keys", "generate", "--out", "other"])?);
    success(&run(
        d,
        &[
            "policy",
            "sign",
            "--key",
            "other/legal.key",
            "--out",
            "other.bundle",
            "policy.yaml",
        ],
    )?);
    std::fs::write(d.join("other.yaml"), config("other.bundle"))?;
    let err = failure(&run(d, &["check", "--config", "other.yaml"])?);
    assert!(err.contains("not among the trusted keys"), "{err}");
    Ok(())
}

#[test]
fn an_invalid_policy_is_not_signed() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    success(&run(d, &["keys", "generate"])?);
    assert!(d.join("legal.key").is_file() && d.join("legal.pub").is_file());
    let text = std::fs::read_to_string(contract())?.replacen(
        "https://lumendatabase.org/notices/00000001",
        "http://lumendatabase.org/notices/00000001",
        1,
    );
    std::fs::write(d.join("policy.yaml"), text)?;
    let err = failure(&run(
        d,
        &["policy", "sign", "--key", "legal.key", "policy.yaml"],
    )?);
    assert!(err.contains("refusing to sign an invalid policy"), "{err}");
    assert!(err.contains("policy.yaml:11:"), "{err}");
    assert!(err.contains("notice_url"), "{err}");
    assert!(!d.join("policy.yaml.bundle").exists());
    // Nor a missing file, nor with a public key for a private one.
    let err = failure(&run(
        d,
        &["policy", "sign", "--key", "legal.key", "nope.yaml"],
    )?);
    assert!(err.contains("nope.yaml"), "{err}");
    std::fs::copy(contract(), d.join("good.yaml"))?;
    let err = failure(&run(
        d,
        &["policy", "sign", "--key", "legal.pub", "good.yaml"],
    )?);
    assert!(err.contains("not a PEM PKCS#8 private key"), "{err}");
    Ok(())
}
