//! The validated policy file: what [`Policy::parse`](crate::Policy::parse) returns. Every value
//! here has passed validation, so later stages never re-check it.

use std::fmt;

use time::OffsetDateTime;

/// A whole policy file.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Must increase on every change; a lower one is refused (see
    /// [`CompiledPolicy::check_replacement`](crate::CompiledPolicy::check_replacement)), so an
    /// old file cannot be replayed to lift a block.
    pub serial: u64,
    /// The operator's own URL for `Link: <blocked_by>; rel="blocked-by"` (RFC 7725) — never the
    /// court's. An `https://` URL without characters that would need escaping in a header.
    pub blocked_by: String,
    /// In file order; ids are unique.
    pub orders: Vec<Order>,
}

/// One legal order (EU DSA Art. 9 contents, Lumen's CourtOrder record).
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    /// Unique in the file; letters, digits and `.` `_` `-` `:` `/` only, at most 128 bytes, so it
    /// is safe as a metrics label and in a log line.
    pub id: String,
    pub authority: Authority,
    pub legal_basis: String,
    pub reference: String,
    pub issued_at: OffsetDateTime,
    /// The order is active from this instant (inclusive).
    pub effective_from: OffsetDateTime,
    /// Active until this instant (exclusive); `None` was written as an explicit `null`.
    pub expires_at: Option<OffsetDateTime>,
    /// Lifted from this instant on (an appeal won, the authority withdrew it).
    pub lifted_at: Option<OffsetDateTime>,
    /// Where the order is published (`https://` only).
    pub notice_url: String,
    pub disclosure: Disclosure,
    pub mode: Mode,
    pub scope: Scope,
    pub action: Action,
    /// Line of the order in its file (for messages; ignored by [`crate::diff()`]).
    pub line: u32,
}

/// Who demanded the block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    pub name: String,
    pub kind: AuthorityType,
    pub jurisdiction: Country,
}

/// `authority.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuthorityType {
    Court,
    Regulator,
    Government,
    LawEnforcement,
}

impl AuthorityType {
    /// The spelling used in the file, reports and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorityType::Court => "court",
            AuthorityType::Regulator => "regulator",
            AuthorityType::Government => "government",
            AuthorityType::LawEnforcement => "law_enforcement",
        }
    }
}

/// An ISO 3166-1 alpha-2 code, uppercase (validated against the assigned list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Country(pub(crate) [u8; 2]);

impl Country {
    /// The code if `code` is an assigned ISO 3166-1 alpha-2 code (uppercase ASCII).
    pub fn new(code: [u8; 2]) -> Option<Country> {
        crate::country::is_assigned(code).then_some(Country(code))
    }
    pub fn code(self) -> [u8; 2] {
        self.0
    }
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `disclosure`: whether the 451 page may say who demanded the block and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disclosure {
    Public,
    /// The page says only that access is blocked for legal reasons (or the configured 403/404).
    Sealed,
}

/// `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    /// Serve normally; log and count what would have been blocked.
    DryRun,
}

/// `scope`: which requests an order covers. All parts must match.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    /// Never empty.
    pub hosts: Vec<HostRule>,
    /// Empty: the whole host.
    pub paths: Vec<PathPrefix>,
    /// Empty: everywhere.
    pub countries: Vec<Country>,
    /// Set exactly when `countries` is not empty.
    pub on_unknown_country: Option<UnknownCountry>,
}

/// One `scope.hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRule {
    /// A-label form, lowercase, without `*.` and without a trailing dot.
    pub name: String,
    /// The U-label form when it differs (`bücher.example` for `xn--bcher-kva.example`), for
    /// `check` to show both.
    pub unicode: Option<String>,
    pub coverage: Coverage,
}

/// Which names a [`HostRule`] covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coverage {
    /// `name` only (`include_subdomains: false`, the default).
    Exact,
    /// `name` and every name below it, at any depth (`include_subdomains: true`).
    WithSubdomains,
    /// Every name below `name`, not `name` itself (written `*.name`).
    SubdomainsOnly,
}

impl Coverage {
    /// How summaries, explanations and the admin endpoint show a rule for `name`: `name`,
    /// `name (+subdomains)` or `*.name`.
    pub fn show(self, name: &str) -> String {
        match self {
            Coverage::Exact => name.to_owned(),
            Coverage::WithSubdomains => format!("{name} (+subdomains)"),
            Coverage::SubdomainsOnly => format!("*.{name}"),
        }
    }
}

/// One `scope.paths` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPrefix {
    /// As written.
    pub prefix: String,
    /// Normalised for matching (see [`crate::path`]).
    pub(crate) matched: Box<[u8]>,
}

impl PathPrefix {
    /// A prefix for a policy built in code; `None` unless it starts with `/` and can be read
    /// (the file parser gives the precise reason instead).
    pub fn new(prefix: &str) -> Option<PathPrefix> {
        if !prefix.starts_with('/') || prefix.contains(['?', '#']) {
            return None;
        }
        let matched = crate::path::prefix_match_form(prefix)?;
        Some(PathPrefix {
            prefix: prefix.to_owned(),
            matched,
        })
    }
}

/// `scope.on_unknown_country`: what happens when the client's country is not known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownCountry {
    Block,
    Allow,
}

/// `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// 451 with the RFC 7725 page (the default).
    Unavailable451,
    /// 403 or 404 with a generic body.
    Status(BlockStatus),
    /// 307 to the order's `notice_url`.
    Redirect,
    /// Drop the connection without a response.
    Close,
    /// Abort the TLS handshake for the name; in the request path, like [`Action::Close`].
    RefuseTls,
}

/// The codes `action: { type: status }` may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockStatus {
    Forbidden403,
    NotFound404,
}

impl BlockStatus {
    pub fn code(self) -> u16 {
        match self {
            BlockStatus::Forbidden403 => 403,
            BlockStatus::NotFound404 => 404,
        }
    }
}

impl Action {
    /// The spelling used in the file, reports and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Unavailable451 => "unavailable_451",
            Action::Status(BlockStatus::Forbidden403) => "status_403",
            Action::Status(BlockStatus::NotFound404) => "status_404",
            Action::Redirect => "redirect",
            Action::Close => "close",
            Action::RefuseTls => "refuse_tls",
        }
    }

    /// Precedence among several matching enforced orders, highest wins:
    /// refuse_tls > close > 451 > status > redirect (dry-run orders rank below all of them).
    pub fn rank(self) -> u8 {
        match self {
            Action::RefuseTls => 5,
            Action::Close => 4,
            Action::Unavailable451 => 3,
            Action::Status(_) => 2,
            Action::Redirect => 1,
        }
    }
}
