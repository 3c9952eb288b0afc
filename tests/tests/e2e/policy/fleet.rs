//! The fleet policy source end to end (issue #7): a real etcd on loopback, real proxies, the
//! real `portcullis policy publish` and `fleet status` binaries. Published suspensions reach
//! every node, which report their serial; forged, untrusted and replayed bundles are refused
//! while the table stays; nodes cut off from etcd keep enforcing (and expiring on schedule),
//! start from their persisted copy, and catch up when etcd returns; a compacted history and a
//! dead node's lease are handled.
//!
//! Waits poll with generous deadlines (a loaded 2-core CI machine); the one time measured,
//! convergence, is printed, never asserted.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use portcullis_tests::bundle::{Signer, tampered};
use portcullis_tests::client::get_once;
use portcullis_tests::policy::{self, Order, PolicyFile, rfc3339_from_now};
use portcullis_tests::process::binary_path;
use portcullis_tests::{Etcd, Origin, OriginHandle, RunningProxy, Scrape, TestProxy};
use serde_json::Value;

use super::{PIRATE, pirate_order, proxy_with};

const PREFIX: &str = "/fleet-test";
/// A host no order ever covers.
const OPEN: &str = "shop.example";
/// How long a fleet-wide condition may take on a loaded machine.
const CONVERGE: Duration = Duration::from_secs(30);

fn lifted(serial: u64) -> PolicyFile {
    PolicyFile::new(serial).order(Order::new("OTHER", "forbidden.example").status(403))
}

fn suspended(serial: u64) -> PolicyFile {
    lifted(serial).order(pirate_order())
}

/// Polls `check` every 50 ms until it is `Ok`, for at most `limit`.
async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match check().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!("{what}: still not true after {limit:?}")));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn status_of(addr: SocketAddr, host: &str) -> anyhow::Result<u16> {
    Ok(get_once(addr, host, "/").await?.status.as_u16())
}

/// Every node answers `pirate` for [`PIRATE`] and 200 for [`OPEN`].
async fn all_answer(nodes: &[&RunningProxy], pirate: u16) -> anyhow::Result<()> {
    for n in nodes {
        let got = status_of(n.addr(), PIRATE).await?;
        anyhow::ensure!(got == pirate, "{PIRATE} answers {got} on {}", n.addr());
        let open = status_of(n.addr(), OPEN).await?;
        anyhow::ensure!(open == 200, "{OPEN} answers {open} on {}", n.addr());
    }
    Ok(())
}

/// A node trusting `signer`, following `etcd`, reporting as `id`.
fn node(
    origin: &OriginHandle,
    signer: &Signer,
    etcd_url: &str,
    id: &str,
    lease_ttl: &str,
) -> TestProxy {
    proxy_with(origin, &PolicyFile::new(0))
        .node_id(id)
        .etcd_policy(etcd_url, PREFIX, lease_ttl)
        .trusted_keys(&[signer.public_key()])
}

/// Runs the real binary with `args`; returns (exit code, stdout, stderr).
async fn portcullis(args: Vec<String>) -> anyhow::Result<(i32, String, String)> {
    let bin = binary_path()?;
    let out =
        tokio::task::spawn_blocking(move || std::process::Command::new(bin).args(args).output())
            .await??;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// `portcullis policy publish --etcd URL --prefix PREFIX --trusted-key KEY BUNDLE`.
async fn publish(
    etcd: &Etcd,
    signer: &Signer,
    bundle: &str,
) -> anyhow::Result<(i32, String, String)> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("policy.bundle");
    std::fs::write(&file, bundle)?;
    portcullis(vec![
        "policy".into(),
        "publish".into(),
        "--etcd".into(),
        etcd.url(),
        "--prefix".into(),
        PREFIX.into(),
        "--trusted-key".into(),
        signer.public_key().display().to_string(),
        file.display().to_string(),
    ])
    .await
}

/// Publishes through the library (same code as the binary; quicker in the longer scenarios).
async fn publish_ok(etcd: &Etcd, bundle: &str) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("policy.bundle");
    std::fs::write(&file, bundle)?;
    portcullis::cli::policy_publish(&etcd.url(), PREFIX, &file, &[]).await?;
    Ok(())
}

/// The report of node `id`, parsed.
async fn report(etcd: &Etcd, id: &str) -> anyhow::Result<Value> {
    let raw = etcd
        .get(&format!("{PREFIX}/nodes/{id}"))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no report of {id}"))?;
    Ok(serde_json::from_slice(&raw)?)
}

fn refused(s: &Scrape, reason: &str) -> anyhow::Result<f64> {
    s.get_or_zero(
        "portcullis_policy_bundles_refused_total",
        &[("reason", reason)],
    )
}

