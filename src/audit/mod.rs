//! The audit trail: one JSON record per statement and connection event
//! ("who read or changed what, when, from where, how, with what outcome"),
//! written off the hot path by one writer task (docs/audit-records.md).
//!
//! A session builds [`StatementRecord`]s and [`ConnectionRecord`]s from an
//! [`Arc<SessionContext>`](SessionContext) and the analyser's `Arc<Analysis>`
//! and hands them to its [`AuditHandle`]; [`AuditLog::start`] opens the sink
//! and [`AuditTask::shutdown`] drains it.
//!
//! Every line is hash-chained to the one before ([`chain`]); with a signing
//! key the writer adds Ed25519-signed checkpoints ([`checkpoint`]), which
//! [`verify`] (and `pgwarden audit verify`) checks.

pub mod chain;
pub mod checkpoint;
pub mod cli;
mod format;
mod json;
pub mod keys;
pub mod keyset;
mod lines;
pub mod nats;
mod record;
mod scan;
mod sink;
pub mod subject_query;
mod subject_record;
pub mod verify;
mod writer;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod verify_tests;

pub use record::{
    AuditRecord, ConnectionEvent, ConnectionRecord, ErrorInfo, Outcome, PolicyRecord,
    SessionContext, SessionTotals, StatementRecord,
};
pub use subject_record::SubjectSeen;
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
    /// `audit.signing_key` could not be read.
    #[error("audit.signing_key {0}")]
    Key(#[from] keys::KeyError),
    /// The NATS sink's disk buffer could not be opened.
    #[error(transparent)]
    Nats(#[from] nats::NatsError),
    /// [`AuditLog::start`] was called outside a tokio runtime.
    #[error("the audit writer must be started inside a tokio runtime")]
    NoRuntime,
}
