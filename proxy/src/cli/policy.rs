//! `portcullis policy check | explain | report` and `portcullis audit verify`: the policy file
//! read with the same parser the running proxy uses, and the audit chain checked.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use portcullis_policy::report::{self, OrderSummary};
use portcullis_policy::{
    CompiledPolicy, Mode, OrderState, Outcome, Policy, PolicyErrors, RequestFacts, Verdict,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::audit::{self, VerifyError};

/// Why a policy command could not answer.
#[derive(Debug, thiserror::Error)]
pub enum PolicyCommandError {
    /// The file is missing or unreadable.
    #[error("{}: cannot read the policy file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every error in the file, one per line, each naming file, line, order id and key.
    #[error(transparent)]
    Invalid(#[from] PolicyErrors),
    /// `policy.trusted_keys` is set and the file is not a bundle one of them signed.
    #[error("{}", refusal)]
    Bundle { refusal: String },
    /// `--country` is not two letters.
    #[error("{0:?} is not a country code (two letters, e.g. DE)")]
    BadCountry(String),
    /// `--until` is not after `--since`.
    #[error("the period is empty: --until ({until}) must be after --since ({since})")]
    EmptyPeriod { since: String, until: String },
}

/// The format of `portcullis policy report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// `jurisdiction,authority_type,action,received,in_effect` with a header line.
    Csv,
    /// A heading naming the period and serial, then a table.
    Markdown,
}

/// One request for `portcullis policy explain`.
#[derive(Debug, Clone)]
pub struct ExplainRequest {
    /// The authority as a client would send it (`Host`).
    pub host: String,
    /// The request target (default `/`).
    pub path: String,
    /// The client's country (ISO 3166-1 alpha-2), `None` for unknown.
    pub country: Option<String>,
    /// The connection's TLS SNI, `None` for plain HTTP.
    pub sni: Option<String>,
    /// When the request happens.
    pub at: OffsetDateTime,
}

/// Reads and validates a policy file; errors are labelled with `path` as given.
pub fn load_policy(path: &Path) -> Result<Policy, PolicyCommandError> {
    let text = std::fs::read_to_string(path).map_err(|source| PolicyCommandError::Read {
        path: path.to_owned(),
        source,
    })?;
    // A signed bundle is not a policy file: say so rather than list its JSON keys as errors.
    if let Err(crate::bundle::BundleError::UntrustedKey { key_id }) =
        crate::bundle::open(text.as_bytes(), &[])
    {
        return Err(PolicyCommandError::Bundle {
            refusal: format!(
                "{}: a signed bundle (key {key_id}), not a policy file: check the policy file it was signed from, or the bundle with `portcullis check --config` and its trusted_keys\n",
                path.display()
            ),
        });
    }
    Ok(Policy::parse(&text, &path.display().to_string())?)
}

/// Verifies a bundle against `trusted` (as a node with `policy.trusted_keys` does), then
/// validates the policy inside it.
pub fn load_bundle(
    path: &Path,
    trusted: &[crate::bundle::TrustedKey],
) -> Result<Policy, PolicyCommandError> {
    let bytes = std::fs::read(path).map_err(|source| PolicyCommandError::Read {
        path: path.to_owned(),
        source,
    })?;
    let verified =
        crate::bundle::open(&bytes, trusted).map_err(|e| PolicyCommandError::Bundle {
            refusal: format!("{}: {e} [{}]\n", path.display(), e.reason()),
        })?;
    let text = std::str::from_utf8(&verified.policy).map_err(|_| PolicyCommandError::Bundle {
        refusal: format!("{}: the signed policy is not UTF-8 text\n", path.display()),
    })?;
    Ok(Policy::parse(text, &path.display().to_string())?)
}

/// A time argument: RFC 3339 (`2026-11-21T00:00:00Z`) or a date (`2026-11-21`, midnight UTC).
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t);
    }
    let mut parts = s.splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
    let date = time::Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()?;
    Some(date.midnight().assume_utc())
}

/// RFC 3339 for output (falls back to the debug form, which cannot happen for valid times).
fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| format!("{t:?}"))
}

fn mode_str(mode: Mode) -> &'static str {
    match mode {
        Mode::Enforce => "enforce",
        Mode::DryRun => "dry_run",
    }
}

fn hosts_str(order: &OrderSummary) -> String {
    let hosts: Vec<String> = order
        .hosts
        .iter()
        .map(|(a, u)| match u {
            Some(u) => format!("{a} [{u}]"),
            None => a.clone(),
        })
        .collect();
    hosts.join(", ")
}

/// `portcullis policy check FILE`: the summary of a valid file (serial, orders with their
/// state at `now`, action, mode and hosts), or every error.
pub fn policy_check(path: &Path, now: OffsetDateTime) -> Result<String, PolicyCommandError> {
    let policy = load_policy(path)?;
    let summary = report::summary(&policy, now);
    let count = |s| summary.states.get(&s).copied().unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(out, "{}: OK", path.display());
    let _ = writeln!(out, "  serial      {}", summary.serial);
    let _ = writeln!(out, "  blocked_by  {}", policy.blocked_by);
    let _ = writeln!(
        out,
        "  orders      {}: {} active, {} pending, {} expired, {} lifted (at {})",
        summary.orders.len(),
        count(OrderState::Active),
        count(OrderState::Pending),
        count(OrderState::Expired),
        count(OrderState::Lifted),
        rfc3339(now.replace_nanosecond(0).unwrap_or(now))
    );
    let _ = writeln!(out, "  hosts       {}", summary.hosts);
    let width = summary.orders.iter().map(|o| o.id.len()).max().unwrap_or(0);
    for o in &summary.orders {
        let _ = writeln!(
            out,
            "  order {:<width$}  {:<7}  {:<15}  {:<7}  {}",
            o.id,
            o.state.as_str(),
            o.action,
            mode_str(o.mode),
            hosts_str(o)
        );
    }
    Ok(out)
}