async fn metric(admin: SocketAddr, name: &str) -> anyhow::Result<f64> {
    Scrape::fetch(admin).await?.get(name, &[])
}

fn refusals_audited(files: &policy::PolicyFiles) -> anyhow::Result<Vec<String>> {
    let mut reasons = Vec::new();
    for line in files.audit_lines()? {
        let v: Value = serde_json::from_str(&line)?;
        if v["event"] == "bundle_refused" {
            reasons.push(v["reason"].as_str().unwrap_or("").to_owned());
        }
    }
    Ok(reasons)
}

#[tokio::test]
async fn a_published_suspension_reaches_three_nodes_and_forgeries_are_refused() -> anyhow::Result<()>
{
    let etcd = Etcd::start().await?;
    let url = etcd.url();
    let origin = Origin::echo().start().await?;
    let signer = Signer::new()?;
    let stranger = Signer::new()?;
    let first = signer.sign(&lifted(1));
    let (code, out, err) = publish(&etcd, &signer, &first).await?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("published serial 1"), "{out}");

    let ids = ["edge-a", "edge-b", "edge-c"];
    let mut nodes = Vec::new();
    for id in ids {
        nodes.push(node(&origin, &signer, &url, id, "10s").start().await?);
    }
    let all: Vec<&RunningProxy> = nodes.iter().collect();
    all_answer(&all, 200).await?;

    // a. A suspension published once reaches every node; each reports its serial.
    let second = signer.sign(&suspended(2));
    let started = Instant::now();
    let (code, out, err) = publish(&etcd, &signer, &second).await?;
    assert_eq!(code, 0, "{out}{err}");
    wait_for("all three nodes serve 451", CONVERGE, || {
        all_answer(&all, 451)
    })
    .await?;
    println!(
        "fleet convergence: 3 nodes enforcing serial 2 {} ms after `policy publish` started",
        started.elapsed().as_millis()
    );
    let sha = policy::describe_short(nodes[0].admin()).await?["sha256"].clone();
    for id in ids {
        wait_for("the node reports serial 2", CONVERGE, || async {
            let r = report(&etcd, id).await?;
            anyhow::ensure!(r["serial"] == 2 && r["sha256"] == sha, "{r}");
            Ok(())
        })
        .await?;
        let r = report(&etcd, id).await?;
        assert_eq!(r["node"], id);
        assert_eq!(r["error"], Value::Null);
        assert!(
            r["applied_at"].is_string() && r["reported_at"].is_string(),
            "{r}"
        );
    }
    // There is no file to reload: the admin endpoint says so and changes nothing.
    let r = policy::reload(nodes[0].admin(), Some(super::TOKEN)).await?;
    assert_eq!(r.status, 409, "{}", r.json);
    assert_eq!(r.json["result"], "not_applicable", "{}", r.json);
    for n in &nodes {
        let d = policy::describe_short(n.admin()).await?;
        assert_eq!(d["source"], "etcd", "{d}");
        assert_eq!(d["connected"], true, "{d}");
        assert!(d["etcd_revision"].as_i64() > Some(0), "{d}");
    }
    let (code, out, err) = portcullis(vec![
        "fleet".into(),
        "status".into(),
        "--etcd".into(),
        etcd.url(),
        "--prefix".into(),
        PREFIX.into(),
        "--json".into(),
    ])
    .await?;
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out)?;
    assert_eq!(status["published"]["serial"], 2, "{status}");
    let listed = status["nodes"].as_array().cloned().unwrap_or_default();
    assert_eq!(listed.len(), 3, "{status}");
    for n in &listed {
        assert_eq!(n["lag"], 0, "{status}");
        assert_eq!(n["serial"], 2, "{status}");
    }
    let (code, table, _) = portcullis(vec![
        "fleet".into(),
        "status".into(),
        "--etcd".into(),
        etcd.url(),
        "--prefix".into(),
        PREFIX.into(),
    ])
    .await?;
    assert_eq!(code, 0);
    assert!(table.contains("published serial 2"), "{table}");
    for id in ids {
        assert!(table.contains(id), "{table}");
    }

    // The publish command refuses a serial not higher than the published one.
    let (code, _, err) = publish(&etcd, &signer, &first).await?;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("refusing to publish serial 1") && err.contains("already holds serial 2"),
        "{err}"
    );
    // ... and, with --trusted-key, a bundle its key did not sign.
    let (code, _, err) = publish(&etcd, &signer, &stranger.sign(&lifted(9))).await?;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("untrusted_key"), "{err}");

    // b. Forgeries written straight into etcd: each refused on every node, counted, audited
    // and reported, and the suspension stays.
    let key = format!("{PREFIX}/policy");
    let forgeries = [
        ("bad_signature", tampered(&second, &lifted(3))?),
        ("untrusted_key", stranger.sign(&lifted(4))),
        ("serial", first.clone()),
    ];
    for (reason, bytes) in &forgeries {
        etcd.put(&key, bytes.as_bytes()).await?;
        for (n, id) in nodes.iter().zip(ids) {
            wait_for(
                &format!("{id} refuses the {reason} bundle"),
                CONVERGE,
                || async {
                    let s = Scrape::fetch(n.admin()).await?;
                    anyhow::ensure!(refused(&s, reason)? == 1.0, "not counted yet");
                    Ok(())
                },
            )
            .await?;
            wait_for("the report carries the error", CONVERGE, || async {
                let r = report(&etcd, id).await?;
                anyhow::ensure!(r["error"].is_string() && r["serial"] == 2, "{r}");
                Ok(())
            })
            .await?;
        }
        all_answer(&all, 451).await?;
    }
    for n in &nodes {
        let reasons = refusals_audited(&n.policy_files())?;
        assert_eq!(
            reasons,
            ["bad_signature", "untrusted_key", "serial"],
            "audited refusals"
        );
        let d = policy::describe_short(n.admin()).await?;
        assert_eq!(d["serial"], 2, "{d}");
    }
    Ok(())
}

