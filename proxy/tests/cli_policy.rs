//! The policy and audit commands of the `portcullis` binary as an operator runs them:
//! `policy check | explain | report`, `audit verify`, and `check --config` with a `policy:`
//! section. The policy fixture is the issue's contract file, shared with the policy crate.

mod command;

use std::path::{Path, PathBuf};

use command::{contract, failure, run, success};

use portcullis::audit::{AuditLog, event};
use serde_json::json;

fn path_arg(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// The contract file with two mistakes: an http notice_url in the first order (line 11) and a
/// country name in the second (line 31).
fn broken_contract(dir: &Path) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(contract())?
        .replacen(
            "https://lumendatabase.org/notices/00000001",
            "http://lumendatabase.org/notices/00000001",
            1,
        )
        .replacen(r#"countries: ["DE"]"#, r#"countries: ["Germany"]"#, 1);
    let path = dir.join("policy.yaml");
    std::fs::write(&path, text)?;
    Ok(path)
}

#[test]
fn policy_check_summarises_the_contract_file() -> anyhow::Result<()> {
    let file = contract();
    let out = run(&["policy", "check", path_arg(&file), "--at", "2026-11-10"])?;
    let stdout = success(&out);
    for expected in [
        "OK",
        "serial      2026112601",
        "blocked_by  https://edge.example.net/legal",
        "orders      2: 1 active, 1 pending, 0 expired, 0 lifted (at 2026-11-10T00:00:00Z)",
        "hosts       2",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in:\n{stdout}");
    }
    let order = |id: &str| {
        stdout
            .lines()
            .find(|l| l.contains(id))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(
        order("US-SDNY-2026-CV-0142"),
        [
            "order",
            "US-SDNY-2026-CV-0142",
            "pending",
            "unavailable_451",
            "enforce",
            "pirate.example",
            "(+subdomains)"
        ]
    );
    assert_eq!(
        order("DE-LG-HH-2026-0099"),
        [
            "order",
            "DE-LG-HH-2026-0099",
            "active",
            "unavailable_451",
            "enforce",
            "files.example"
        ]
    );
    Ok(())
}

#[test]
fn policy_check_prints_every_error_with_line_order_and_key() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = broken_contract(dir.path())?;
    let stderr = failure(&run(&["policy", "check", path_arg(&file)])?);
    let f = file.display();
    for prefix in [
        format!("{f}:11: orders[0] (US-SDNY-2026-CV-0142): notice_url: "),
        format!("{f}:31: orders[1] (DE-LG-HH-2026-0099): scope.countries[0]: "),
    ] {
        assert!(
            stderr.lines().any(|l| l.trim_start().starts_with(&prefix)),
            "no line starting {prefix:?} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("2 errors"), "{stderr}");
    let missing = failure(&run(&["policy", "check", "/nonexistent/policy.yaml"])?);
    assert!(missing.contains("/nonexistent/policy.yaml"), "{missing}");
    Ok(())
}

#[test]
fn policy_explain_shows_a_blocked_request_and_why() -> anyhow::Result<()> {
    let file = contract();
    let args = [
        "policy",
        "explain",
        path_arg(&file),
        "--host",
        "WWW.Pirate.Example.:443",
        "--path",
        "/movies?x=1",
        "--at",
        "2026-12-01T00:00:00Z",
    ];
    let stdout = success(&run(&args)?);
    assert!(stdout.contains("canonical www.pirate.example"), "{stdout}");
    assert!(
        stdout.contains("verdict   block: unavailable_451 by order US-SDNY-2026-CV-0142"),
        "{stdout}"
    );
    assert!(
        stdout.contains("US-SDNY-2026-CV-0142 via pirate.example (+subdomains): matched"),
        "{stdout}"
    );
    // Before the order took effect the same request is allowed, and the reason given.
    let mut early = args;
    early[8] = "2026-11-20T23:59:59Z";
    let stdout = success(&run(&early)?);
    assert!(stdout.contains("verdict   allow"), "{stdout}");
    assert!(
        stdout.contains(
            "US-SDNY-2026-CV-0142 via pirate.example (+subdomains): not active (pending)"
        ),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn policy_explain_shows_an_allowed_request_and_why() -> anyhow::Result<()> {
    let file = contract();
    let explain = |country: &str| {
        run(&[
            "policy",
            "explain",
            path_arg(&file),
            "--host",
            "files.example",
            "--path",
            "/shared/abc123/file.zip",
            "--country",
            country,
            "--at",
            "2026-12-01",
        ])
    };
    let stdout = success(&explain("FR")?);
    assert!(stdout.contains("verdict   allow"), "{stdout}");
    assert!(stdout.contains("matched   none"), "{stdout}");
    assert!(
        stdout.contains("DE-LG-HH-2026-0099 via files.example: country not in scope"),
        "{stdout}"
    );
    let stdout = success(&explain("de")?);
    assert!(
        stdout.contains("verdict   block: unavailable_451 by order DE-LG-HH-2026-0099"),
        "{stdout}"
    );
    let stderr = failure(&explain("Germany")?);
    assert!(
        stderr.contains("\"Germany\" is not a country code"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn policy_report_counts_in_both_formats() -> anyhow::Result<()> {
    let file = contract();
    let report = |since: &str, until: &str, format: Option<&str>| {
        let mut args = vec![
            "policy",
            "report",
            path_arg(&file),
            "--since",
            since,
            "--until",
            until,
        ];
        args.extend(format.iter().flat_map(|f| ["--format", f]));
        run(&args)
    };
    // Both issued and in effect in November 2026 (markdown is the default).
    let md = success(&report("2026-11-01", "2026-12-01", None)?);
    assert!(md.contains("(policy serial 2026112601)"), "{md}");
    assert!(
        md.ends_with(
            "| Jurisdiction | Authority type | Action | Received | In effect |\n\
             |---|---|---|---:|---:|\n\
             | DE | court | unavailable_451 | 1 | 1 |\n\
             | US | court | unavailable_451 | 1 | 1 |\n"
        ),
        "{md}"
    );
    // 10–15 November: the German order is in effect (issued earlier), the US one not yet issued.
    let csv = success(&report("2026-11-10", "2026-11-15T00:00:00Z", Some("csv"))?);
    assert_eq!(
        csv,
        "jurisdiction,authority_type,action,received,in_effect\nDE,court,unavailable_451,0,1\n"
    );
    // December 2027: the German order has expired; the US one has no end.
    let csv = success(&report("2027-12-01", "2028-01-01", Some("csv"))?);
    assert_eq!(
        csv,
        "jurisdiction,authority_type,action,received,in_effect\nUS,court,unavailable_451,0,1\n"
    );
    let stderr = failure(&report("2026-12-01", "2026-11-01", Some("csv"))?);
    assert!(stderr.contains("the period is empty"), "{stderr}");
    let bad = run(&[
        "policy",
        "report",
        path_arg(&file),
        "--since",
        "1 Nov",
        "--until",
        "2026-12-01",
    ])?;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("\"1 Nov\" is not a date"));
    Ok(())
}

/// An audit log of three records written through the proxy's own [`AuditLog`].
fn audit_log(state_dir: &Path) -> anyhow::Result<(PathBuf, String)> {
    let path = state_dir.join("audit.jsonl");
    let mut log = AuditLog::open(&path)?;
    log.append(
        event::POLICY_LOADED,
        json!({"serial": 2026112601, "sha256": "ab", "source": "file", "orders": 2,
               "added": ["US-SDNY-2026-CV-0142", "DE-LG-HH-2026-0099"], "removed": [], "changed": []}),
    )?;
    log.append(
        event::ORDER_EFFECTIVE,
        json!({"order": "US-SDNY-2026-CV-0142", "at": "2026-11-21T00:00:00Z"}),
    )?;
    let last = log.append(
        event::CONNECTIONS_CUT,
        json!({"order": "US-SDNY-2026-CV-0142", "count": 3}),
    )?;
    Ok((path, last.hash))
}

#[test]
fn audit_verify_accepts_an_intact_log_by_file_or_state_dir() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let (path, last) = audit_log(&state)?;
    for arg in [&path, &state] {
        let stdout = success(&run(&["audit", "verify", path_arg(arg)])?);
        assert!(
            stdout.contains(&format!("3 records, chain intact, last hash {last}")),
            "{stdout}"
        );
    }
    Ok(())
}

#[test]
fn audit_verify_names_the_first_tampered_record() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (path, _) = audit_log(dir.path())?;
    let text = std::fs::read_to_string(&path)?;
    // Someone edits the date effect was given.
    std::fs::write(
        &path,
        text.replacen("2026-11-21T00:00:00Z", "2026-11-25T00:00:00Z", 1),
    )?;
    let stderr = failure(&run(&["audit", "verify", path_arg(dir.path())])?);
    assert!(
        stderr.contains("line 2 (seq 2): hash does not match its content"),
        "{stderr}"
    );
    // Someone removes that record instead.
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2]))?;
    let stderr = failure(&run(&["audit", "verify", path_arg(&path)])?);
    assert!(
        stderr.contains("line 2 (seq 3): seq 3 follows 1"),
        "{stderr}"
    );
    Ok(())
}

fn config_with_policy(dir: &Path) -> anyhow::Result<PathBuf> {
    let config = dir.join("edge.yaml");
    std::fs::write(
        &config,
        r#"listeners:
  - address: "127.0.0.1:0"
policy:
  file: "policy.yaml"
  state_dir: "state"
sites:
  - name: shop
    hosts: ["shop.example"]
    origins: ["http://127.0.0.1:9000"]
"#,
    )?;
    Ok(config)
}

#[test]
fn check_config_reads_the_policy_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = config_with_policy(dir.path())?;
    std::fs::copy(contract(), dir.path().join("policy.yaml"))?;
    let stdout = success(&run(&["check", "--config", path_arg(&config)])?);
    let policy = dir.path().join("policy.yaml");
    assert!(
        stdout.contains(&format!(
            "policy   {} serial 2026112601, 2 orders (",
            policy.display()
        )),
        "{stdout}"
    );
    Ok(())
}

#[test]
fn check_config_fails_on_a_broken_policy_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = config_with_policy(dir.path())?;
    let file = broken_contract(dir.path())?;
    let stderr = failure(&run(&["check", "--config", path_arg(&config)])?);
    assert!(
        stderr.contains(&format!(
            "{}:31: orders[1] (DE-LG-HH-2026-0099): scope.countries[0]: ",
            file.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("no last good copy"), "{stderr}");

    // A missing file is an error too; the message says what a running proxy would fall back to.
    std::fs::remove_file(&file)?;
    std::fs::create_dir_all(dir.path().join("state"))?;
    std::fs::copy(contract(), dir.path().join("state/policy.last-good.yaml"))?;
    let stderr = failure(&run(&["check", "--config", path_arg(&config)])?);
    assert!(stderr.contains("policy.yaml: cannot read"), "{stderr}");
    assert!(stderr.contains("last good copy"), "{stderr}");
    Ok(())
}
