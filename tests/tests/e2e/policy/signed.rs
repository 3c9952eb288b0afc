//! Signed policy bundles with the file source (issue #7, stage 1): with `policy.trusted_keys`
//! the file must be a bundle one of the keys signed. A genuine, newer bundle is applied; a
//! tampered one, one signed by an untrusted key, a plain unsigned file, and a genuinely signed
//! but older one are refused while the running table keeps serving, each counted under its
//! reason and audited. The last good copy is the verified bundle, verified again at start-up.

use portcullis_tests::bundle::{Signer, tampered};
use portcullis_tests::client::get_once;
use portcullis_tests::policy::{self, Order, PolicyFile};
use portcullis_tests::{Origin, OriginHandle, Scrape, TestProxy, eventually};

use super::{PIRATE, TOKEN, pirate_order, proxy_with};

/// Serial `serial` with no order on [`PIRATE`].
fn lifted(serial: u64) -> PolicyFile {
    PolicyFile::new(serial).order(Order::new("OTHER", "forbidden.example").status(403))
}

/// Serial `serial` suspending [`PIRATE`].
fn suspended(serial: u64) -> PolicyFile {
    lifted(serial).order(pirate_order())
}

/// A proxy trusting `signer`, whose policy file is `bundle` (no hash check to speak of: the
/// watch and the admin endpoint do the reloads).
fn signed_proxy(origin: &OriginHandle, signer: &Signer, bundle: &str) -> TestProxy {
    proxy_with(origin, &PolicyFile::new(0))
        .policy(bundle)
        .trusted_keys(&[signer.public_key()])
        .policy_key("check_interval", "1h")
}

async fn status_of(addr: std::net::SocketAddr, host: &str) -> anyhow::Result<u16> {
    Ok(get_once(addr, host, "/").await?.status.as_u16())
}

fn refused(s: &Scrape, reason: &str) -> anyhow::Result<f64> {
    s.get_or_zero(
        "portcullis_policy_bundles_refused_total",
        &[("reason", reason)],
    )
}

/// The audit records of `event`, parsed.
fn audited(files: &policy::PolicyFiles, event: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for line in files.audit_lines()? {
        let v: serde_json::Value = serde_json::from_str(&line)?;
        if v["event"] == event {
            out.push(v);
        }
    }
    Ok(out)
}

#[tokio::test]
async fn a_signed_bundle_is_enforced_and_a_newer_one_applied() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let signer = Signer::new()?;
    let first = signer.sign(&suspended(5));
    let proxy = signed_proxy(&origin, &signer, &first).start().await?;
    assert_eq!(status_of(proxy.addr(), PIRATE).await?, 451);
    assert_eq!(status_of(proxy.addr(), "forbidden.example").await?, 403);
    let files = proxy.policy_files();
    // The last good copy is the verified bundle itself.
    assert_eq!(std::fs::read_to_string(files.last_good())?, first);
    let loaded = audited(&files, "policy_loaded")?;
    assert_eq!(loaded.len(), 1, "{loaded:?}");
    assert_eq!(loaded[0]["serial"], 5);
    assert_eq!(loaded[0]["node"], serde_json::Value::Null, "no node_id set");

    // A newer bundle lifting the suspension, dropped in by an atomic rename.
    let newer = signer.sign(&lifted(6));
    files.replace(&newer)?;
    eventually("the newer bundle is applied", || async {
        let now = status_of(proxy.addr(), PIRATE).await?;
        anyhow::ensure!(now == 200, "{PIRATE} answers {now}");
        Ok(())
    })
    .await?;
    let d = policy::describe(proxy.admin()).await?;
    assert_eq!(d["serial"], 6);
    assert_eq!(d["last_error"], serde_json::Value::Null);
    // Written after the swap the admin endpoint already shows.
    eventually("the newer bundle is the last good copy", || async {
        let good = std::fs::read_to_string(files.last_good())?;
        anyhow::ensure!(good == newer, "last good copy: {good}");
        Ok(())
    })
    .await?;
    let loaded = audited(&files, "policy_loaded")?;
    assert_eq!(
        loaded.last().map(|l| l["key_id"].clone()),
        Some(signer.key_id().into())
    );
    let scrape = Scrape::fetch(proxy.admin()).await?;
    for reason in [
        "unsigned",
        "bad_signature",
        "untrusted_key",
        "malformed",
        "serial",
    ] {
        assert_eq!(refused(&scrape, reason)?, 0.0, "{reason}");
    }
    Ok(())
}

