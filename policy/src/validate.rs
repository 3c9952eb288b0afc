//! Reads the located YAML tree into a [`Policy`], checking every rule of the spec and collecting
//! every error (file, line, order, key path) instead of stopping at the first.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{PolicyError, PolicyErrorKind as K};
use crate::model::Policy;
use crate::parse::{Node, Value};

pub(crate) struct Checker<'f> {
    file: &'f str,
    /// The order being read, for messages.
    pub(crate) order: Option<(usize, Option<String>)>,
    pub(crate) errors: Vec<PolicyError>,
}

/// A mapping's keys (first occurrence of each), after unknown and duplicate keys were reported.
pub(crate) struct Fields<'n> {
    pub(crate) line: u32,
    entries: Vec<(&'n str, &'n Node<'n>)>,
}

impl<'n> Fields<'n> {
    pub(crate) fn get(&self, key: &str) -> Option<&'n Node<'n>> {
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
pub(crate) const ORDER_KEYS: &[&str] = &[
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
pub(crate) const AUTHORITY_KEYS: &[&str] = &["name", "type", "jurisdiction"];
pub(crate) const ACTION_KEYS: &[&str] = &["type", "code"];

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

    pub(crate) fn wrong(&mut self, node: &Node, key: &str, expected: &'static str) {
        let found = node.value.kind();
        self.err(node.line, key, K::WrongType { expected, found });
    }

    /// A mapping with only `allowed` keys, each at most once.
    pub(crate) fn map<'n>(
        &mut self,
        node: &'n Node<'n>,
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
            if !allowed.contains(&name.as_ref()) {
                let expected = expected_list(allowed);
                self.err(
                    k.line,
                    &path,
                    K::UnknownKey {
                        key: name.to_string(),
                        expected,
                    },
                );
            } else if let Some(first) = entries.iter().find(|(f, _)| f.value == k.value) {
                if !std::ptr::eq(&first.0, k) {
                    let kind = K::DuplicateKey {
                        key: name.to_string(),
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

    pub(crate) fn req<'n>(
        &mut self,
        f: &Fields<'n>,
        parent: &str,
        key: &str,
    ) -> Option<&'n Node<'n>> {
        let node = f.get(key);
        if node.is_none() {
            self.err(f.line, &join(parent, key), K::Missing);
        }
        node
    }

    pub(crate) fn string<'n>(&mut self, node: &'n Node<'n>, key: &str) -> Option<&'n str> {
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

    pub(crate) fn list<'n>(
        &mut self,
        node: &'n Node<'n>,
        key: &str,
        hint: &'static str,
    ) -> &'n [Node<'n>] {
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

    pub(crate) fn time(&mut self, node: &Node, key: &str) -> Option<OffsetDateTime> {
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

    pub(crate) fn url(&mut self, node: &Node, key: &str) -> Option<String> {
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

pub(crate) fn valid_id(id: &str) -> bool {
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
