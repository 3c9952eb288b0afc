//! Legal-order policy for Portcullis.
//!
//! This crate is pure: it takes `&str`/bytes and returns decisions, with no async runtime, no
//! HTTP stack and no file I/O, so every rule in it can be tested exhaustively and property-tested
//! against a naive reference.
//!
//! Layout:
//! - [`authority`]: the one canonicalisation of a request's host, shared by routing, policy, the
//!   cache key and the access log.

pub mod authority;
mod compile;
mod country;
mod decide;
pub mod diff;
mod error;
mod explain;
mod model;
pub mod page;
mod parse;
pub mod path;
pub mod report;
mod scope;
mod validate;

pub use authority::{HostError, canonical_host};
pub use compile::CompiledPolicy;
pub use decide::{Decision, RequestFacts, STACK_PATH, Verdict};
pub use diff::{PolicyDiff, SerialError, diff};
pub use error::{PolicyError, PolicyErrorKind, PolicyErrors};
pub use explain::{Considered, Explanation, Outcome};
pub use model::{
    Action, Authority, AuthorityType, BlockStatus, Country, Coverage, Disclosure, HostRule, Mode,
    Order, PathPrefix, Policy, Scope, UnknownCountry,
};
pub use report::OrderState;

impl Policy {
    /// Parses and validates a policy file. `file_label` is how errors name the file
    /// (`policy.yaml:14: orders[1] (ID): scope.countries[0]: …`). Every error is reported, not
    /// just the first; with any error nothing is returned, so a bad reload changes nothing.
    pub fn parse(text: &str, file_label: &str) -> Result<Policy, PolicyErrors> {
        let root = parse::parse_tree(text).map_err(|e| PolicyErrors {
            errors: vec![PolicyError {
                file: file_label.to_owned(),
                line: e.location().and_then(|l| u32::try_from(l.line()).ok()),
                order: None,
                key: String::new(),
                kind: PolicyErrorKind::Yaml(e),
            }],
        })?;
        let mut checker = validate::Checker::new(file_label);
        match checker.policy(&root) {
            Some(policy) if checker.errors.is_empty() => Ok(policy),
            _ => Err(PolicyErrors {
                errors: checker.errors,
            }),
        }
    }
}
