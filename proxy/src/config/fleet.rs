//! Validation of `policy.etcd` (the fleet policy source): endpoints, key prefix, report lease.

use std::time::Duration;

use serde_saphyr::Spanned;

use super::raw::RawEtcd;
use super::validate::Validator;
use super::{ConfigErrorKind, EtcdConfig};

/// Default of `policy.etcd.prefix`.
pub(super) const PREFIX: &str = "/portcullis";
/// Default of `policy.etcd.lease_ttl`: a stopped node's report is gone this long after.
pub(super) const LEASE_TTL: Duration = Duration::from_secs(10);
/// Below this, a keepalive every third of the TTL is too tight for a loaded machine.
const MIN_LEASE_TTL: Duration = Duration::from_secs(2);

impl Validator<'_> {
    pub(super) fn etcd_section(&mut self, raw: &Spanned<RawEtcd>) -> Option<EtcdConfig> {
        let RawEtcd {
            endpoints,
            prefix,
            lease_ttl,
        } = &raw.value;
        let before = self.errors.len();
        if endpoints.value.is_empty() {
            self.err(endpoints, "policy.etcd.endpoints", ConfigErrorKind::Empty);
        }
        let mut urls = Vec::new();
        for (i, e) in endpoints.value.iter().enumerate() {
            match crate::fleet::etcd::endpoint_authority(e.value.trim()) {
                Ok(_) => urls.push(e.value.trim().to_owned()),
                Err(reason) => self.err(
                    e,
                    format!("policy.etcd.endpoints[{i}]"),
                    ConfigErrorKind::BadEtcdEndpoint { reason },
                ),
            }
        }
        let prefix = match prefix {
            Some(p) => {
                let v = p.value.trim();
                let ok = v.starts_with('/')
                    && v.len() > 1
                    && !v.ends_with('/')
                    && !v
                        .bytes()
                        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control());
                if !ok {
                    let value = p.value.clone();
                    self.err(
                        p,
                        "policy.etcd.prefix",
                        ConfigErrorKind::BadEtcdPrefix { value },
                    );
                }
                v.to_owned()
            }
            None => PREFIX.to_owned(),
        };
        let lease_ttl = match lease_ttl {
            Some(t) => {
                let d = self.duration(Some(t.clone()), "policy.etcd.lease_ttl", LEASE_TTL);
                if d < MIN_LEASE_TTL || d.subsec_nanos() != 0 {
                    let value = t.value.clone();
                    self.err(
                        t,
                        "policy.etcd.lease_ttl",
                        ConfigErrorKind::BadLeaseTtl { value },
                    );
                }
                d
            }
            None => LEASE_TTL,
        };
        (self.errors.len() == before).then_some(EtcdConfig {
            endpoints: urls,
            prefix,
            lease_ttl,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, PolicySource};

    /// A config with `top` before `listeners:` and `policy` as the policy section's keys.
    fn config(dir: &Path, top: &str, policy: &str) -> Result<Config, Vec<String>> {
        let yaml = format!(
            "{top}listeners:\n  - address: \"127.0.0.1:0\"\npolicy:\n  state_dir: state\n{policy}sites:\n  - name: a\n    hosts: [\"a.example\"]\n    origins: [\"http://127.0.0.1:9000\"]\n"
        );
        Config::from_yaml(&yaml, dir)
            .map_err(|e| e.errors.iter().map(ToString::to_string).collect())
    }

    fn keyed_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        crate::bundle::generate(dir.path(), "legal").unwrap();
        dir
    }

    const KEYS: &str = "  trusted_keys: [\"legal.pub\"]\n";

    #[test]
    fn an_etcd_source_with_defaults() {
        let dir = keyed_dir();
        let cfg = config(
            dir.path(),
            "node_id: \"edge-fra-01\"\n",
            &format!("  source: etcd\n  etcd:\n    endpoints: [\"http://etcd-1.internal:2379\", \"http://etcd-2:2379\"]\n{KEYS}"),
        )
        .unwrap();
        let p = cfg.policy.unwrap();
        assert_eq!(p.file, None);
        let PolicySource::Etcd(e) = p.source else {
            panic!("not the etcd source: {:?}", p.source)
        };
        assert_eq!(e.endpoints.len(), 2);
        assert_eq!(e.prefix, "/portcullis");
        assert_eq!(e.policy_key(), "/portcullis/policy");
        assert_eq!(e.nodes_prefix(), "/portcullis/nodes/");
        assert_eq!(e.lease_ttl, std::time::Duration::from_secs(10));
    }

    #[test]
    fn etcd_needs_signed_bundles_and_a_node_id() {
        let dir = keyed_dir();
        let etcd = "  source: etcd\n  etcd:\n    endpoints: [\"http://etcd-1.internal:2379\"]\n";
        let errs = config(dir.path(), "node_id: \"n1\"\n", etcd).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains("policy.trusted_keys: required with policy.source: etcd (bundles from etcd must be signed"),
            "{errs:?}"
        );
        // Every error at once: a bad endpoint does not hide the missing keys.
        let bad = "  source: etcd\n  etcd:\n    endpoints: [\"ftp://x\"]\n";
        let errs = config(dir.path(), "node_id: \"n1\"\n", bad).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[1].contains("policy.trusted_keys: required"),
            "{errs:?}"
        );
        let errs = config(dir.path(), "", &format!("{etcd}{KEYS}")).unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains("node_id: required with policy.source: etcd"),
            "{errs:?}"
        );
        assert!(errs[0].starts_with("line "), "{errs:?}");
    }

    #[test]
    fn file_and_etcd_keys_belong_to_their_source() {
        let dir = keyed_dir();
        let errs = config(
            dir.path(),
            "node_id: \"n1\"\n",
            &format!("  source: etcd\n  file: policy.yaml\n{KEYS}"),
        )
        .unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("line 7: policy.file: not used with policy.source: etcd")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("policy.etcd: required with policy.source: etcd")),
            "{errs:?}"
        );
        let errs = config(
            dir.path(),
            "",
            "  file: policy.yaml\n  etcd:\n    endpoints: [\"http://etcd-1.internal:2379\"]\n",
        )
        .unwrap_err();
        assert!(
            errs[0].contains("line 7: policy.etcd: not used unless policy.source is etcd"),
            "{errs:?}"
        );
        let errs = config(dir.path(), "", "").unwrap_err();
        assert!(
            errs[0].contains("policy.file: required with policy.source: file"),
            "{errs:?}"
        );
    }

    #[test]
    fn bad_endpoints_prefix_and_ttl_name_line_and_key() {
        let dir = keyed_dir();
        let errs = config(
            dir.path(),
            "node_id: \"n1\"\n",
            &format!(
                "  source: etcd\n  etcd:\n    endpoints:\n      - \"https://etcd-1.internal:2379\"\n      - \"etcd-1.internal:2379\"\n      - \"http://etcd-1.internal:2379/v3\"\n    prefix: \"portcullis/\"\n    lease_ttl: \"500ms\"\n{KEYS}"
            ),
        )
        .unwrap_err();
        let want = [
            "line 9: policy.etcd.endpoints[0]: bad etcd endpoint: \"https://etcd-1.internal:2379\": https to etcd is not supported yet",
            "line 10: policy.etcd.endpoints[1]: bad etcd endpoint: \"etcd-1.internal:2379\" must start with http://",
            "line 11: policy.etcd.endpoints[2]: bad etcd endpoint:",
            "line 12: policy.etcd.prefix: \"portcullis/\" is not a key prefix",
            "line 13: policy.etcd.lease_ttl: \"500ms\": a lease TTL is whole seconds, at least 2s",
        ];
        for w in want {
            assert!(
                errs.iter().any(|e| e.starts_with(w)),
                "no {w:?} in {errs:#?}"
            );
        }
        assert_eq!(errs.len(), want.len(), "{errs:#?}");
        let errs = config(
            dir.path(),
            "node_id: \"n1\"\n",
            &format!("  source: etcd\n  etcd:\n    endpoints: []\n    user: root\n{KEYS}"),
        )
        .unwrap_err();
        assert!(
            errs[0].contains("user"),
            "unknown keys are refused: {errs:?}"
        );
    }
}
