//! The audit trail: one JSON record per statement and connection event
//! ("who read or changed what, when, from where, how, with what outcome"),
//! written off the hot path by one writer task (docs/audit-records.md).
//!
//! A session builds [`StatementRecord`]s and [`ConnectionRecord`]s from an
//! [`Arc<SessionContext>`](SessionContext) and the analyser's `Arc<Analysis>`
//! and hands them to its [`AuditHandle`]; [`AuditLog::start`] opens the sink
//! and [`AuditTask::shutdown`] drains it.

mod json;
mod record;
mod sink;
mod writer;

#[cfg(test)]
mod tests;

pub use record::{
    AuditRecord, ConnectionEvent, ConnectionRecord, ErrorInfo, Outcome, PolicyRecord,
    SessionContext, SessionTotals, StatementRecord,
};
pub use writer::{AuditHandle, AuditLog, AuditTask};

use std::path::PathBuf;
use thiserror::Error;

/// Why the audit trail could not start.
#[derive(Debug, Error)]
pub enum AuditError {
    /// The audit file could not be opened or created.
    #[error("audit.path {}: cannot open: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// [`AuditLog::start`] was called outside a tokio runtime.
    #[error("the audit writer must be started inside a tokio runtime")]
    NoRuntime,
}
