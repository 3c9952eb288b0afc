//! `node_id`, `policy.source` and `policy.trusted_keys`.

use super::*;

fn config(dir: &Path, top: &str, policy: &str) -> Result<Config, Vec<String>> {
    let yaml = format!(
        "{top}listeners:\n  - address: \"127.0.0.1:0\"\npolicy:\n  file: policy.bundle\n  state_dir: state\n{policy}sites:\n  - name: a\n    hosts: [\"a.example\"]\n    origins: [\"http://127.0.0.1:9000\"]\n"
    );
    Config::from_yaml(&yaml, dir).map_err(|e| e.errors.iter().map(ToString::to_string).collect())
}

#[test]
fn trusted_keys_load_against_the_config_folder() {
    let dir = tempfile::tempdir().unwrap();
    let g = crate::bundle::generate(&dir.path().join("keys"), "legal-team").unwrap();
    let cfg = config(
        dir.path(),
        "node_id: \"edge-fra-01\"\n",
        "  source: file\n  trusted_keys: [\"keys/legal-team.pub\"]\n",
    )
    .unwrap();
    assert_eq!(cfg.node_id.as_deref(), Some("edge-fra-01"));
    let p = cfg.policy.unwrap();
    assert_eq!(p.source, PolicySource::File);
    assert_eq!(p.node_id.as_deref(), Some("edge-fra-01"));
    assert_eq!(p.trusted_keys.len(), 1);
    assert_eq!(p.trusted_keys[0].id, g.key_id);
    // Without the keys: plain files, as before.
    let plain = config(dir.path(), "", "").unwrap();
    assert!(plain.node_id.is_none());
    assert!(plain.policy.unwrap().trusted_keys.is_empty());
}

#[test]
fn key_source_and_node_errors_name_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    crate::bundle::generate(dir.path(), "legal").unwrap();
    std::fs::copy(dir.path().join("legal.pub"), dir.path().join("same.pub")).unwrap();
    let errs = config(
        dir.path(),
        "node_id: \"edge fra\"\n",
        "  source: etcd\n  trusted_keys:\n    - \"missing.pub\"\n    - \"legal.key\"\n    - \"legal.pub\"\n    - \"same.pub\"\n    - \"\"\n",
    )
    .unwrap_err();
    let want = [
        "line 1: node_id: \"edge fra\" is not a node id",
        "line 5: policy.file: not used with policy.source: etcd",
        "line 5: policy.etcd: required with policy.source: etcd",
        "line 9: policy.trusted_keys[0]: unusable trusted key: cannot read key file",
        "line 10: policy.trusted_keys[1]: unusable trusted key:",
        "line 12: policy.trusted_keys[3]: key ",
        "line 13: policy.trusted_keys[4]: must not be empty",
    ];
    for w in want {
        assert!(
            errs.iter().any(|e| e.starts_with(w)),
            "no {w:?} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
    let errs = config(dir.path(), "", "  source: git\n  trusted_keys: []\n").unwrap_err();
    assert!(
        errs[0].contains("policy.source: \"git\" is not a policy source"),
        "{errs:?}"
    );
    assert!(
        errs[1].contains("policy.trusted_keys: must not be empty"),
        "{errs:?}"
    );
    // An etcd section needs its endpoints (and unknown keys in it are refused).
    let errs = config(dir.path(), "", "  etcd:\n    prefix: \"/p\"\n").unwrap_err();
    assert!(errs[0].contains("endpoints"), "{errs:?}");
}

#[test]
fn node_ids_are_short_and_plain() {
    let dir = tempfile::tempdir().unwrap();
    for ok in ["a", "edge-fra-01", "n_1.b", &"x".repeat(64)] {
        let top = format!("node_id: \"{ok}\"\n");
        assert!(config(dir.path(), &top, "").is_ok(), "{ok}");
    }
    for bad in ["", "a/b", "é", "a b", &"x".repeat(65)] {
        let top = format!("node_id: \"{bad}\"\n");
        assert!(config(dir.path(), &top, "").is_err(), "{bad:?}");
    }
}
