//! `policy publish`, `fleet status` and `check` of an etcd-source config, as an operator runs
//! them, where no etcd is needed: what they refuse before (or instead of) talking to etcd. The
//! runs against a real etcd are in `tests/tests/e2e/policy/fleet.rs`.

mod command;

use std::path::Path;

use command::{contract, failure, run_in as run};

/// An etcd URL nothing listens on.
fn closed_url() -> anyhow::Result<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok(format!("http://127.0.0.1:{port}"))
}

/// A key pair and `contract.yaml` signed with it, in `dir`.
fn signed(dir: &Path) -> anyhow::Result<()> {
    std::fs::copy(contract(), dir.join("policy.yaml"))?;
    assert!(
        run(dir, &["keys", "generate", "--name", "legal"])?
            .status
            .success()
    );
    assert!(
        run(dir, &["keys", "generate", "--name", "other"])?
            .status
            .success()
    );
    let out = run(
        dir,
        &["policy", "sign", "--key", "legal.key", "policy.yaml"],
    )?;
    assert!(out.status.success(), "{out:?}");
    Ok(())
}

#[test]
fn publish_refuses_what_is_not_a_trusted_bundle_before_talking_to_etcd() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    signed(dir.path())?;
    let url = closed_url()?;
    let err = failure(&run(
        dir.path(),
        &["policy", "publish", "--etcd", &url, "policy.yaml"],
    )?);
    assert!(
        err.contains("policy.yaml: not a signed bundle") && err.contains("[unsigned]"),
        "{err}"
    );
    let err = failure(&run(
        dir.path(),
        &[
            "policy",
            "publish",
            "--etcd",
            &url,
            "--trusted-key",
            "other.pub",
            "policy.yaml.bundle",
        ],
    )?);
    assert!(err.contains("[untrusted_key]"), "{err}");
    let err = failure(&run(
        dir.path(),
        &[
            "policy",
            "publish",
            "--etcd",
            "https://127.0.0.1:2379",
            "policy.yaml.bundle",
        ],
    )?);
    assert!(err.contains("https to etcd is not supported yet"), "{err}");
    let err = failure(&run(
        dir.path(),
        &[
            "policy",
            "publish",
            "--etcd",
            &url,
            "--prefix",
            "portcullis",
            "policy.yaml.bundle",
        ],
    )?);
    assert!(err.contains("\"portcullis\" is not a key prefix"), "{err}");
    Ok(())
}

#[test]
fn an_unreachable_etcd_is_an_error_naming_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    signed(dir.path())?;
    let url = closed_url()?;
    let host = url.trim_start_matches("http://");
    let err = failure(&run(
        dir.path(),
        &[
            "policy",
            "publish",
            "--etcd",
            &url,
            "--trusted-key",
            "legal.pub",
            "policy.yaml.bundle",
        ],
    )?);
    assert!(
        err.contains("no etcd endpoint answered") && err.contains(host),
        "{err}"
    );
    let err = failure(&run(dir.path(), &["fleet", "status", "--etcd", &url])?);
    assert!(err.contains(host), "{err}");
    Ok(())
}

#[test]
fn check_validates_an_etcd_config_without_etcd() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    signed(dir.path())?;
    let config = format!(
        "node_id: \"edge-1\"\nlisteners:\n  - address: \"127.0.0.1:0\"\npolicy:\n  source: etcd\n  etcd:\n    endpoints: [\"{}\"]\n  trusted_keys: [\"legal.pub\"]\n  state_dir: state\nsites:\n  - name: a\n    hosts: [\"a.example\"]\n    origins: [\"http://127.0.0.1:9000\"]\n",
        closed_url()?
    );
    std::fs::write(dir.path().join("edge.yaml"), config)?;
    let out = run(dir.path(), &["check", "--config", "edge.yaml"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("not contacted by check"), "{stdout}");
    assert!(stdout.contains("/portcullis/nodes/edge-1"), "{stdout}");
    Ok(())
}