#[tokio::test]
async fn forged_unsigned_and_replayed_bundles_are_refused_and_the_block_stays() -> anyhow::Result<()>
{
    let origin = Origin::echo().start().await?;
    let signer = Signer::new()?;
    let stranger = Signer::new()?;
    let running = signer.sign(&suspended(5));
    let proxy = signed_proxy(&origin, &signer, &running).start().await?;
    assert_eq!(status_of(proxy.addr(), PIRATE).await?, 451);
    let files = proxy.policy_files();

    // Each attempt would lift the block on PIRATE (and one also blocks watched.example).
    let blocks_new_host = lifted(7).order(Order::new("NEW", "watched.example"));
    let attempts: Vec<(&str, String)> = vec![
        ("bad_signature", tampered(&running, &blocks_new_host)?),
        ("untrusted_key", stranger.sign(&blocks_new_host)),
        ("unsigned", blocks_new_host.render()),
        ("malformed", running[..running.len() / 2].to_owned()),
        // Genuinely signed, but older than the running table: a replay to lift the block.
        ("serial", signer.sign(&lifted(4))),
    ];
    for (reason, text) in &attempts {
        files.replace(text)?;
        eventually(&format!("the {reason} bundle is refused"), || async {
            let n = refused(&Scrape::fetch(proxy.admin()).await?, reason)?;
            anyhow::ensure!(n == 1.0, "refused{{reason={reason}}} = {n}");
            Ok(())
        })
        .await?;
        assert_eq!(status_of(proxy.addr(), PIRATE).await?, 451, "{reason}");
        assert_eq!(
            status_of(proxy.addr(), "watched.example").await?,
            200,
            "{reason}: the refused bundle's order is not in force"
        );
        let d = policy::describe(proxy.admin()).await?;
        assert_eq!(d["serial"], 5, "{reason}");
        let err = d["last_error"].as_str().unwrap_or_default();
        assert!(err.contains("policy.yaml"), "{reason}: {err}");
        let records = audited(&files, "bundle_refused")?;
        let last = records.last().cloned().unwrap_or_default();
        assert_eq!(last["reason"], *reason, "{records:?}");
        assert_eq!(last["trigger"], "watch", "{last}");
        let key = match *reason {
            "bad_signature" | "serial" => serde_json::Value::from(signer.key_id()),
            "untrusted_key" => stranger.key_id().into(),
            _ => serde_json::Value::Null,
        };
        assert_eq!(last["key_id"], key, "{last}");
        // The last good copy is still the running bundle.
        assert_eq!(std::fs::read_to_string(files.last_good())?, running);
    }
    let scrape = Scrape::fetch(proxy.admin()).await?;
    assert_eq!(
        scrape.get("portcullis_policy_reloads_total", &[("result", "refused")])?,
        attempts.len() as f64
    );
    assert_eq!(audited(&files, "bundle_refused")?.len(), attempts.len());
    // The explicit reload says why too.
    let r = policy::reload(proxy.admin(), Some(TOKEN)).await?;
    assert_eq!(r.status, http::StatusCode::CONFLICT, "{}", r.json);
    assert_eq!(r.json["reason"], "serial", "{}", r.json);
    Ok(())
}

#[tokio::test]
async fn start_up_verifies_the_file_and_the_last_good_bundle() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let signer = Signer::new()?;
    let stranger = Signer::new()?;
    // A broken (tampered) file: the last good bundle is verified and enforced.
    let good = signer.sign(&suspended(2));
    let proxy = signed_proxy(&origin, &signer, &tampered(&good, &lifted(3))?)
        .last_good_policy(&good)
        .start()
        .await?;
    assert_eq!(status_of(proxy.addr(), PIRATE).await?, 451);
    let d = policy::describe(proxy.admin()).await?;
    assert_eq!(d["serial"], 2);
    assert_eq!(d["source"], "last_good");
    let err = d["last_error"].as_str().unwrap_or_default();
    assert!(err.contains("does not verify"), "{err}");
    let scrape = Scrape::fetch(proxy.admin()).await?;
    assert_eq!(refused(&scrape, "bad_signature")?, 1.0);
    let records = audited(&proxy.policy_files(), "bundle_refused")?;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["trigger"], "startup");
    drop(proxy);

    // A last good copy the configured keys no longer accept is not used: no policy, no start.
    for last_good in [stranger.sign(&suspended(2)), suspended(2).render()] {
        let err = signed_proxy(&origin, &signer, "not a bundle")
            .last_good_policy(&last_good)
            .start()
            .await
            .expect_err("an unverified last good copy must not be served");
        let msg = format!("{err:#}");
        assert!(msg.contains("policy.last-good.yaml"), "{msg}");
    }
    assert_eq!(origin.requests(), 0);
    Ok(())
}

#[tokio::test]
async fn an_authentic_bundle_of_an_invalid_policy_is_an_invalid_reload() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let signer = Signer::new()?;
    let proxy = signed_proxy(&origin, &signer, &signer.sign(&suspended(5)))
        .start()
        .await?;
    // Signed outside `policy sign` (which refuses invalid policies): verified, then not valid.
    let broken = "serial: 6\nblocked_by: \"https://edge.example.net/legal\"\norders:\n  - id: [\n";
    proxy.policy_files().replace(&signer.sign_text(broken))?;
    eventually("the invalid policy is reported", || async {
        let s = Scrape::fetch(proxy.admin()).await?;
        let n = s.get_or_zero("portcullis_policy_reloads_total", &[("result", "invalid")])?;
        anyhow::ensure!(n == 1.0, "invalid reloads = {n}");
        Ok(())
    })
    .await?;
    assert_eq!(status_of(proxy.addr(), PIRATE).await?, 451);
    let scrape = Scrape::fetch(proxy.admin()).await?;
    for reason in [
        "unsigned",
        "bad_signature",
        "untrusted_key",
        "malformed",
        "serial",
    ] {
        assert_eq!(refused(&scrape, reason)?, 0.0, "{reason}");
    }
    let d = policy::describe(proxy.admin()).await?;
    assert_eq!(d["serial"], 5);
    assert!(
        d["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("policy.yaml")),
        "{d}"
    );
    Ok(())
}