/// `portcullis policy explain FILE --host …`: the decision for one request, the winning order
/// and every order the lookup considered, with why it matched or not.
pub fn policy_explain(path: &Path, req: &ExplainRequest) -> Result<String, PolicyCommandError> {
    let country = match req.country.as_deref() {
        None => None,
        Some(c) => match <[u8; 2]>::try_from(c.as_bytes()) {
            Ok(code) if code.iter().all(u8::is_ascii_alphabetic) => {
                Some(code.map(|b| b.to_ascii_uppercase()))
            }
            _ => return Err(PolicyCommandError::BadCountry(c.to_owned())),
        },
    };
    let policy = CompiledPolicy::compile(load_policy(path)?);
    let facts = RequestFacts {
        host: &req.host,
        path: &req.path,
        country,
        sni: req.sni.as_deref(),
        now: SystemTime::from(req.at),
    };
    let explanation = policy.explain(&facts);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "request   host {}, path {}, country {}, sni {}, at {}",
        req.host,
        req.path,
        country.map_or("unknown".into(), |c| String::from_utf8_lossy(&c)
            .into_owned()),
        req.sni.as_deref().unwrap_or("none"),
        rfc3339(req.at)
    );
    match &explanation.host {
        Ok(h) => {
            let _ = writeln!(
                out,
                "canonical {h}{}",
                explanation
                    .path
                    .as_deref()
                    .map(|p| format!(" {p}"))
                    .unwrap_or_default()
            );
        }
        Err(e) => {
            let _ = writeln!(out, "canonical none: {e}");
        }
    }
    let verdict = match explanation.decision.verdict {
        Verdict::Allow => "allow: served normally".to_owned(),
        Verdict::BadHost(e) => format!("bad host: 400 ({e})"),
        Verdict::Misdirected => {
            "misdirected: 421 (the host is allowed but the SNI names a suspended host)".to_owned()
        }
        Verdict::Block { order, action } => {
            format!("block: {} by order {}", action.as_str(), order.id)
        }
    };
    let _ = writeln!(out, "verdict   {verdict}");
    let matched: Vec<String> = explanation
        .decision
        .matched()
        .map(|o| match o.mode {
            Mode::Enforce => o.id.clone(),
            Mode::DryRun => format!("{} (dry run)", o.id),
        })
        .collect();
    let _ = writeln!(
        out,
        "matched   {}",
        if matched.is_empty() {
            "none".to_owned()
        } else {
            matched.join(", ")
        }
    );
    if explanation.considered.is_empty() {
        let _ = writeln!(out, "considered: no order names this host or SNI");
    } else {
        let _ = writeln!(out, "considered:");
    }
    let at = req.at;
    for c in &explanation.considered {
        let why = match c.outcome {
            Outcome::Matched => "matched".to_owned(),
            Outcome::NotActive => format!("not active ({})", c.order.state(at).as_str()),
            Outcome::CountryNotInScope => "country not in scope".to_owned(),
            Outcome::UnknownCountryAllowed => {
                "country unknown, and the order allows unknown countries".to_owned()
            }
            Outcome::PathNotInScope => "path not in scope".to_owned(),
        };
        let _ = writeln!(
            out,
            "  {} via {}{}: {why} ({}, {})",
            c.order.id,
            c.via,
            if c.by_sni { " (by SNI)" } else { "" },
            c.order.action.as_str(),
            mode_str(c.order.mode)
        );
    }
    Ok(out)
}

/// `portcullis policy report FILE --since --until`: transparency counts over `[since, until)`
/// per jurisdiction, authority type and action.
pub fn policy_report(
    path: &Path,
    since: OffsetDateTime,
    until: OffsetDateTime,
    format: ReportFormat,
) -> Result<String, PolicyCommandError> {
    if until <= since {
        return Err(PolicyCommandError::EmptyPeriod {
            since: rfc3339(since),
            until: rfc3339(until),
        });
    }
    let policy = load_policy(path)?;
    let counts = report::transparency(&policy, since, until);
    Ok(match format {
        ReportFormat::Csv => report::report_csv(&counts),
        ReportFormat::Markdown => format!(
            "Legal orders from {} until {} (policy serial {})\n\n{}",
            rfc3339(since),
            rfc3339(until),
            policy.serial,
            report::report_markdown(&counts)
        ),
    })
}

/// `portcullis audit verify FILE_OR_STATE_DIR`: checks the chain of an audit log (a folder
/// means its `audit.jsonl`).
pub fn audit_verify(path: &Path) -> Result<String, VerifyError> {
    let file = if path.is_dir() {
        path.join(audit::FILE_NAME)
    } else {
        path.to_owned()
    };
    let r = audit::verify(&file)?;
    let mut out = format!(
        "{}: {} record{}, chain intact, last hash {}\n",
        file.display(),
        r.records,
        if r.records == 1 { "" } else { "s" },
        r.last_hash
    );
    if let (Some(first), Some(last)) = (r.first_ts, r.last_ts) {
        let _ = writeln!(out, "  from {first} to {last}");
    }
    Ok(out)
}
