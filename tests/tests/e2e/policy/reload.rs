//! Reload by every trigger (directory watch after an atomic rename and after a symlink swap, the
//! periodic hash check, SIGHUP, `POST /admin/policy/reload`), and the reloads that must change
//! nothing: an invalid file and a lower serial.
//!
//! To tell the triggers apart, a test makes a change only its trigger can see: the hash check
//! is set to an hour unless it is the one under test, and a change no directory event reports is
//! made by rewriting the file a symlinked policy path points at, in place. The hash check still
//! ticks once right after start (when `Proxy::run` begins, which a test does not see), so a test
//! of another trigger whose first change that tick caught makes a second one ([`applied_by`]).

use http::StatusCode;
use portcullis_tests::client::get_once;
use portcullis_tests::policy::{self, Order, PolicyFile};
use portcullis_tests::{Origin, OriginHandle, RunningProxy, Scrape, TestProxy, eventually};

use super::{PIRATE, TOKEN, pirate_order, proxy_with};

/// Serial `serial` with no order on [`PIRATE`].
fn lifted(serial: u64) -> PolicyFile {
    PolicyFile::new(serial).order(Order::new("OTHER", "forbidden.example").status(403))
}

/// Serial `serial` suspending [`PIRATE`].
fn suspended(serial: u64) -> PolicyFile {
    lifted(serial).order(pirate_order())
}

/// A proxy that only reloads on the events a test makes (no hash check to speak of).
fn no_hash_check(origin: &OriginHandle, file: &PolicyFile) -> TestProxy {
    proxy_with(origin, file).policy_key("check_interval", "1h")
}

async fn pirate_status(addr: std::net::SocketAddr) -> anyhow::Result<u16> {
    Ok(get_once(addr, PIRATE, "/").await?.status.as_u16())
}

async fn becomes(addr: std::net::SocketAddr, status: u16) -> anyhow::Result<()> {
    eventually(&format!("{PIRATE} answers {status}"), || async {
        let now = pirate_status(addr).await?;
        anyhow::ensure!(now == status, "{PIRATE} answers {now}");
        Ok(())
    })
    .await
}

async fn last_trigger(proxy: std::net::SocketAddr) -> anyhow::Result<serde_json::Value> {
    let d = policy::describe(proxy).await?;
    Ok(d["last_reload"]["trigger"].clone())
}

/// Waits until `/admin/policy` reports a last reload by `trigger` (it records the attempt just
/// after the new table is swapped in).
async fn trigger_becomes(admin: std::net::SocketAddr, trigger: &str) -> anyhow::Result<()> {
    eventually(&format!("the last reload is by {trigger}"), || async {
        let now = last_trigger(admin).await?;
        anyhow::ensure!(now == trigger, "last trigger {now}");
        Ok(())
    })
    .await
}

fn reloads(s: &Scrape, result: &str) -> anyhow::Result<f64> {
    s.get_or_zero("portcullis_policy_reloads_total", &[("result", result)])
}

fn instant(v: &serde_json::Value) -> anyhow::Result<time::OffsetDateTime> {
    let text = v
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("not a time: {v}"))?;
    Ok(time::OffsetDateTime::parse(
        text,
        &time::format_description::well_known::Rfc3339,
    )?)
}

/// Writes `suspended(serial)` through the symlink (no directory event) and calls `apply`, until
/// the table is applied by `trigger`; see [`changed_by`].
async fn applied_by<T, F, Fut>(
    files: &portcullis_tests::policy::PolicyFiles,
    admin: std::net::SocketAddr,
    trigger: &str,
    apply: F,
) -> anyhow::Result<(u64, T)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let change = |serial: u64| files.write_through_symlink(&suspended(serial).render());
    changed_by(admin, trigger, change, apply).await
}

