//! Reads the located YAML tree into a [`Policy`], checking every rule of the spec and collecting
//! every error (file, line, order, key path) instead of stopping at the first.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{PolicyError, PolicyErrorKind as K};
use crate::model::{
    Action, Authority, AuthorityType, BlockStatus, Country, Disclosure, Mode, Order, Policy,
};
use crate::parse::{Node, Value};

pub(crate) struct Checker<'f> {
    file: &'f str,
    /// The order being read, for messages.
    order: Option<(usize, Option<String>)>,
    pub(crate) errors: Vec<PolicyError>,
}

/// A mapping's keys (first occurrence of each), after unknown and duplicate keys were reported.
pub(crate) struct Fields<'n> {
    pub(crate) line: u32,
    entries: Vec<(&'n str, &'n Node)>,
}

impl<'n> Fields<'n> {
    pub(crate) fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }
}

pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

const TOP_KEYS: &[&str] = &["serial", "blocked_by", "orders"];
const ORDER_KEYS: &[&str] = &[
    "id",
    "authority",
    "legal_basis",
    "reference",
    "issued_at",
    "effective_from",
    "expires_at",
    "lifted_at",
    "notice_url",
    "disclosure",
    "mode",
    "scope",
    "action",
];
const AUTHORITY_KEYS: &[&str] = &["name", "type", "jurisdiction"];
const ACTION_KEYS: &[&str] = &["type", "code"];

impl<'f> Checker<'f> {
    pub(crate) fn new(file: &'f str) -> Self {
        Checker {
            file,
            order: None,
            errors: Vec::new(),
        }
    }

    pub(crate) fn err(&mut self, line: u32, key: &str, kind: K) {
        self.errors.push(PolicyError {
            file: self.file.to_owned(),
            line: Some(line),
            order: self.order.clone(),
            key: key.to_owned(),
            kind,
        });
    }

    fn wrong(&mut self, node: &Node, key: &str, expected: &'static str) {
        let found = node.value.kind();
        self.err(node.line, key, K::WrongType { expected, found });
    }

