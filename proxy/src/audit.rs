//! Placeholder until the hash-chained audit log lands (branch `audit`).

use std::io::Write as _;
use std::path::Path;

#[derive(Debug)]
pub struct AuditLog {
    file: std::fs::File,
}

#[derive(Debug, thiserror::Error)]
#[error("audit log: {0}")]
pub struct AuditError(#[from] std::io::Error);

impl AuditLog {
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(AuditLog { file })
    }

    pub fn append(&mut self, event: &str, fields: serde_json::Value) -> Result<(), AuditError> {
        let line = serde_json::json!({ "event": event, "fields": fields });
        writeln!(self.file, "{line}")?;
        Ok(())
    }
}