/// Makes `change(serial)` and calls `apply`, until the table is applied by `trigger` (the last
/// reload is by it, at the table's `loaded_at`): at most twice, since only the hash check's
/// first tick after start can get there first. Returns the serial applied and what the last
/// `apply` returned.
async fn changed_by<T, C, F, Fut>(
    admin: std::net::SocketAddr,
    trigger: &str,
    mut change: C,
    mut apply: F,
) -> anyhow::Result<(u64, T)>
where
    C: FnMut(u64) -> anyhow::Result<()>,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    for serial in [2, 3] {
        change(serial)?;
        let answer = apply().await?;
        // The attempt is recorded just after the swap: wait until it is.
        let d = eventually(&format!("serial {serial} is applied"), || async {
            let d = policy::describe(admin).await?;
            anyhow::ensure!(d["serial"] == serial, "serial {}", d["serial"]);
            let at = instant(&d["last_reload"]["at"])?;
            anyhow::ensure!(at >= instant(&d["loaded_at"])?, "attempt not recorded yet");
            Ok(d)
        })
        .await?;
        let by = &d["last_reload"]["trigger"];
        if by == trigger && d["last_reload"]["at"] == d["loaded_at"] {
            return Ok((serial, answer));
        }
        anyhow::ensure!(serial == 2, "serial {serial}: {d}");
    }
    anyhow::bail!("never applied by {trigger}")
}

#[tokio::test]
async fn a_file_replaced_by_atomic_rename_is_applied_by_the_watch() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = no_hash_check(&origin, &lifted(1)).start().await?;
    assert_eq!(pirate_status(proxy.addr()).await?, 200);
    let audit_before = proxy.policy_files().audit_lines()?.len();

    let files = proxy.policy_files();
    let change = |serial: u64| files.replace(&suspended(serial).render());
    let (serial, ()) = changed_by(proxy.admin(), "watch", change, || async { Ok(()) }).await?;
    assert_eq!(pirate_status(proxy.addr()).await?, 451);
    let d = policy::describe(proxy.admin()).await?;
    assert_eq!(d["last_error"], serde_json::Value::Null);
    let scrape = Scrape::fetch(proxy.admin()).await?;
    assert_eq!(scrape.get("portcullis_policy_serial", &[])?, serial as f64);
    assert_eq!(
        scrape.get("portcullis_policy_last_reload_success", &[])?,
        1.0
    );
    assert!(reloads(&scrape, "success")? >= 2.0);
    // The last good copy and the audit record are written after the swap the admin endpoint
    // already shows.
    let want = suspended(serial).render();
    eventually("the applied file is the new last good copy", || async {
        let good = std::fs::read_to_string(proxy.policy_files().last_good())?;
        anyhow::ensure!(good == want, "last good copy:\n{good}");
        Ok(())
    })
    .await?;
    eventually("the change is audited", || async {
        let n = proxy.policy_files().audit_lines()?.len();
        anyhow::ensure!(n > audit_before, "{n} audit lines, {audit_before} before");
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test]
async fn a_symlink_swap_is_applied_by_the_watch() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = no_hash_check(&origin, &lifted(1))
        .policy_symlink()
        .start()
        .await?;
    assert_eq!(pirate_status(proxy.addr()).await?, 200);
    let files = proxy.policy_files();
    let change = |serial: u64| files.swap_symlink(&suspended(serial).render());
    let (serial, ()) = changed_by(proxy.admin(), "watch", change, || async { Ok(()) }).await?;
    assert_eq!(pirate_status(proxy.addr()).await?, 451);
    // And again: the watch survives the swap (it watches the directory, not the old file).
    files.swap_symlink(&lifted(serial + 1).render())?;
    becomes(proxy.addr(), 200).await?;
    policy::serial_becomes(proxy.admin(), serial + 1).await?;
    trigger_becomes(proxy.admin(), "watch").await?;
    Ok(())
}

#[tokio::test]
async fn the_hash_check_finds_a_change_no_event_reported() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = proxy_with(&origin, &lifted(1))
        .policy_key("check_interval", "200ms")
        .policy_symlink()
        .start()
        .await?;
    assert_eq!(pirate_status(proxy.addr()).await?, 200);
    proxy
        .policy_files()
        .write_through_symlink(&suspended(2).render())?;
    becomes(proxy.addr(), 451).await?;
    trigger_becomes(proxy.admin(), "hash_check").await?;
    Ok(())
}