#[tokio::test]
async fn cut_off_nodes_keep_enforcing_expire_on_schedule_restart_from_disk_and_catch_up()
-> anyhow::Result<()> {
    let mut etcd = Etcd::start().await?;
    let url = etcd.url();
    let origin = Origin::echo().start().await?;
    let signer = Signer::new()?;
    // An order ending a little later: it must end while etcd is down.
    let expires_at = rfc3339_from_now(12);
    let policy = suspended(1).order(Order::new("SOON", "lifted.example").expires_at(&expires_at));
    publish_ok(&etcd, &signer.sign(&policy)).await?;
    let states = [tempfile::tempdir()?, tempfile::tempdir()?];
    let start = |i: usize| {
        node(&origin, &signer, &url, &format!("edge-{i}"), "10s")
            .state_dir(states[i].path())
            .start()
    };
    let mut first = start(0).await?;
    let second = start(1).await?;
    for n in [&first, &second] {
        assert_eq!(status_of(n.addr(), PIRATE).await?, 451);
        assert_eq!(status_of(n.addr(), "lifted.example").await?, 451);
        wait_for("the watch is established", CONVERGE, || async {
            anyhow::ensure!(metric(n.admin(), "portcullis_policy_source_connected").await? == 1.0);
            Ok(())
        })
        .await?;
    }

    // c. etcd goes away: the nodes notice, and keep enforcing.
    etcd.stop();
    for n in [&first, &second] {
        wait_for("source_connected drops to 0", CONVERGE, || async {
            anyhow::ensure!(metric(n.admin(), "portcullis_policy_source_connected").await? == 0.0);
            Ok(())
        })
        .await?;
        assert_eq!(status_of(n.addr(), PIRATE).await?, 451);
        let d = policy::describe_short(n.admin()).await?;
        assert_eq!(d["connected"], false, "{d}");
        assert!(d["seconds_since_contact"].as_f64().is_some(), "{d}");
    }
    let stopped_at = rfc3339_from_now(0);
    assert!(
        stopped_at < expires_at,
        "the machine is too slow for this scenario: etcd stopped at {stopped_at}, after SOON expired ({expires_at})"
    );

    // d. A node restarted while etcd is down starts from its persisted copy...
    first.shutdown();
    first.stopped().await?;
    drop(first);
    let first = start(0).await?;
    assert_eq!(status_of(first.addr(), PIRATE).await?, 451);
    let d = policy::describe_short(first.admin()).await?;
    assert_eq!(d["source"], "last_good", "{d}");
    assert_eq!(d["serial"], 1, "{d}");
    // ... and a node with no persisted copy refuses to start, saying why.
    let empty = tempfile::tempdir()?;
    let err = node(&origin, &signer, &url, "edge-new", "10s")
        .state_dir(empty.path())
        .start()
        .await
        .expect_err("a node with neither etcd nor a persisted copy must not start");
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&etcd.url()) && msg.contains(&empty.path().display().to_string()),
        "{msg}"
    );

    // The scheduled expiry still happens on every node, etcd or not.
    for n in [&first, &second] {
        wait_for("SOON expires on schedule", CONVERGE, || async {
            let got = status_of(n.addr(), "lifted.example").await?;
            anyhow::ensure!(got == 200, "lifted.example answers {got}");
            Ok(())
        })
        .await?;
        assert_eq!(status_of(n.addr(), PIRATE).await?, 451);
    }

    // etcd returns; a newer bundle lifting the suspension reaches both.
    etcd.restart().await?;
    publish_ok(&etcd, &signer.sign(&lifted(2))).await?;
    for n in [&first, &second] {
        wait_for("the node catches up", CONVERGE, || async {
            let got = status_of(n.addr(), PIRATE).await?;
            anyhow::ensure!(got == 200, "{PIRATE} answers {got}");
            Ok(())
        })
        .await?;
        wait_for("source_connected back to 1", CONVERGE, || async {
            anyhow::ensure!(metric(n.admin(), "portcullis_policy_source_connected").await? == 1.0);
            Ok(())
        })
        .await?;
        assert!(metric(n.admin(), "portcullis_policy_watch_restarts_total").await? > 0.0);
        assert!(
            metric(
                n.admin(),
                "portcullis_policy_source_last_contact_timestamp_seconds"
            )
            .await?
                > 0.0
        );
    }
    for (i, s) in states.iter().enumerate() {
        wait_for("the report is back", CONVERGE, || async {
            let r = report(&etcd, &format!("edge-{i}")).await?;
            anyhow::ensure!(r["serial"] == 2, "{r}");
            Ok(())
        })
        .await?;
        assert!(s.path().join("policy.last-good.yaml").is_file());
    }
    Ok(())
}