    /// A mapping with only `allowed` keys, each at most once.
    pub(crate) fn map<'n>(
        &mut self,
        node: &'n Node,
        key: &str,
        allowed: &'static [&'static str],
    ) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.wrong(node, key, "a mapping");
            return None;
        };
        let mut fields = Fields {
            line: node.line,
            entries: Vec::with_capacity(entries.len()),
        };
        for (k, v) in entries {
            let Value::Str(name) = &k.value else {
                self.err(k.line, key, K::NonStringKey);
                continue;
            };
            let path = join(key, name);
            if !allowed.contains(&name.as_str()) {
                let expected = expected_list(allowed);
                self.err(
                    k.line,
                    &path,
                    K::UnknownKey {
                        key: name.clone(),
                        expected,
                    },
                );
            } else if let Some(first) = entries.iter().find(|(f, _)| f.value == k.value) {
                if !std::ptr::eq(&first.0, k) {
                    let kind = K::DuplicateKey {
                        key: name.clone(),
                        first_line: first.0.line,
                    };
                    self.err(k.line, &path, kind);
                    continue;
                }
                fields.entries.push((name, v));
            }
        }
        Some(fields)
    }

    pub(crate) fn req<'n>(&mut self, f: &Fields<'n>, parent: &str, key: &str) -> Option<&'n Node> {
        let node = f.get(key);
        if node.is_none() {
            self.err(f.line, &join(parent, key), K::Missing);
        }
        node
    }

    pub(crate) fn string<'n>(&mut self, node: &'n Node, key: &str) -> Option<&'n str> {
        match &node.value {
            Value::Str(s) if s.trim().is_empty() => {
                self.err(node.line, key, K::Empty);
                None
            }
            Value::Str(s) => Some(s),
            _ => {
                self.wrong(node, key, "a string");
                None
            }
        }
    }

    pub(crate) fn boolean(&mut self, node: &Node, key: &str) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.wrong(node, key, "true or false");
                None
            }
        }
    }

    pub(crate) fn list<'n>(&mut self, node: &'n Node, key: &str, hint: &'static str) -> &'n [Node] {
        match &node.value {
            Value::Seq(items) if items.is_empty() => {
                self.err(node.line, key, K::EmptyList { hint });
                &[]
            }
            Value::Seq(items) => items,
            _ => {
                self.wrong(node, key, "a list");
                &[]
            }
        }
    }

    pub(crate) fn one_of<T: Copy>(
        &mut self,
        node: &Node,
        key: &str,
        choices: &[(&str, T)],
        expected: &'static str,
    ) -> Option<T> {
        let value = self.string(node, key)?;
        let found = choices.iter().find(|(name, _)| *name == value);
        if found.is_none() {
            let kind = K::NotOneOf {
                value: value.to_owned(),
                expected,
            };
            self.err(node.line, key, kind);
        }
        found.map(|(_, t)| *t)
    }

    fn time(&mut self, node: &Node, key: &str) -> Option<OffsetDateTime> {
        let value = self.string(node, key)?;
        match OffsetDateTime::parse(value, &Rfc3339) {
            Ok(t) => Some(t),
            Err(source) => {
                let kind = K::BadTime {
                    value: value.to_owned(),
                    source,
                };
                self.err(node.line, key, kind);
                None
            }
        }
    }

    fn url(&mut self, node: &Node, key: &str) -> Option<String> {
        let value = self.string(node, key)?;
        match check_https_url(value) {
            Ok(()) => Some(value.to_owned()),
            Err(kind) => {
                self.err(node.line, key, kind);
                None
            }
        }
    }

    /// The whole file. `None` when anything was wrong (the errors say what).
    pub(crate) fn policy(&mut self, root: &Node) -> Option<Policy> {
        let top = self.map(root, "", TOP_KEYS)?;
        let serial = self.req(&top, "", "serial").and_then(|n| match n.value {
            Value::Int(i) if i > 0 && i <= i128::from(u64::MAX) => u64::try_from(i).ok(),
            _ => {
                self.err(n.line, "serial", K::BadSerial);
                None
            }
        });
        let blocked_by = self
            .req(&top, "", "blocked_by")
            .and_then(|n| self.url(n, "blocked_by"));
        let mut orders = Vec::new();
        if let Some(list) = self.req(&top, "", "orders") {
            match &list.value {
                Value::Seq(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(order) = self.order(i, item) {
                            orders.push((i, order));
                        }
                    }
                }
                _ => self.wrong(list, "orders", "a list"),
            }
        }
        self.order = None;
        for (n, (i, order)) in orders.iter().enumerate() {
            if let Some((first, _)) = orders[..n].iter().find(|(_, o)| o.id == order.id) {
                self.order = Some((*i, Some(order.id.clone())));
                let kind = K::DuplicateId {
                    id: order.id.clone(),
                    first: *first,
                };
                self.err(order.line, "id", kind);
            }
        }
        self.order = None;
        if !self.errors.is_empty() {
            return None;
        }
        Some(Policy {
            serial: serial?,
            blocked_by: blocked_by?,
            orders: orders.into_iter().map(|(_, o)| o).collect(),
        })
    }

    fn order(&mut self, index: usize, node: &Node) -> Option<Order> {
        // Name the order in every message, even those about its keys, as soon as it has an id.
        let early_id = match &node.value {
            Value::Map(entries) => entries
                .iter()
                .find_map(|(k, v)| match (&k.value, &v.value) {
                    (Value::Str(k), Value::Str(id)) if k == "id" && valid_id(id) => {
                        Some(id.clone())
                    }
                    _ => None,
                }),
            _ => None,
        };
        self.order = Some((index, early_id));
        let f = self.map(node, "", ORDER_KEYS)?;
        let id = self.req(&f, "", "id").and_then(|n| {
            let id = self.string(n, "id")?;
            if valid_id(id) {
                Some(id.to_owned())
            } else {
                self.err(
                    n.line,
                    "id",
                    K::BadId {
                        value: id.to_owned(),
                    },
                );
                None
            }
        });
        self.order = Some((index, id.clone()));
        let errors_before = self.errors.len();
        let authority = self
            .req(&f, "", "authority")
            .and_then(|n| self.authority(n));
        let text = |c: &mut Self, key: &str| {
            c.req(&f, "", key)
                .and_then(|n| c.string(n, key))
                .map(str::to_owned)
        };
        let legal_basis = text(self, "legal_basis");
        let reference = text(self, "reference");
        let issued_at = self
            .req(&f, "", "issued_at")
            .and_then(|n| self.time(n, "issued_at"));
        let effective_from = self
            .req(&f, "", "effective_from")
            .and_then(|n| self.time(n, "effective_from"));
        // `expires_at` must be written, as a time or as an explicit `null`: forgetting it must
        // not silently make an order permanent.
        let expires_at = self.req(&f, "", "expires_at").and_then(|n| match n.value {
            Value::Null => Some(None),
            _ => self.time(n, "expires_at").map(Some),
        });
        let lifted_at = match f.get("lifted_at") {
            Some(n) => self.time(n, "lifted_at").map(Some),
            None => Some(None),
        };
        let notice_url = self
            .req(&f, "", "notice_url")
            .and_then(|n| self.url(n, "notice_url"));
        let disclosure = self.req(&f, "", "disclosure").and_then(|n| {
            let choices = [
                ("public", Disclosure::Public),
                ("sealed", Disclosure::Sealed),
            ];
            self.one_of(n, "disclosure", &choices, "public, sealed")
        });
        let mode = self.req(&f, "", "mode").and_then(|n| {
            let choices = [("enforce", Mode::Enforce), ("dry_run", Mode::DryRun)];
            self.one_of(n, "mode", &choices, "enforce, dry_run")
        });
        let scope = self.req(&f, "", "scope").and_then(|n| self.scope(n));
        let action = match f.get("action") {
            Some(n) => self.action(n),
            None => Some(Action::Unavailable451),
        };
        if let (Some(from), Some(Some(until))) = (effective_from, expires_at) {
            if from >= until {
                let kind = K::NotBeforeExpiry {
                    from: fmt_time(from),
                    until: fmt_time(until),
                };
                let line = f.get("expires_at").map_or(f.line, |n| n.line);
                self.err(line, "effective_from", kind);
            }
        }
        if let (Some(scope), Some(Action::RefuseTls)) = (&scope, action) {
            if !scope.paths.is_empty() {
                let line = f.get("action").map_or(f.line, |n| n.line);
                self.err(line, "action.type", K::RefuseTlsWithPaths);
            }
        }
        if let (Some(Disclosure::Sealed), Some(Action::Redirect)) = (disclosure, action) {
            let line = f.get("action").map_or(f.line, |n| n.line);
            self.err(line, "action.type", K::SealedRedirect);
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Order {
            id: id?,
            authority: authority?,
            legal_basis: legal_basis?,
            reference: reference?,
            issued_at: issued_at?,
            effective_from: effective_from?,
            expires_at: expires_at?,
            lifted_at: lifted_at?,
            notice_url: notice_url?,
            disclosure: disclosure?,
            mode: mode?,
            scope: scope?,
            action: action?,
            line: node.line,
        })
    }

    fn authority(&mut self, node: &Node) -> Option<Authority> {
        let f = self.map(node, "authority", AUTHORITY_KEYS)?;
        let name = self
            .req(&f, "authority", "name")
            .and_then(|n| self.string(n, "authority.name"))
            .map(str::to_owned);
        let kind = self.req(&f, "authority", "type").and_then(|n| {
            let choices = [
                ("court", AuthorityType::Court),
                ("regulator", AuthorityType::Regulator),
                ("government", AuthorityType::Government),
                ("law_enforcement", AuthorityType::LawEnforcement),
            ];
            let expected = "court, regulator, government, law_enforcement";
            self.one_of(n, "authority.type", &choices, expected)
        });
        let jurisdiction = self
            .req(&f, "authority", "jurisdiction")
            .and_then(|n| self.country(n, "authority.jurisdiction"));
        Some(Authority {
            name: name?,
            kind: kind?,
            jurisdiction: jurisdiction?,
        })
    }

    /// An ISO 3166-1 alpha-2 code. A boolean here is YAML 1.1 reading `NO` (Norway) as `false`:
    /// refused loudly, never dropped, so a geo order can never silently become global.
    pub(crate) fn country(&mut self, node: &Node, key: &str) -> Option<Country> {
        let code = match &node.value {
            Value::Str(s) => s,
            Value::Bool(b) => {
                self.err(
                    node.line,
                    key,
                    K::CountryNotString {
                        found: b.to_string(),
                    },
                );
                return None;
            }
            Value::Null => {
                self.err(
                    node.line,
                    key,
                    K::CountryNotString {
                        found: "null".into(),
                    },
                );
                return None;
            }
            _ => {
                self.wrong(node, key, "a quoted ISO 3166-1 alpha-2 code");
                return None;
            }
        };
        let country = <[u8; 2]>::try_from(code.as_bytes())
            .ok()
            .and_then(Country::new);
        if country.is_none() {
            self.err(
                node.line,
                key,
                K::BadCountry {
                    value: code.clone(),
                },
            );
        }
        country
    }

    fn action(&mut self, node: &Node) -> Option<Action> {
        let f = self.map(node, "action", ACTION_KEYS)?;
        let kind = self.req(&f, "action", "type").and_then(|n| {
            let choices = [
                ("unavailable_451", 0),
                ("status", 1),
                ("redirect", 2),
                ("close", 3),
                ("refuse_tls", 4),
            ];
            let expected = "unavailable_451, status, redirect, close, refuse_tls";
            self.one_of(n, "action.type", &choices, expected)
        })?;
        let code = f.get("code");
        match (kind, code) {
            (1, Some(n)) => match n.value {
                Value::Int(403) => Some(Action::Status(BlockStatus::Forbidden403)),
                Value::Int(404) => Some(Action::Status(BlockStatus::NotFound404)),
                _ => {
                    self.err(n.line, "action.code", K::BadStatus);
                    None
                }
            },
            (1, None) => {
                self.err(f.line, "action.code", K::Missing);
                None
            }
            (_, Some(n)) => {
                self.err(n.line, "action.code", K::CodeUnused);
                None
            }
            (0, None) => Some(Action::Unavailable451),
            (2, None) => Some(Action::Redirect),
            (3, None) => Some(Action::Close),
            (_, None) => Some(Action::RefuseTls),
        }
    }
}