#[tokio::test]
async fn a_change_is_applied_within_a_second_of_the_write() -> anyhow::Result<()> {
    // Measured by the proxy's own clock (the file's mtime against the table's `loaded_at`), so
    // a test runner slow to poll does not count against the proxy.
    let origin = Origin::echo().start().await?;
    let proxy = proxy_with(&origin, &lifted(1)).start().await?;
    let files = proxy.policy_files();
    files.write_in_place(&suspended(2).render())?;
    let written = std::fs::metadata(files.path())?.modified()?;
    becomes(proxy.addr(), 451).await?;
    let d = policy::describe(proxy.admin()).await?;
    let loaded_at = d["loaded_at"].as_str().expect("loaded_at");
    let loaded_at: std::time::SystemTime =
        time::OffsetDateTime::parse(loaded_at, &time::format_description::well_known::Rfc3339)?
            .into();
    let took = loaded_at.duration_since(written).unwrap_or_default();
    assert!(
        took <= std::time::Duration::from_secs(1),
        "applied {took:?} after the write (trigger {})",
        d["last_reload"]["trigger"]
    );
    Ok(())
}

#[tokio::test]
async fn sighup_reloads_the_policy_of_the_binary() -> anyhow::Result<()> {
    // The in-process proxies of this test binary all listen for SIGHUP: signal a real process.
    let origin = Origin::echo().start().await?;
    let proc = no_hash_check(&origin, &lifted(1))
        .policy_symlink()
        .spawn_binary(&[])?;
    assert_eq!(pirate_status(proc.addr()).await?, 200);
    applied_by(&proc.policy_files(), proc.admin(), "sighup", || async {
        proc.hangup()
    })
    .await?;
    assert_eq!(pirate_status(proc.addr()).await?, 451);
    Ok(())
}

async fn post_reload(proxy: &RunningProxy) -> anyhow::Result<policy::AdminJson> {
    policy::reload(proxy.admin(), Some(TOKEN)).await
}

#[tokio::test]
async fn admin_reload_needs_the_token_and_says_what_it_did() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = no_hash_check(&origin, &lifted(1))
        .policy_symlink()
        .start()
        .await?;
    let files = proxy.policy_files();
    files.write_through_symlink(&suspended(2).render())?;
    for token in [None, Some("wrong")] {
        let r = policy::reload(proxy.admin(), token).await?;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{token:?}");
    }

    let (serial, r) = applied_by(&files, proxy.admin(), "admin", || post_reload(&proxy)).await?;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["result"], "applied");
    assert_eq!(r.json["serial"], serial);
    if serial == 2 {
        assert_eq!(r.json["added"], serde_json::json!(["PIRATE-451"]));
    }
    // Applied when the answer comes: the next request sees it.
    assert_eq!(pirate_status(proxy.addr()).await?, 451);
    let r = post_reload(&proxy).await?;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["result"], "unchanged");
    assert_eq!(r.json["serial"], serial);
    Ok(())
}

/// Invalid twice over: an unknown key, and YAML 1.1's `NO` (Norway read as `false`).
fn invalid(serial: u64) -> String {
    format!(
        "{}    surprise: true\n",
        PolicyFile::new(serial)
            .order(pirate_order().countries(&["DE"], "block"))
            .render()
    )
    .replace("[\"DE\"]", "[NO]")
}

#[tokio::test]
async fn an_invalid_file_changes_nothing_and_says_why() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = no_hash_check(&origin, &suspended(1))
        .policy_symlink()
        .start()
        .await?;
    let files = proxy.policy_files();
    let good = std::fs::read_to_string(files.last_good())?;
    files.write_through_symlink(&invalid(2))?;
    let r = post_reload(&proxy).await?;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.json);
    assert_eq!(r.json["result"], "invalid");
    assert_eq!(r.json["serial"], 1, "the running serial");
    let error = r.json["error"].as_str().expect("error");
    assert!(error.contains("policy.yaml"), "names the file: {error}");
    assert!(error.contains("surprise"), "names the key: {error}");
    assert!(
        error.contains("countries"),
        "names the country list: {error}"
    );
    assert!(error.contains("PIRATE-451"), "names the order: {error}");

    assert_eq!(pirate_status(proxy.addr()).await?, 451, "still enforced");
    let d = policy::describe(proxy.admin()).await?;
    assert_eq!(d["serial"], 1);
    assert!(
        d["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("surprise")),
        "{}",
        d["last_error"]
    );
    // (The hash check's first tick may have counted the same file before the POST did.)
    let scrape = Scrape::fetch(proxy.admin()).await?;
    let invalid_so_far = reloads(&scrape, "invalid")?;
    assert!((1.0..=2.0).contains(&invalid_so_far), "{invalid_so_far}");
    assert_eq!(
        scrape.get("portcullis_policy_last_reload_success", &[])?,
        0.0
    );
    assert_eq!(scrape.get("portcullis_policy_serial", &[])?, 1.0);
    assert_eq!(std::fs::read_to_string(files.last_good())?, good);

    // The same through the watch: a broken file renamed into place.
    files.replace("serial: 3\nblocked_by: [unclosed\n")?;
    eventually("the watch reports the broken file", || async {
        let n = reloads(&Scrape::fetch(proxy.admin()).await?, "invalid")?;
        anyhow::ensure!(n == invalid_so_far + 1.0, "invalid reloads = {n}");
        Ok(())
    })
    .await?;
    assert_eq!(pirate_status(proxy.addr()).await?, 451, "still enforced");
    // A valid file afterwards is applied and clears the error.
    files.replace(&lifted(3).render())?;
    becomes(proxy.addr(), 200).await?;
    let d = policy::describe(proxy.admin()).await?;
    assert_eq!(d["last_error"], serde_json::Value::Null);
    let scrape = Scrape::fetch(proxy.admin()).await?;
    assert_eq!(
        scrape.get("portcullis_policy_last_reload_success", &[])?,
        1.0
    );
    Ok(())
}

