//! Start-up fails closed: a broken or missing policy file falls back to the last good copy in
//! `state_dir`; with neither the proxy refuses to start and says why; a file older than the last
//! good copy (a lower serial) cannot lift what the newer one imposed.

use portcullis_tests::client::get_once;
use portcullis_tests::policy::{self, Order, PolicyFile};
use portcullis_tests::{Origin, Scrape};

use super::{PIRATE, pirate_order, proxy_with};

fn good(serial: u64) -> PolicyFile {
    PolicyFile::new(serial).order(pirate_order())
}

const BROKEN: &str =
    "serial: 3\nblocked_by: \"https://edge.example.net/legal\"\norders:\n  - id: [\n";

#[tokio::test]
async fn a_broken_file_falls_back_to_the_last_good_copy() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = proxy_with(&origin, &PolicyFile::new(0))
        .policy(BROKEN)
        .last_good_policy(&good(2).render())
        .start()
        .await?;
    let reply = get_once(proxy.addr(), PIRATE, "/").await?;
    assert_eq!(
        reply.status.as_u16(),
        451,
        "the last good table is enforced"
    );
    let d = policy::describe(proxy.admin()).await?;
    assert_eq!(d["serial"], 2);
    assert_eq!(d["source"], "last_good");
    assert!(
        d["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("policy.yaml")),
        "the file's error is shown: {}",
        d["last_error"]
    );
    let scrape = Scrape::fetch(proxy.admin()).await?;
    assert_eq!(
        scrape.get("portcullis_policy_last_reload_success", &[])?,
        0.0
    );
    assert_eq!(
        std::fs::read_to_string(proxy.policy_files().last_good())?,
        good(2).render(),
        "the last good copy is kept, not overwritten by the broken file"
    );
    assert_eq!(origin.requests(), 0);
    Ok(())
}

#[tokio::test]
async fn a_missing_file_falls_back_to_the_last_good_copy() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = proxy_with(&origin, &PolicyFile::new(0))
        .policy_missing()
        .last_good_policy(&good(2).render())
        .start()
        .await?;
    let reply = get_once(proxy.addr(), PIRATE, "/").await?;
    assert_eq!(reply.status.as_u16(), 451);
    assert_eq!(
        policy::describe(proxy.admin()).await?["source"],
        "last_good"
    );
    Ok(())
}

#[tokio::test]
async fn no_valid_policy_at_all_refuses_to_start_naming_the_file() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    for builder in [
        proxy_with(&origin, &PolicyFile::new(0)).policy(BROKEN),
        proxy_with(&origin, &PolicyFile::new(0)).policy_missing(),
        proxy_with(&origin, &PolicyFile::new(0))
            .policy(BROKEN)
            .last_good_policy(BROKEN),
    ] {
        let err = builder
            .clone()
            .start()
            .await
            .expect_err("the proxy must not serve without a policy");
        let msg = format!("{err:#}");
        assert!(msg.contains("policy.yaml"), "names the file: {msg}");
        assert!(
            msg.contains("policy.last-good.yaml"),
            "names the copy: {msg}"
        );
        // The real binary: exits with the same reason, having bound nothing.
        let err = builder
            .spawn_binary(&[])
            .expect_err("the binary must not serve without a policy");
        let msg = format!("{err:#}");
        assert!(msg.contains("policy.yaml"), "the binary says why: {msg}");
    }
    assert_eq!(origin.requests(), 0);
    Ok(())
}

#[tokio::test]
async fn an_older_file_at_start_up_cannot_lift_the_last_good_table() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let older = PolicyFile::new(9).order(Order::new("OTHER", "forbidden.example").status(403));
    let proxy = proxy_with(&origin, &older)
        .last_good_policy(&good(10).render())
        .start()
        .await?;
    let reply = get_once(proxy.addr(), PIRATE, "/").await?;
    assert_eq!(reply.status.as_u16(), 451, "serial 10 stays enforced");
    let d = policy::describe(proxy.admin()).await?;
    assert_eq!(d["serial"], 10);
    assert_eq!(d["source"], "last_good");
    assert!(d["last_error"].is_string(), "{}", d["last_error"]);
    // A newer file at start-up replaces the last good copy.
    let origin = Origin::echo().start().await?;
    let proxy = proxy_with(&origin, &good(11).order(Order::new("NEW", "moved.example")))
        .last_good_policy(&good(10).render())
        .start()
        .await?;
    let d = policy::describe(proxy.admin()).await?;
    assert_eq!(d["serial"], 11);
    assert_eq!(d["source"], "file");
    assert_eq!(
        get_once(proxy.addr(), "moved.example", "/").await?.status,
        451
    );
    Ok(())
}
