//! Statement analysis: parse → resolve names against the catalog → the set
//! of tables and columns each statement reads and writes.

pub mod model;

pub use model::{Analysis, OpaqueCall, RelationAccess, RelationName, SessionEffect, StatementKind};
