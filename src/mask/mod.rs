//! Cell masking: rewrites the cells of result columns that a policy says must
//! be masked, keeping a type the client can decode in both the text and
//! binary encodings.
//!
//! A value that cannot be read as its column's type, or that a method cannot
//! mask, becomes NULL: the original bytes are never passed on. SQL NULL stays
//! NULL under every method.

mod bucket;
mod datetime;
pub(crate) use datetime::civil_from_days;
mod hash;
mod key;
mod method;
mod number;
mod numeric;
pub mod oid;
mod row;
mod text;

#[cfg(test)]
mod tests;

pub use key::HashKey;
pub use method::{MaskMethod, DEFAULT_REDACTION};
pub use row::rewrite_data_row;

use bytes::BytesMut;
use std::sync::Arc;
use thiserror::Error;

/// Why a mask method or a DataRow was rejected.
#[derive(Debug, Error)]
pub enum MaskError {
    /// The policy names no known method.
    #[error("unknown mask method {0:?}")]
    UnknownMethod(String),
    /// The method needs an argument (`partial:N`, `bucket:W`).
    #[error("mask method {0} needs an argument")]
    MissingArgument(&'static str),
    /// The method takes no argument.
    #[error("mask method {0} takes no argument")]
    UnexpectedArgument(&'static str),
    /// The argument is not valid for the method.
    #[error("invalid argument {arg:?} for mask method {method}")]
    BadArgument {
        /// The method.
        method: &'static str,
        /// The argument as written.
        arg: String,
    },
    /// The DataRow body does not have the shape of one.
    #[error("malformed DataRow: {0}")]
    MalformedDataRow(&'static str),
    /// The DataRow has another number of columns than the masking plan.
    #[error("DataRow has {row} columns, the masking plan {plan}")]
    ColumnCount {
        /// Columns in the row.
        row: usize,
        /// Columns in the plan.
        plan: usize,
    },
    /// The rewritten row or cell would exceed the protocol's 2 GiB limit.
    #[error("masked DataRow too large")]
    TooLarge,
}

/// How one result column is masked.
#[derive(Debug, Clone)]
pub struct CellMask {
    /// The method, shared by every column and statement it applies to.
    pub method: Arc<MaskMethod>,
    /// The column's type OID (from RowDescription).
    pub type_oid: u32,
    /// Whether the column is sent in binary (format 1) rather than text.
    pub binary: bool,
}

/// Masks one cell; `None` in = SQL NULL in; returns the new cell (None = NULL).
pub fn mask_cell(m: &CellMask, key: &HashKey, value: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut out = BytesMut::new();
    mask_cell_into(m, key, value?, &mut out).then(|| out.to_vec())
}

/// Appends the masked form of the non-NULL `value` to `out` and returns true,
/// or returns false (leaving `out` as it was) when the cell must become NULL.
pub fn mask_cell_into(m: &CellMask, key: &HashKey, value: &[u8], out: &mut BytesMut) -> bool {
    let start = out.len();
    let (oid, binary) = (m.type_oid, m.binary);
    let done = match &*m.method {
        MaskMethod::Null => None,
        MaskMethod::Redact(t) => text::redact(t, oid, out),
        MaskMethod::Partial { keep } => text::partial(*keep, oid, value, out),
        MaskMethod::Hash => hash::hash(key, oid, binary, value, out),
        MaskMethod::Year => datetime::year(oid, binary, value, out),
        MaskMethod::Bucket { width } => bucket::bucket(*width, oid, binary, value, out),
    };
    if done.is_none() {
        // A method may fail halfway through writing: never leak a fragment.
        out.truncate(start);
    }
    done.is_some()
}
