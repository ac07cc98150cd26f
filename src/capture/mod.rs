//! Change capture: for columns the policy's `[capture]` names, every
//! INSERT, UPDATE and DELETE through pgwarden records, per changed row, its
//! primary key and the old and new value of each captured column.
//!
//! How: the statement is rewritten so PostgreSQL returns the change itself
//! (`rewrite.rs`: RETURNING, plus a locked pre-image for UPDATE); the extra
//! result column is taken off every row before the client sees it
//! (`rows.rs`); the statement's record waits until its transaction ends, so
//! a rolled-back change is recorded as rolled back (`ledger.rs`).
//! MERGE returns no rows on PostgreSQL 15: pgwarden reads a locked
//! pre-image and a post-image around it (`merge.rs`).
//! `COPY ... FROM STDIN` is not rewritten: its rows are read from the
//! client's data as it is forwarded (`copy/`).
//! `plan.rs` decides which statements are captured and how.

pub mod copy;
pub mod ledger;
pub mod merge;
pub mod plan;
pub mod prepare;
pub mod rewrite;
pub mod rows;

pub use ledger::Ledger;
pub use plan::{Capture, Plan, Wanted};
pub use prepare::{Prepared, Preparer};
pub use rows::{ChangeRow, Changes};

use thiserror::Error;

/// Why a write could not be captured (it still runs; its record says why).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CaptureError {
    /// A form of statement capture does not handle.
    #[error("not captured: {0}")]
    Unsupported(&'static str),
    /// The statement could not be parsed for rewriting.
    #[error("not captured: cannot rewrite: {0}")]
    Rewrite(String),
    /// A clause boundary was not where the parser said.
    #[error("not captured: clause positions do not match the text")]
    Position,
    /// A COPY whose rows pgwarden cannot read as PostgreSQL stores them.
    #[error("not captured: {0}")]
    Copy(String),
}