fn expected_list(allowed: &'static [&'static str]) -> &'static str {
    match allowed {
        TOP_KEYS => "serial, blocked_by, orders",
        ORDER_KEYS => {
            "id, authority, legal_basis, reference, issued_at, effective_from, expires_at, \
             lifted_at, notice_url, disclosure, mode, scope, action"
        }
        AUTHORITY_KEYS => "name, type, jurisdiction",
        ACTION_KEYS => "type, code",
        crate::scope::SCOPE_KEYS => "hosts, paths, countries, on_unknown_country",
        crate::scope::HOST_KEYS => "name, include_subdomains",
        crate::scope::PATH_KEYS => "prefix",
        _ => "see the policy reference",
    }
}

pub(crate) fn fmt_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

fn valid_id(id: &str) -> bool {
    id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:/".contains(&b))
}

/// `https://` followed by a non-empty authority, and nothing that would need escaping in a
/// header or an HTML attribute (the page escapes anyway; this keeps the Link header valid).
pub(crate) fn check_https_url(value: &str) -> Result<(), K> {
    let Some(rest) = value.strip_prefix("https://") else {
        return Err(K::NotHttps {
            value: value.to_owned(),
        });
    };
    let bad = |reason| {
        Err(K::BadUrl {
            value: value.to_owned(),
            reason,
        })
    };
    if value
        .bytes()
        .any(|b| !(0x21..0x7f).contains(&b) || b"<>\"\\^`{|}".contains(&b))
    {
        return bad("spaces, control bytes, non-ASCII and <>\"\\^`{|} must be percent-encoded");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return bad("it needs a host and no userinfo");
    }
    Ok(())
}