#[tokio::test]
async fn a_lower_or_unchanged_serial_is_refused() -> anyhow::Result<()> {
    let origin = Origin::echo().start().await?;
    let proxy = no_hash_check(&origin, &suspended(5))
        .policy_symlink()
        .start()
        .await?;
    let files = proxy.policy_files();
    // An old file replayed to lift the block.
    files.write_through_symlink(&lifted(4).render())?;
    let r = post_reload(&proxy).await?;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json);
    assert_eq!(r.json["result"], "refused");
    assert_eq!(r.json["serial"], 5);
    assert_eq!(pirate_status(proxy.addr()).await?, 451);
    // A changed file under the running serial.
    files.write_through_symlink(&lifted(5).render())?;
    let r = post_reload(&proxy).await?;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json);
    assert_eq!(pirate_status(proxy.addr()).await?, 451);
    // (The hash check's first tick may have refused the first file before the POST did.)
    let scrape = Scrape::fetch(proxy.admin()).await?;
    let refused_so_far = reloads(&scrape, "refused")?;
    assert!((2.0..=3.0).contains(&refused_so_far), "{refused_so_far}");
    assert_eq!(scrape.get("portcullis_policy_serial", &[])?, 5.0);
    // Through the watch too.
    files.replace(&lifted(3).render())?;
    eventually("the watch refuses the rollback", || async {
        let n = reloads(&Scrape::fetch(proxy.admin()).await?, "refused")?;
        anyhow::ensure!(n == refused_so_far + 1.0, "refused reloads = {n}");
        Ok(())
    })
    .await?;
    assert_eq!(pirate_status(proxy.addr()).await?, 451);
    let d = policy::describe(proxy.admin()).await?;
    assert_eq!(d["serial"], 5);
    assert!(d["last_error"].is_string(), "{}", d["last_error"]);
    Ok(())
}

#[tokio::test]
async fn a_deleted_policy_file_keeps_the_running_table() -> anyhow::Result<()> {
    // A node cut off from its policy source keeps enforcing the last good table.
    let origin = Origin::echo().start().await?;
    let proxy = proxy_with(&origin, &suspended(1))
        .policy_key("check_interval", "200ms")
        .start()
        .await?;
    let files = proxy.policy_files();
    std::fs::remove_file(files.path())?;
    eventually("the missing file is reported", || async {
        let d = policy::describe(proxy.admin()).await?;
        anyhow::ensure!(
            d["last_error"].is_string(),
            "last_error {}",
            d["last_error"]
        );
        Ok(())
    })
    .await?;
    assert_eq!(pirate_status(proxy.addr()).await?, 451, "still enforced");
    let scrape = Scrape::fetch(proxy.admin()).await?;
    assert!(reloads(&scrape, "error")? >= 1.0);
    assert_eq!(scrape.get("portcullis_policy_serial", &[])?, 1.0);
    assert_eq!(
        std::fs::read_to_string(files.last_good())?,
        suspended(1).render(),
        "the last good copy survives"
    );
    // The file coming back with a newer serial is applied.
    files.replace(&lifted(2).render())?;
    becomes(proxy.addr(), 200).await?;
    Ok(())
}