#[tokio::test]
async fn a_compacted_history_still_converges_and_dead_nodes_leave() -> anyhow::Result<()> {
    let etcd = Etcd::start().await?;
    let url = etcd.url();
    let origin = Origin::echo().start().await?;
    let signer = Signer::new()?;
    publish_ok(&etcd, &signer.sign(&lifted(1))).await?;
    // This node reaches etcd through a relay the test can cut.
    let link = etcd.partition().await?;
    let mut watcher = node(&origin, &signer, &link.url(), "edge-watch", "2s")
        .start()
        .await?;
    wait_for("the watch is established", CONVERGE, || async {
        anyhow::ensure!(
            metric(watcher.admin(), "portcullis_policy_source_connected").await? == 1.0
        );
        Ok(())
    })
    .await?;

    // e. While the node is cut off, several revisions are published and compacted away: its
    // watch revision is gone when it returns, so it must read the key afresh and converge.
    link.cut();
    wait_for("the node sees the cut", CONVERGE, || async {
        anyhow::ensure!(
            metric(watcher.admin(), "portcullis_policy_source_connected").await? == 0.0
        );
        Ok(())
    })
    .await?;
    for serial in 2..=4 {
        publish_ok(&etcd, &signer.sign(&suspended(serial))).await?;
    }
    let compacted = etcd.compact().await?;
    println!("etcd compacted at revision {compacted} while the node was cut off");
    assert_eq!(
        status_of(watcher.addr(), PIRATE).await?,
        200,
        "still serial 1"
    );
    link.restore();
    wait_for(
        "the node converges after the compaction",
        CONVERGE,
        || async {
            let d = policy::describe_short(watcher.admin()).await?;
            anyhow::ensure!(d["serial"] == 4, "{d}");
            Ok(())
        },
    )
    .await?;
    assert_eq!(status_of(watcher.addr(), PIRATE).await?, 451);
    let refused_serial = refused(&Scrape::fetch(watcher.admin()).await?, "serial")?;
    assert_eq!(
        refused_serial, 0.0,
        "an older revision was applied or refused"
    );

    // f. A node that dies leaves the fleet view once its lease runs out (the binary, killed);
    // one that stops cleanly leaves at once (its lease is revoked).
    let dead = node(&origin, &signer, &url, "edge-dead", "2s").spawn_binary(&[])?;
    wait_for("the binary node reports", CONVERGE, || async {
        report(&etcd, "edge-dead").await.map(|_| ())
    })
    .await?;
    drop(dead);
    wait_for("the dead node's report expires", CONVERGE, || async {
        let r = etcd.get(&format!("{PREFIX}/nodes/edge-dead")).await?;
        anyhow::ensure!(r.is_none(), "still there");
        Ok(())
    })
    .await?;
    wait_for("the cut-off node reports again", CONVERGE, || async {
        let r = report(&etcd, "edge-watch").await?;
        anyhow::ensure!(r["serial"] == 4 && r["error"].is_null(), "{r}");
        Ok(())
    })
    .await?;
    watcher.shutdown();
    watcher.stopped().await?;
    wait_for("the stopped node's report goes", CONVERGE, || async {
        let r = etcd.get(&format!("{PREFIX}/nodes/edge-watch")).await?;
        anyhow::ensure!(r.is_none(), "still there");
        Ok(())
    })
    .await?;
    Ok(())
}
