//! What changed between two policies (for the audit log), and the serial rule that stops an old
//! file from being replayed to lift a block.

use crate::compile::CompiledPolicy;
use crate::model::{Order, Policy};

/// Orders added, removed and changed, by id, in the new (added, changed) or old (removed) file's
/// order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl PolicyDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Why a new policy may not replace the running one. The running table stays.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SerialError {
    #[error("serial {new} is lower than the running serial {running}: refusing to roll back")]
    Lower { running: u64, new: u64 },
    #[error("the policy changed but its serial {serial} did not: increase it on every change")]
    Unchanged { serial: u64 },
}

/// Compares two policies order by order (the `line` an order sits on is not a change).
pub fn diff(old: &Policy, new: &Policy) -> PolicyDiff {
    let find = |p: &Policy, id: &str| p.orders.iter().position(|o| o.id == id);
    let mut d = PolicyDiff::default();
    for o in &new.orders {
        match find(old, &o.id).and_then(|i| old.orders.get(i)) {
            None => d.added.push(o.id.clone()),
            Some(prev) if !same_content(prev, o) => d.changed.push(o.id.clone()),
            Some(_) => {}
        }
    }
    for o in &old.orders {
        if find(new, &o.id).is_none() {
            d.removed.push(o.id.clone());
        }
    }
    d
}

/// Field by field, destructured so a new field must be considered here.
fn same_content(a: &Order, b: &Order) -> bool {
    let Order {
        id,
        authority,
        legal_basis,
        reference,
        issued_at,
        effective_from,
        expires_at,
        lifted_at,
        notice_url,
        disclosure,
        mode,
        scope,
        action,
        line: _,
    } = a;
    *id == b.id
        && *authority == b.authority
        && *legal_basis == b.legal_basis
        && *reference == b.reference
        && *issued_at == b.issued_at
        && *effective_from == b.effective_from
        && *expires_at == b.expires_at
        && *lifted_at == b.lifted_at
        && *notice_url == b.notice_url
        && *disclosure == b.disclosure
        && *mode == b.mode
        && *scope == b.scope
        && *action == b.action
}

impl CompiledPolicy {
    /// May `new` replace `self` (the running table)? A lower serial is refused; an equal serial
    /// is accepted only when nothing changed (a re-read of the same file). Returns what changed,
    /// for the audit record.
    pub fn check_replacement(&self, new: &CompiledPolicy) -> Result<PolicyDiff, SerialError> {
        let (running, next) = (self.serial(), new.serial());
        let d = diff(self.policy(), new.policy());
        if next < running {
            return Err(SerialError::Lower { running, new: next });
        }
        if next == running && (!d.is_empty() || self.policy().blocked_by != new.policy().blocked_by)
        {
            return Err(SerialError::Unchanged { serial: running });
        }
        Ok(d)
    }
}
