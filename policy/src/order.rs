//! Validation of one order: its record fields, authority, times and action (its scope is in
//! `scope.rs`), with the cross-field rules (`effective_from < expires_at`, `refuse_tls` without
//! paths, no sealed redirect).

use crate::error::PolicyErrorKind as K;
use crate::model::{
    Action, Authority, AuthorityType, BlockStatus, Country, Disclosure, Mode, Order,
};
use crate::parse::{Node, Value};
use crate::validate::{ACTION_KEYS, AUTHORITY_KEYS, Checker, ORDER_KEYS, fmt_time, valid_id};

impl Checker<'_> {
    pub(crate) fn order(&mut self, index: usize, node: &Node) -> Option<Order> {
        // Name the order in every message, even those about its keys, as soon as it has an id.
        let early_id = match &node.value {
            Value::Map(entries) => entries
                .iter()
                .find_map(|(k, v)| match (&k.value, &v.value) {
                    (Value::Str(k), Value::Str(id)) if k == "id" && valid_id(id) => {
                        Some(id.to_string())
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
                    value: code.to_string(),
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
